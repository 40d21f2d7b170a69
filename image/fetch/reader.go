package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for Options' zero values.
const (
	DefaultRetries = 5
	DefaultBackoff = time.Second
	MaxBackoff     = 30 * time.Second
	DefaultStall   = 30 * time.Second
)

// Options change how a Reader fetches.
type Options struct {
	// Rate caps the bytes per second received (0: no cap). The cap is
	// smooth: at most an eighth of a second's worth arrives in a burst.
	Rate int64
	// Retries is how many failed attempts in a row (an open that failed,
	// or a connection that broke before delivering a byte) are retried,
	// with a backoff, before the Reader gives up: 0 means DefaultRetries,
	// a negative number none (any error ends the read). A connection that
	// breaks after delivering bytes is reopened at once and is not a
	// failure: a long download over a flaky link goes on for as long as it
	// makes progress.
	Retries int
	// Backoff is the pause after the first failure, doubled after each
	// further one up to MaxBackoff, less a random part of up to half, so
	// a fleet does not retry in step (0: DefaultBackoff).
	Backoff time.Duration
	// Stall is how long a read may wait for the next byte before the
	// connection is given up and reopened (0: DefaultStall).
	Stall time.Duration
	// Progress is called after each read with the bytes delivered and the
	// total (-1 if unknown).
	Progress func(done, total int64)
	Logger   *slog.Logger
}

// Reader reads a Source from its start to its end (an io.ReadCloser). A
// dropped connection, a read error or a stall (no byte for Options.Stall)
// reopens the source at the offset reached, so each byte is delivered
// once; the Source checks that the bytes after a reopen belong to the same
// file. It is not safe for concurrent Reads; Fetched, Size and Reopens may
// be called from any goroutine.
type Reader struct {
	ctx   context.Context
	src   Source
	o     Options
	clock clock
	lim   *limiter
	stall *time.Timer

	mu      sync.Mutex
	cancel  context.CancelFunc // the current attempt's
	stalled bool

	body    io.ReadCloser
	skipped int64 // the body's Skipped() when last seen
	opened  bool  // the first open succeeded: size is known
	off     int64
	size    atomic.Int64
	fetched atomic.Int64
	reopens atomic.Int64
	fails   int   // failed attempts in a row
	lastErr error // the last failure's
	gotBody bool  // the current body delivered bytes
	err     error // sticky: io.EOF at the end
}

// NewReader reads src from 0 to its end, reopening at the offset reached
// after a dropped connection (Range: bytes=N-, checking the 206 and its
// Content-Range), so bytes are fetched once. Nothing is requested before
// the first Read. Cancelling ctx ends every Read and wait at once.
func NewReader(ctx context.Context, src Source, o Options) *Reader {
	return newReader(ctx, src, o, realClock{})
}

func newReader(ctx context.Context, src Source, o Options, c clock) *Reader {
	if o.Retries == 0 {
		o.Retries = DefaultRetries
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.Stall <= 0 {
		o.Stall = DefaultStall
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Reader{ctx: ctx, src: src, o: o, clock: c}
	r.size.Store(-1)
	if o.Rate > 0 {
		r.lim = newLimiter(o.Rate, c)
	}
	r.stall = time.AfterFunc(time.Hour, r.onStall)
	r.stall.Stop()
	return r
}

// Fetched is the bytes received over the network so far: the file's bytes
// once each after a clean run, plus any a server that ignores ranges sent
// again before the offset of a reopen.
func (r *Reader) Fetched() int64 { return r.fetched.Load() }

// Size is the file's size, known after the first Read (-1 until then, or
// if the source does not say).
func (r *Reader) Size() int64 { return r.size.Load() }

// Reopens is how many times the source was opened again after the first.
func (r *Reader) Reopens() int64 { return r.reopens.Load() }

// Read delivers the next bytes of the file.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if size := r.size.Load(); r.opened && size >= 0 && r.off >= size {
			r.closeBody()
			r.err = io.EOF
			return 0, io.EOF
		}
		if r.body == nil {
			if err := r.open(); err != nil {
				r.err = err
				return 0, err
			}
			continue
		}
		q := p
		if r.lim != nil && len(q) > r.lim.chunk {
			q = q[:r.lim.chunk]
		}
		if size := r.size.Load(); size >= 0 && int64(len(q)) > size-r.off {
			q = q[:size-r.off]
		}
		r.arm()
		n, err := r.body.Read(q)
		stalled := r.disarm()
		wire := int64(n)
		if s, ok := r.body.(interface{ Skipped() int64 }); ok {
			wire += s.Skipped() - r.skipped
			r.skipped = s.Skipped()
		}
		r.fetched.Add(wire)
		if n > 0 {
			r.off += int64(n)
			r.fails, r.gotBody = 0, true
			if r.o.Progress != nil {
				r.o.Progress(r.off, r.size.Load())
			}
		}
		if r.lim != nil && wire > 0 {
			if werr := r.lim.wait(r.ctx, wire); werr != nil {
				r.closeBody()
				r.err = werr
				return r.deliver(n)
			}
		}
		switch size := r.size.Load(); {
		case err == nil, size >= 0 && r.off >= size:
			// Go on; or, every byte there, stop: whatever the body says
			// next does not matter.
			if n > 0 {
				return n, nil
			}
			continue
		case errors.Is(err, io.EOF) && size < 0:
			// A body of unknown length (chunked) ends cleanly only at
			// its end; a cut one ends with io.ErrUnexpectedEOF.
			r.closeBody()
			r.err = io.EOF
			return r.deliver(n)
		}
		if cerr := r.ctx.Err(); cerr != nil {
			r.closeBody()
			r.err = cerr
			return r.deliver(n)
		}
		switch {
		case stalled:
			err = fmt.Errorf("no data for %v", r.o.Stall)
		case errors.Is(err, io.EOF):
			err = fmt.Errorf("connection closed: %w", io.ErrUnexpectedEOF)
		}
		r.closeBody()
		if ferr := r.failed(err); ferr != nil {
			r.err = ferr
			return r.deliver(n)
		}
		if n > 0 {
			return n, nil
		}
	}
}

// deliver returns the last n bytes read after the read ended with r.err:
// the error comes with them if there are none, else with the next Read.
func (r *Reader) deliver(n int) (int, error) {
	if n > 0 {
		return n, nil
	}
	return 0, r.err
}

// failed records a failed attempt; it returns the error to end the read
// with if there is no retrying it.
func (r *Reader) failed(err error) error {
	if !r.gotBody {
		r.fails++
	}
	r.lastErr = err
	if r.o.Retries < 0 || IsPermanent(err) {
		return fmt.Errorf("fetching %s at byte %d: %w", r.src, r.off, err)
	}
	r.o.Logger.Warn("fetch interrupted, resuming", "source", r.src.String(), "offset", r.off, "size", r.size.Load(), "err", err)
	return nil
}

// open opens the source at the offset reached, after a pause if the last
// attempts failed, as many times as Retries allows.
func (r *Reader) open() error {
	for {
		if r.fails > max(r.o.Retries, 0) {
			return fmt.Errorf("fetching %s: giving up after %d failed attempts in a row: %w", r.src, r.fails, r.lastErr)
		}
		if r.fails > 0 {
			if err := r.clock.sleep(r.ctx, r.backoff()); err != nil {
				return err
			}
		}
		ctx, cancel := context.WithCancel(r.ctx)
		r.mu.Lock()
		r.cancel, r.stalled = cancel, false
		r.mu.Unlock()
		r.arm()
		body, size, err := r.src.Open(ctx, r.off)
		stalled := r.disarm()
		if prev := r.size.Load(); err == nil && r.opened && prev >= 0 && size != prev {
			body.Close()
			err = Permanent(fmt.Errorf("%s: %w (%d bytes, was %d)", r.src, ErrChanged, size, prev))
		}
		if err == nil {
			if r.opened {
				r.reopens.Add(1)
			}
			r.opened, r.body, r.skipped, r.gotBody = true, body, 0, false
			if size >= 0 {
				r.size.Store(size)
			}
			return nil
		}
		cancel()
		if cerr := r.ctx.Err(); cerr != nil {
			return cerr
		}
		if stalled {
			err = fmt.Errorf("no answer for %v: %w", r.o.Stall, err)
		}
		r.gotBody = false
		if ferr := r.failed(err); ferr != nil {
			return ferr
		}
	}
}

// backoff is the pause before the next attempt after r.fails failures.
func (r *Reader) backoff() time.Duration {
	d := r.o.Backoff
	for i := 1; i < r.fails && d < MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, MaxBackoff)
	return d - rand.N(d/2+1)
}

// arm starts the stall timer for a read or an open; disarm stops it and
// says whether it fired (then the attempt's context was cancelled).
func (r *Reader) arm() { r.stall.Reset(r.o.Stall) }

func (r *Reader) disarm() bool {
	r.stall.Stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stalled
}

func (r *Reader) onStall() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stalled = true
	if r.cancel != nil {
		r.cancel()
	}
}

func (r *Reader) closeBody() {
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
	r.mu.Lock()
	if r.cancel != nil {
		r.cancel()
		r.cancel = nil
	}
	r.mu.Unlock()
}

// Close ends the read and frees the connection.
func (r *Reader) Close() error {
	r.stall.Stop()
	r.closeBody()
	if r.err == nil {
		r.err = errors.New("fetch: read after Close")
	}
	return nil
}

// ReadRange returns up to n bytes of src from off (fewer where the file
// ends): with one bounded request when src is a RangeSource, else by
// opening src at off and closing it after n bytes. It does not retry.
func ReadRange(ctx context.Context, src Source, off, n int64) ([]byte, error) {
	var body io.ReadCloser
	var err error
	if rs, ok := src.(RangeSource); ok {
		body, err = rs.OpenRange(ctx, off, n)
	} else {
		body, _, err = src.Open(ctx, off)
	}
	if err != nil {
		return nil, err
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, n))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", src, err)
	}
	return b, nil
}
