package squashfs

import (
	"fmt"
	"log/slog"
	"runtime"
)

// Compression names the block compressor.
type Compression string

const (
	Zstd Compression = "zstd"
	XZ   Compression = "xz"
	Gzip Compression = "gzip"
)

// Compressions lists the supported compressors, default first.
var Compressions = []Compression{Zstd, XZ, Gzip}

// Options control how an image is written. The zero value is valid: zstd at
// DefaultZstdLevel, 128 KiB blocks, one worker per CPU, NFS-exportable.
type Options struct {
	Compression Compression
	// Level is the compressor's level; 0 means the compressor's default
	// (zstd 3, xz 6, gzip 9). The pure-Go LZMA2 encoder has one strength,
	// so for xz the level is checked (1..9) but changes nothing.
	Level int
	// XZBCJ adds the x86 BCJ filter in front of LZMA2 for xz, which shrinks
	// x86 machine code by a few percent.
	XZBCJ bool
	// BlockSize is the data block size, a power of two from 4 KiB to 1 MiB.
	BlockSize int
	// Workers is the number of compressing goroutines; 0 means GOMAXPROCS.
	// The output does not depend on it.
	Workers int
	// NoExport leaves out the NFS export table.
	NoExport bool
	// ModTime is the superblock's modification time (seconds since the epoch).
	// Entry mtimes outside squashfs's range (1970..2106) are clamped to it.
	ModTime uint32
	// Logger receives debug output; nil discards it.
	Logger *slog.Logger
	// Progress, if set, is called from one goroutine as data is written, with
	// the bytes of file content consumed so far and the total.
	Progress func(done, total int64)
}

// Default compressor levels. zstd defaults to 3 (not mksquashfs's 15)
// because the pure-Go encoder's levels above "better" cost far more time than
// they save space; pass a higher Level for release images.
const (
	DefaultZstdLevel = 3
	DefaultXZLevel   = 6
	DefaultGzipLevel = 9
	DefaultBlockSize = 128 << 10
)

func (o Options) withDefaults() (Options, error) {
	if o.Compression == "" {
		o.Compression = Zstd
	}
	switch o.Compression {
	case Zstd:
		if o.Level == 0 {
			o.Level = DefaultZstdLevel
		}
		if o.Level < 1 || o.Level > 22 {
			return o, fmt.Errorf("zstd level %d out of range 1..22", o.Level)
		}
	case XZ:
		if o.Level == 0 {
			o.Level = DefaultXZLevel
		}
		if o.Level < 1 || o.Level > 9 {
			return o, fmt.Errorf("xz level %d out of range 1..9", o.Level)
		}
	case Gzip:
		if o.Level == 0 {
			o.Level = DefaultGzipLevel
		}
		if o.Level < 1 || o.Level > 9 {
			return o, fmt.Errorf("gzip level %d out of range 1..9", o.Level)
		}
	default:
		return o, fmt.Errorf("unsupported compressor %q (known: zstd, xz, gzip)", o.Compression)
	}
	if o.XZBCJ && o.Compression != XZ {
		return o, fmt.Errorf("the BCJ filter applies only to xz, not %s", o.Compression)
	}
	if o.BlockSize == 0 {
		o.BlockSize = DefaultBlockSize
	}
	if o.BlockSize < 4<<10 || o.BlockSize > 1<<20 || o.BlockSize&(o.BlockSize-1) != 0 {
		return o, fmt.Errorf("block size %d is not a power of two from 4 KiB to 1 MiB", o.BlockSize)
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Stats describes a written image.
type Stats struct {
	Bytes        int64  // image size, padded to 4 KiB as mksquashfs does
	Inodes       uint32 // inode count
	ContentBytes int64  // bytes of regular-file content before compression
	Duplicates   int    // files stored as references to identical earlier files
	Fragments    uint32 // fragment blocks
}

// Validate reports whether the options are usable, before any work is done.
func (o Options) Validate() error {
	_, err := o.withDefaults()
	return err
}
