package install

import (
	"context"
	"errors"
	"fmt"
	"io"

	"keel/image/bundle"
)

// offsetWriter writes a stream at off in w, refusing to go past limit: a
// partition of the disk. Call wait when the stream ends.
type offsetWriter struct {
	w     io.WriterAt
	off   int64
	n     int64
	limit int64
	// flushed is where the last startWriteback ended, relative to off.
	flushed int64
	// synced is where the last background sync was asked for.
	synced int64
	bg     *bgSync
}

// writebackChunk is how much an offsetWriter writes to a file (an image
// file, a block device) before it asks the kernel to start writing it out.
// Left to itself the kernel keeps a slot's pages dirty until the sync at
// the end of the step, which then waits for the whole device write after
// the whole copy; started as the copy goes, the device writes while the
// next chunks are read and hashed, and the sync waits for the last chunk
// only. It also keeps the dirty pages bounded on a device with little
// memory.
const writebackChunk = 8 << 20

// syncChunk is how much an offsetWriter writes to a file between the syncs
// it starts in the background. Pages started by startWriteback reach the
// device by themselves, but the sync that ends step 2 still waits for the
// device to make them durable (a cache flush), which need not be quick: on
// a virtual machine whose disk is a file in the host's cache the flush is
// where the host writes the bytes out (0.1 s for 205 MiB on this project's
// machine even after every page had been written back; dd conv=fsync of
// the same bytes took 0.2 s in all). Synced as the copy goes, the flushes
// overlap the reading and hashing of the next chunks, and the last sync
// waits for the last chunk only; on a device that writes as it goes they
// cost a few cache flushes. The writer never waits for them (one runs at a
// time; a request while one is pending is folded into it), and wait
// reports their errors, which a later sync of the same file may no longer
// see.
const syncChunk = 64 << 20

func (o *offsetWriter) Write(p []byte) (int, error) {
	if o.n+int64(len(p)) > o.limit {
		return 0, fmt.Errorf("write past the end of the partition (%d bytes): %w", o.limit, ErrTooLarge)
	}
	n, err := o.w.WriteAt(p, o.off+o.n)
	o.n += int64(n)
	if f, ok := o.w.(fder); ok && o.n-o.flushed >= writebackChunk {
		startWriteback(f, o.off+o.flushed, o.n-o.flushed)
		o.flushed = o.n
	}
	if f, ok := o.w.(syncFile); ok && o.n-o.synced >= syncChunk {
		if o.bg == nil {
			o.bg = startBgSync(f)
		}
		o.bg.request()
		o.synced = o.n
	}
	return n, err
}

// wait waits for the background sync running, if any, and returns the
// first error of any of them.
func (o *offsetWriter) wait() error {
	if o.bg == nil {
		return nil
	}
	return o.bg.stop()
}

// fder is a file with a descriptor (an *os.File).
type fder interface{ Fd() uintptr }

// syncFile is a file that syncs (an *os.File): only the disk itself is
// synced in the background, never a stand-in that counts its syncs.
type syncFile interface {
	fder
	Sync() error
}

// bgSync syncs a file in a goroutine of its own when asked.
type bgSync struct {
	req  chan struct{}
	done chan struct{}
	err  error // the first error; read once done is closed
}

func startBgSync(f syncFile) *bgSync {
	b := &bgSync{req: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for range b.req {
			if err := f.Sync(); err != nil && b.err == nil {
				b.err = err
			}
		}
	}()
	return b
}

// request asks for a sync without waiting: if one is already asked for
// and not begun, that one will do.
func (b *bgSync) request() {
	select {
	case b.req <- struct{}{}:
	default:
	}
}

func (b *bgSync) stop() error {
	close(b.req)
	<-b.done
	if b.err != nil {
		return fmt.Errorf("background sync: %w", b.err)
	}
	return nil
}

// verifier reads exactly one artifact from the bundle's reader, which
// hashes as it goes and reports a mismatch (or a short stream) with the
// last bytes or at the end. verifier asks for that verdict before handing
// out the last chunk, and withholds the chunk on a bad one: a consumer that
// reads exactly Size bytes (fat's WriteFile) would otherwise complete a bad
// file without ever seeing the error.
type verifier struct {
	ctx      context.Context
	r        io.Reader
	a        bundle.Artifact
	done     int64
	progress func(done int64)
	err      error // the first error, for callers whose consumer hides it
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if err := v.ctx.Err(); err != nil {
		v.err = err
		return 0, err
	}
	left := v.a.Size - v.done
	if left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := v.r.Read(p)
	v.done += int64(n)
	switch {
	case v.done == v.a.Size:
		if err == nil || errors.Is(err, io.EOF) {
			err = end(v.r)
		}
		if err != nil {
			v.err = err
			return 0, err // withhold the last chunk
		}
	case errors.Is(err, io.EOF):
		err = fmt.Errorf("%d of %d bytes: %w", v.done, v.a.Size, bundle.ErrTruncated)
	}
	if err != nil {
		v.err = err
	}
	if v.progress != nil && n > 0 {
		v.progress(v.done)
	}
	return n, err
}

// end reads past an artifact's last byte: the bundle's reader says there
// whether its hash matched (io.EOF if it did).
func end(r io.Reader) error {
	var b [1]byte
	for {
		n, err := r.Read(b[:])
		switch {
		case n > 0:
			return fmt.Errorf("artifact longer than its manifest size: %w", bundle.ErrCorrupt)
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return err
		}
	}
}

// copyVerified streams artifact a from r to w, checking its size and the
// bundle's verdict on its hash. The bundle's artifact readers are
// io.WriterTo: they hash in a second goroutine while the next buffer is
// read and the last one written, in whole 1 MiB writes (aligned: a slot
// starts on a MiB boundary). (Reading and hashing in one goroutine and
// writing in another, as before, measured no faster on two cores: the
// sha256 costs as much as the copy, and it was on the reading side. Three
// goroutines, or 4 MiB buffers or more of them in flight, measured slower
// still, likely because the hash then reads its buffer from memory, not
// cache.)
func copyVerified(ctx context.Context, w io.Writer, r io.Reader, a bundle.Artifact, progress func(int64)) error {
	cw := &ctxWriter{ctx: ctx, w: w, progress: progress}
	var err error
	if wt, ok := r.(io.WriterTo); ok {
		_, err = wt.WriteTo(cw)
	} else {
		v := &verifier{ctx: ctx, r: r, a: a}
		_, err = io.CopyBuffer(cw, v, make([]byte, 1<<20))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", a.Name, err)
	}
	if cw.n != a.Size {
		return fmt.Errorf("%s: %d of %d bytes: %w", a.Name, cw.n, a.Size, bundle.ErrTruncated)
	}
	return nil
}

// ctxWriter stops a copy when ctx is done and reports the bytes written.
type ctxWriter struct {
	ctx      context.Context
	w        io.Writer
	n        int64
	progress func(int64)
}

func (c *ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	if c.progress != nil && n > 0 {
		c.progress(c.n)
	}
	return n, err
}
