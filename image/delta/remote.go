package delta

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"keel/image/fetch"
)

// Source is a bundle that can be read from any offset: an HTTP(S) URL or
// a registry blob (image/fetch's sources are Sources).
type Source interface {
	// Open returns the bytes from off to the end; size is the whole
	// bundle's (-1 if unknown).
	Open(ctx context.Context, off int64) (body io.ReadCloser, size int64, err error)
	String() string // for messages, without credentials
}

// RangeOpener is a Source that can ask for just the n bytes at off (over
// HTTP, Range: bytes=off-(off+n-1); fewer where the file ends), as
// fetch.RangeSource does: the server then sends no more than that, and
// the connection serves the next request. A Source without it is read
// with Open and the body closed after n bytes, which over HTTP drops the
// connection along with whatever the server had sent beyond them.
type RangeOpener interface {
	OpenRange(ctx context.Context, off, n int64) (io.ReadCloser, error)
}

// Remote reads byte ranges of a bundle from a Source, each through a
// fetch.Reader: a range that breaks off (a dropped connection, a stall) is
// opened again where it stopped, so no byte is fetched twice, and
// Options.Rate caps the bandwidth. It counts the bytes received.
type Remote struct {
	src       Source
	o         fetch.Options
	fetched   int64
	requests  int
	delivered int64 // by ranges
	ranged    int64 // fetched by ranges
}

// NewRemote reads src with o (its Progress is not called: the installer
// reports progress by artifact).
func NewRemote(src Source, o fetch.Options) *Remote {
	o.Progress = nil
	return &Remote{src: src, o: o}
}

func (r *Remote) String() string { return r.src.String() }

// Fetched is the bytes received so far.
func (r *Remote) Fetched() int64 { return r.fetched }

// Skipped is the bytes received for ranges but not part of them: a
// server that ignores range requests sends a file from its start, and the
// bytes before the offset asked for are dropped (fetch.URL does so). A
// delta install is pointless from such a server.
func (r *Remote) Skipped() int64 { return r.ranged - r.delivered }

// Requests is the number of requests answered so far: each range, each
// time one was opened again after a break, and each Peek.
func (r *Remote) Requests() int { return r.requests }

// Range returns a reader of the n bytes at off, which asks for them at
// its first Read. It ends with io.EOF after exactly n bytes; a source that
// ends before is retried as a dropped connection would be, then an error.
// Close it to end the request early.
func (r *Remote) Range(ctx context.Context, off, n int64) io.ReadCloser {
	return &rangeReader{Reader: fetch.NewReader(ctx, section{src: r.src, off: off, n: n}, r.o), r: r}
}

// Rest returns a reader of the bundle from off to its end, which asks for
// it at its first Read (one range, reopened where it broke off).
func (r *Remote) Rest(ctx context.Context, off int64) io.ReadCloser {
	return &rangeReader{Reader: fetch.NewReader(ctx, tail{src: r.src, off: off}, r.o), r: r}
}

// ReadAt reads len(p) bytes at off in one range.
func (r *Remote) ReadAt(ctx context.Context, p []byte, off int64) error {
	rc := r.Range(ctx, off, int64(len(p)))
	defer rc.Close()
	_, err := io.ReadFull(rc, p)
	return err
}

// Peek returns up to n bytes at off, fewer where the bundle ends, in one
// request (fetch.ReadRange: not retried).
func (r *Remote) Peek(ctx context.Context, off, n int64) ([]byte, error) {
	r.requests++
	b, err := fetch.ReadRange(ctx, fetchSource{r.src}, off, n)
	r.fetched += int64(len(b))
	return b, err
}

// fetchSource is a Source as a fetch.Source, and a fetch.RangeSource if it
// is a RangeOpener.
type fetchSource struct{ Source }

func (s fetchSource) OpenRange(ctx context.Context, off, n int64) (io.ReadCloser, error) {
	if ro, ok := s.Source.(RangeOpener); ok {
		return ro.OpenRange(ctx, off, n)
	}
	body, _, err := s.Open(ctx, off)
	return body, err
}

// rangeReader is a fetch.Reader that adds what it fetched to its
// Remote's counts as it goes.
type rangeReader struct {
	*fetch.Reader
	r              *Remote
	fetched, opens int64 // counted so far
}

func (rr *rangeReader) Read(p []byte) (int, error) {
	n, err := rr.Reader.Read(p)
	rr.r.delivered += int64(n)
	rr.count()
	return n, err
}

func (rr *rangeReader) count() {
	f := rr.Reader.Fetched()
	rr.r.fetched += f - rr.fetched
	rr.r.ranged += f - rr.fetched
	rr.fetched = f
	if rr.Reader.Size() >= 0 { // opened at least once
		o := 1 + rr.Reader.Reopens()
		rr.r.requests += int(o - rr.opens)
		rr.opens = o
	}
}

func (rr *rangeReader) Close() error {
	err := rr.Reader.Close()
	rr.count()
	return err
}

// section is n bytes at off of src, as a fetch.Source of its own.
type section struct {
	src    Source
	off, n int64
}

func (s section) String() string { return fmt.Sprintf("%s (bytes %d to %d)", s.src, s.off, s.off+s.n) }

func (s section) Open(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
	if off >= s.n {
		return io.NopCloser(bytes.NewReader(nil)), s.n, nil
	}
	if ro, ok := s.src.(RangeOpener); ok {
		body, err := ro.OpenRange(ctx, s.off+off, s.n-off)
		return body, s.n, err
	}
	body, _, err := s.src.Open(ctx, s.off+off)
	return body, s.n, err
}

// tail is src from off on, as a fetch.Source of its own.
type tail struct {
	src Source
	off int64
}

func (t tail) String() string { return t.src.String() }

func (t tail) Open(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
	body, size, err := t.src.Open(ctx, t.off+off)
	if err != nil || size < 0 {
		return body, size, err
	}
	return body, size - t.off, nil
}
