package oci

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// Magic numbers of the compressions a layer may use. The media type is not
// trusted for this: Docker's types say "gzip" for layers of any compression,
// and ApplyLayer has no media type at all.
var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicBzip2 = []byte{'B', 'Z', 'h'}
)

// decompress returns the tar stream inside r, which may be gzip, zstd or
// uncompressed.
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	// A short peek is not an error: an empty or tiny layer is just a short tar.
	magic, _ := br.Peek(6)
	switch {
	case bytes.HasPrefix(magic, magicGzip):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, nil
	case bytes.HasPrefix(magic, magicZstd):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zr.IOReadCloser(), nil
	case bytes.HasPrefix(magic, magicXz), bytes.HasPrefix(magic, magicBzip2):
		return nil, fmt.Errorf("unsupported layer compression (magic %x)", magic)
	}
	return io.NopCloser(br), nil
}
