package fat

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"time"
)

// ReaderWriterAt is what an FS edits: a file, a block device, or a partition
// of a disk image (see NewSection).
type ReaderWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// Errors callers branch on. ErrNotExist and ErrExist are io/fs's, so
// errors.Is(err, fs.ErrNotExist) works as for os.
var (
	ErrNotExist    = iofs.ErrNotExist
	ErrExist       = iofs.ErrExist
	ErrNotDir      = errors.New("not a directory")
	ErrIsDir       = errors.New("is a directory")
	ErrNotEmpty    = errors.New("directory not empty")
	ErrNoSpace     = errors.New("no space left on filesystem")
	ErrInvalidName = errors.New("invalid file name")
	ErrCorrupt     = errors.New("corrupt filesystem")
	ErrWriteOnly   = errors.New("device is write-only")
)

// OpenOptions control how Open edits a filesystem.
type OpenOptions struct {
	// Time stamps every entry created or changed. The zero value means
	// 1980-01-01 00:00:00, FAT's epoch; pass a SOURCE_DATE_EPOCH-derived time
	// for reproducible images. It is used as given, without time zone
	// conversion (FAT stores local time; keel treats it as UTC).
	Time time.Time
}

// FS is a FAT32 filesystem open for reading and editing. It is not safe for
// concurrent use.
type FS struct {
	dev  ReaderWriterAt
	size int64
	bs   *bootSector

	sectorSize  int
	clusterSize int64
	fatOffset   int64 // byte offset of the first FAT
	fatBytes    int64 // bytes per FAT
	dataOffset  int64 // byte offset of cluster 2

	hasFSInfo       bool
	hasBackupFSInfo bool

	fat   *table
	stamp dosTime
	// dirs caches directory contents by first cluster. Every directory this
	// FS touches stays here; writes go to the device and the cache together,
	// so a directory is read at most once (and never on a write-only device
	// for directories this FS created).
	dirs map[uint32]*dir
	// broken is the first failed write of metadata (FAT, directory,
	// FSInfo). After it the in-memory state may no longer match the device,
	// so every later change is refused; reopen to continue.
	broken error
}

// Open opens the FAT32 filesystem in the first size bytes of rw.
func Open(rw ReaderWriterAt, size int64, opts OpenOptions) (*FS, error) {
	s := make([]byte, 512)
	if size < 512 {
		return nil, fmt.Errorf("open fat32: device of %d bytes is too small", size)
	}
	if err := readFull(rw, s, 0); err != nil {
		return nil, fmt.Errorf("open fat32: read boot sector: %w", err)
	}
	bs, err := parseBootSector(s, size)
	if err != nil {
		return nil, fmt.Errorf("open fat32: %w", err)
	}
	fs := newFS(rw, size, bs, opts.Time)
	if err := fs.loadFAT(fs.clusterCount()); err != nil {
		return nil, fmt.Errorf("open fat32: %w", err)
	}
	if fsi := bs.fsInfo; fsi != 0 && fsi != 0xFFFF && fsi < bs.reserved {
		buf := make([]byte, 512)
		if err := readFull(rw, buf, int64(fsi)*int64(fs.sectorSize)); err != nil {
			return nil, fmt.Errorf("open fat32: read FSInfo: %w", err)
		}
		fs.hasFSInfo = validFSInfo(buf)
		if fs.hasFSInfo {
			// Start allocating where the last writer stopped, as Linux does.
			if hint := leUint32(buf[492:]); fs.fat.valid(hint) {
				fs.fat.last = hint
			}
		}
		if b := bs.backupBoot; fs.hasFSInfo && b != 0 && b != 0xFFFF && b+fsi < bs.reserved {
			if err := readFull(rw, buf, int64(b+fsi)*int64(fs.sectorSize)); err == nil {
				fs.hasBackupFSInfo = validFSInfo(buf)
			}
		}
	}
	if fs.fat.get(bs.rootCluster) == 0 {
		return nil, fmt.Errorf("open fat32: %w: root cluster %d is free in the FAT", ErrCorrupt, bs.rootCluster)
	}
	return fs, nil
}

func newFS(dev ReaderWriterAt, size int64, bs *bootSector, t time.Time) *FS {
	fs := &FS{
		dev:         dev,
		size:        size,
		bs:          bs,
		sectorSize:  int(bs.bytesPerSector),
		clusterSize: int64(bs.secPerClus) * int64(bs.bytesPerSector),
		fatOffset:   int64(bs.reserved) * int64(bs.bytesPerSector),
		fatBytes:    int64(bs.fatSize) * int64(bs.bytesPerSector),
		stamp:       toDOSTime(t),
		dirs:        map[uint32]*dir{},
	}
	fs.dataOffset = fs.fatOffset + int64(bs.numFATs)*fs.fatBytes
	return fs
}

func (fs *FS) clusterCount() uint32 {
	meta := uint64(fs.bs.reserved) + uint64(fs.bs.numFATs)*uint64(fs.bs.fatSize)
	return uint32((uint64(fs.bs.totalSectors) - meta) / uint64(fs.bs.secPerClus))
}

// Sync makes everything written so far durable, if the device can: every
// operation has already written through, so this only forwards to the
// device's Sync (an *os.File has one).
func (fs *FS) Sync() error {
	if err := fs.flushFAT(); err != nil {
		return err
	}
	if s, ok := fs.dev.(interface{ Sync() error }); ok {
		if err := s.Sync(); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
	}
	return nil
}

// Label returns the volume label from the boot sector, without padding.
func (fs *FS) Label() string { return trimSpace(fs.bs.label[:]) }

// VolumeID returns the volume serial number.
func (fs *FS) VolumeID() uint32 { return fs.bs.volumeID }

// FreeBytes returns the space left for file data.
func (fs *FS) FreeBytes() int64 { return int64(fs.fat.free) * fs.clusterSize }

// ClusterSize returns the allocation unit in bytes.
func (fs *FS) ClusterSize() int64 { return fs.clusterSize }

// writeMeta writes metadata, remembering a failure (see FS.broken).
func (fs *FS) writeMeta(p []byte, off int64) (int, error) {
	n, err := fs.dev.WriteAt(p, off)
	if err != nil && fs.broken == nil {
		fs.broken = err
	}
	return n, err
}

// usable refuses changes after a failed metadata write.
func (fs *FS) usable() error {
	if fs.broken != nil {
		return fmt.Errorf("filesystem needs reopening after a failed write: %w", fs.broken)
	}
	return nil
}

func (fs *FS) clusterOffset(c uint32) int64 {
	return fs.dataOffset + int64(c-2)*fs.clusterSize
}

// Section is a window [off, off+size) of a larger device, for a partition
// inside a disk image. It forwards Sync to the device.
type Section struct {
	dev       ReaderWriterAt
	off, size int64
}

// NewSection returns the region of dev starting at off, size bytes long.
func NewSection(dev ReaderWriterAt, off, size int64) *Section {
	return &Section{dev: dev, off: off, size: size}
}

// ReadAt reads inside the section, with io.EOF at its end.
func (s *Section) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= s.size {
		return 0, io.EOF
	}
	if rest := s.size - off; int64(len(p)) > rest {
		n, err := s.dev.ReadAt(p[:rest], s.off+off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return s.dev.ReadAt(p, s.off+off)
}

// WriteAt writes inside the section and refuses to write past its end.
func (s *Section) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > s.size {
		return 0, fmt.Errorf("write at %d+%d: outside section of %d bytes", off, len(p), s.size)
	}
	return s.dev.WriteAt(p, s.off+off)
}

// Sync forwards to the underlying device, if it can sync.
func (s *Section) Sync() error {
	if d, ok := s.dev.(interface{ Sync() error }); ok {
		return d.Sync()
	}
	return nil
}

// writeOnly lets Format work on a plain io.WriterAt: building an image never
// needs to read back (directories it creates are cached), only ReadFile does.
type writeOnly struct{ io.WriterAt }

func (writeOnly) ReadAt([]byte, int64) (int, error) { return 0, ErrWriteOnly }

func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d bytes at %d: %w", len(p), off, err)
}

func leUint32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func trimSpace(b []byte) string {
	n := len(b)
	for n > 0 && (b[n-1] == ' ' || b[n-1] == 0) {
		n--
	}
	return string(b[:n])
}
