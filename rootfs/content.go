package rootfs

import (
	"bytes"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Bytes returns an Opener over b. b must not change afterwards.
func Bytes(b []byte) Opener {
	return func() (io.ReadCloser, error) {
		return bytesReader{bytes.NewReader(b)}, nil
	}
}

// bytesReader keeps *bytes.Reader's ReadAt visible, which io.NopCloser
// would hide.
type bytesReader struct{ *bytes.Reader }

func (bytesReader) Close() error { return nil }

// HostFile returns an Opener that reads the file at name on the build host.
//
// It reads through a bare file descriptor rather than an *os.File: os.Open
// adds an fstat (and a poller check) to every open, and a root tree has tens
// of thousands of small files, each opened once.
func HostFile(name string) Opener {
	return func() (io.ReadCloser, error) {
		fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
		return &fdReader{fd: fd, name: name}, nil
	}
}

type fdReader struct {
	fd   int
	name string
}

func (r *fdReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := unix.Read(r.fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, &os.PathError{Op: "read", Path: r.name, Err: err}
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func (r *fdReader) Close() error {
	if r.fd < 0 {
		return nil
	}
	err := unix.Close(r.fd)
	r.fd = -1
	return err
}

// NewFile returns a regular file entry holding b.
func NewFile(mode uint32, b []byte) *Entry {
	return &Entry{Type: TypeFile, Mode: mode, Size: int64(len(b)), Content: Bytes(b)}
}

// ReadAt reads at an offset without moving the read position (pread), so
// a host file's content can be read at random, as ELF readers do.
func (r *fdReader) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Pread(r.fd, p[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, &os.PathError{Op: "read", Path: r.name, Err: err}
		}
		if m == 0 {
			return n, io.EOF
		}
		n += m
	}
	return n, nil
}
