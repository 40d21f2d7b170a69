package disk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/diskfs/go-diskfs/partition/gpt"
)

// Contents says what goes into each partition. Root-b stays empty (zero)
// until the first update.
type Contents struct {
	Layout *Layout
	// Root writes slot A's root filesystem at offset 0 of w, which refuses
	// writes past the slot's end (and can read back what was written, for
	// a verity tree), and returns the slot payload's size.
	Root func(ctx context.Context, w ReadWriterAt) (int64, error)
	// ESP formats and fills the ESP in w (size bytes, starting at LBA
	// startLBA of the disk).
	ESP func(w ReadWriterAt, size int64, startLBA uint32) error
	// Data formats the data partition in w.
	Data func(w io.WriterAt, size int64) error
	// Boot, last, writes what a BIOS boots from outside the partitions'
	// filesystems: the MBR's boot code and the BIOS boot partition.
	Boot func(disk ReadWriterAt, l *Layout) error
}

// ReadWriterAt is a partition region being edited.
type ReadWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// Result reports what Write did.
type Result struct {
	RootSize int64
}

// ErrPartitionFull is returned when the root filesystem does not fit its slot.
var ErrPartitionFull = errors.New("partition full")

// Write builds the disk image at name. It writes a sparse temporary file in
// the same directory and renames it over name only when every part is
// written and synced, so a failed build leaves whatever was at name before.
func Write(ctx context.Context, name string, c Contents) (*Result, error) {
	dir, base := filepath.Split(name)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	res, err := write(ctx, f, c)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o644); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("sync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	ok = true
	return res, nil
}

func write(ctx context.Context, f *os.File, c Contents) (*Result, error) {
	l := c.Layout
	if err := f.Truncate(l.Size); err != nil {
		return nil, fmt.Errorf("size disk image: %w", err)
	}
	if err := WriteGPT(f, l); err != nil {
		return nil, err
	}
	res := &Result{}
	if c.Root != nil {
		a, _ := l.Slot("a")
		n, err := c.Root(ctx, &Region{W: f, R: f, Off: a.Start, Size: a.Size})
		if err != nil {
			return nil, fmt.Errorf("write slot a: %w", err)
		}
		res.RootSize = n
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.ESP != nil {
		p, _ := l.Find(LabelESP)
		if err := c.ESP(&Region{W: f, R: f, Off: p.Start, Size: p.Size}, p.Size, uint32(p.Start/sector)); err != nil {
			return nil, fmt.Errorf("write esp: %w", err)
		}
	}
	if c.Data != nil {
		p, _ := l.Find(LabelData)
		if err := c.Data(&Region{W: f, Off: p.Start, Size: p.Size}, p.Size); err != nil {
			return nil, fmt.Errorf("write data partition: %w", err)
		}
	}
	if c.Boot != nil {
		if err := c.Boot(f, l); err != nil {
			return nil, fmt.Errorf("write BIOS boot code: %w", err)
		}
	}
	return res, nil
}

// WriteGPT writes the protective MBR and both GPT copies for l.
func WriteGPT(f *os.File, l *Layout) error {
	t := &gpt.Table{
		LogicalSectorSize:  sector,
		PhysicalSectorSize: sector,
		GUID:               l.GUID,
		ProtectiveMBR:      true,
	}
	for _, p := range l.Partitions {
		t.Partitions = append(t.Partitions, &gpt.Partition{
			Index: p.Number,
			Start: uint64(p.Start / sector),
			End:   uint64((p.Start+p.Size)/sector - 1),
			Size:  uint64(p.Size),
			Type:  gpt.Type(strings.ToUpper(p.Type)),
			Name:  p.Label,
			GUID:  p.GUID,
		})
	}
	if err := t.Write(f, l.Size); err != nil {
		return fmt.Errorf("write partition table: %w", err)
	}
	return nil
}

// Region is a partition of a disk image: offsets are relative to its start
// and nothing is written past its end.
type Region struct {
	W    io.WriterAt
	R    io.ReaderAt
	Off  int64
	Size int64
}

func (r *Region) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > r.Size {
		return 0, fmt.Errorf("%w: write of %d bytes at %d, partition is %d bytes", ErrPartitionFull, len(p), off, r.Size)
	}
	return r.W.WriteAt(p, r.Off+off)
}

func (r *Region) ReadAt(p []byte, off int64) (int, error) {
	if r.R == nil {
		return 0, errors.New("region is write-only")
	}
	if off < 0 || off >= r.Size {
		return 0, io.EOF
	}
	if int64(len(p)) > r.Size-off {
		n, err := r.R.ReadAt(p[:r.Size-off], r.Off+off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return r.R.ReadAt(p, r.Off+off)
}
