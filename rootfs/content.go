package rootfs

import (
	"bytes"
	"io"
	"os"
)

// Bytes returns an Opener over b. b must not change afterwards.
func Bytes(b []byte) Opener {
	return func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}
}

// HostFile returns an Opener that reads the file at name on the build host.
func HostFile(name string) Opener {
	return func() (io.ReadCloser, error) {
		return os.Open(name)
	}
}

// NewFile returns a regular file entry holding b.
func NewFile(mode uint32, b []byte) *Entry {
	return &Entry{Type: TypeFile, Mode: mode, Size: int64(len(b)), Content: Bytes(b)}
}
