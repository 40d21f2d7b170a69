package bundle

import (
	"errors"
	"fmt"
	"io"
)

// WriteTo's pipeline: buffers of copyBufferSize bytes, copyBuffers of them
// in flight between the reading, the hashing and the writing.
const (
	copyBufferSize = 1 << 20
	copyBuffers    = 4
)

// WriteTo writes the rest of the artifact to w (io.Copy calls it). It
// hashes in a second goroutine while this one reads the next buffer and
// writes the last: on two cores the sha256, which costs as much as the
// copy itself, then overlaps it instead of adding to it. w gets whole
// buffers of 1 MiB (the last one shorter), each read in full first. The
// verdict is Read's: nil only when the bytes are the manifest's, else
// ErrHashMismatch or ErrTruncated (wrapped), returned after what was read
// was written: what w got is garbage until WriteTo returned nil. An error
// from w is returned as it is, and the rest of the artifact can still be
// read.
func (a *artifact) WriteTo(w io.Writer) (int64, error) {
	if a.done == io.EOF {
		return 0, nil
	}
	if a.done != nil {
		return 0, a.done
	}
	size := int(min(a.left, copyBufferSize))
	free := make(chan []byte, copyBuffers)
	for range copyBuffers {
		free <- make([]byte, size)
	}
	toHash := make(chan []byte, copyBuffers)
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for b := range toHash {
			a.h.Write(b)
			free <- b
		}
	}()
	var written int64
	var err error
	for a.left > 0 && err == nil {
		// A buffer comes back once hashed; this goroutine wrote it before
		// taking the next one, so it is done with it too.
		buf := <-free
		buf = buf[:min(int64(cap(buf)), a.left)]
		n, rerr := io.ReadFull(a.r, buf)
		a.left -= int64(n)
		if n > 0 {
			toHash <- buf[:n]
			wn, werr := w.Write(buf[:n])
			written += int64(wn)
			if werr == nil && wn < n {
				werr = io.ErrShortWrite
			}
			err = werr
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF):
			a.done = fmt.Errorf("%w: artifact %s: stream ends %d bytes before its end", ErrTruncated, a.a.Name, a.left)
			a.fail(a.done)
			err = a.done
		default:
			a.done = fmt.Errorf("reading artifact %s: %w", a.a.Name, rerr)
			a.fail(a.done)
			err = a.done
		}
	}
	close(toHash)
	<-hashed
	if err == nil {
		if ferr := a.finish(); ferr != io.EOF {
			err = ferr
		}
	}
	return written, err
}
