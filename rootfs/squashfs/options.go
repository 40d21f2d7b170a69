package squashfs

import (
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
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
	// Level is the compressor's level, one of Levels(Compression); 0 means
	// the compressor's default (zstd 3, xz 6, gzip 9).
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
// because the pure-Go encoder's "best" (level 11) costs several times the
// time for a few percent of space; pass 11 for release images.
const (
	DefaultZstdLevel = 3
	DefaultXZLevel   = 6
	DefaultGzipLevel = 9
	DefaultBlockSize = 128 << 10
)

var defaultLevels = map[Compression]int{Zstd: DefaultZstdLevel, XZ: DefaultXZLevel, Gzip: DefaultGzipLevel}

// Levels returns the levels keel accepts for c, weakest first. Each gives a
// different image: a level that would silently mean the same as another is
// refused rather than accepted. The pure-Go zstd encoder has four strengths,
// written as the zstd levels they approximate (fastest 1, default 3, better
// 7, best 11); the pure-Go LZMA2 encoder has one, xz's default preset 6;
// gzip has all nine.
func Levels(c Compression) []int {
	switch c {
	case Zstd:
		return []int{1, 3, 7, 11}
	case XZ:
		return []int{6}
	case Gzip:
		return []int{1, 2, 3, 4, 5, 6, 7, 8, 9}
	}
	return nil
}

// levelError explains why level is refused for c, naming the accepted ones.
func levelError(c Compression, level int) error {
	var why string
	switch c {
	case Zstd:
		why = " (keel's pure-Go zstd encoder has four strengths)"
	case XZ:
		why = " (keel's pure-Go LZMA2 encoder has one strength)"
	}
	ls := Levels(c)
	names := make([]string, len(ls))
	for i, l := range ls {
		names[i] = strconv.Itoa(l)
	}
	accepted := strings.Join(names, ", ")
	if c == Gzip {
		accepted = "1 to 9"
	}
	return fmt.Errorf("%s level %d is not supported: use %s%s", c, level, accepted, why)
}

func (o Options) withDefaults() (Options, error) {
	if o.Compression == "" {
		o.Compression = Zstd
	}
	def, ok := defaultLevels[o.Compression]
	if !ok {
		return o, fmt.Errorf("unsupported compressor %q (known: zstd, xz, gzip)", o.Compression)
	}
	if o.Level == 0 {
		o.Level = def
	}
	if !slices.Contains(Levels(o.Compression), o.Level) {
		return o, levelError(o.Compression, o.Level)
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
