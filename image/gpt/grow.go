package gpt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Disk is a disk Grow changes in place. Sync must make every write before it
// durable (fsync on a block device also flushes the device's cache).
type Disk interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
}

// GrowOptions say how far Grow extends a partition.
type GrowOptions struct {
	// Align is the multiple of sectors the grown partition's end (its last
	// LBA + 1) is rounded down to; 0 or 1 means none. 8 keeps a 4 KiB
	// filesystem block whole.
	Align uint64
	// MinGain is the fewest sectors worth growing by. A disk only a little
	// larger than the table (the slack after the last MiB of an image) is
	// left as it is: growing means resizing the filesystem too.
	MinGain uint64
}

// Growth reports what Grow found and did.
type Growth struct {
	// Partition is the partition as the table now has it.
	Partition Partition
	// OldLastLBA is its last LBA before; equal to Partition.LastLBA when
	// Grow changed nothing.
	OldLastLBA uint64
	// Written says Grow wrote to the disk: it grew the partition, or it
	// finished a growth a cut had interrupted (Repaired).
	Written bool
	// Repaired says the primary GPT was damaged and Grow rewrote it from
	// the backup at the disk's end.
	Repaired bool
}

// ErrNotLast is returned when the partition to grow is not the last on the
// disk: growing it would run into the next one.
var ErrNotLast = errors.New("not the last partition")

// Grow extends partition number n to the end of a disk of size bytes that is
// larger than its GPT says (an image written to a bigger disk), moving the
// backup GPT to the disk's last LBA. Everything else in the table is kept
// byte for byte: GUIDs, names, attributes, the other entries, the header's
// reserved bytes, and the protective MBR apart from its size field.
//
// It is crash-safe: at every moment one of the two GPTs a reader finds is
// intact and describes either the old or the grown partition, and calling
// Grow again finishes the job. The order:
//
//  1. the new backup (entries, then header at the last LBA) is written and
//     the old backup's header zeroed, then synced. The primary is
//     untouched and still the table every reader uses.
//  2. the protective MBR's size and the new primary (header and entries)
//     are written and synced. A cut inside this leaves a primary whose
//     CRCs fail, and every reader (firmware, the kernel, Read) then takes
//     the new backup at the last LBA; the next Grow rewrites the primary
//     from it (Repaired).
//
// The old backup header is zeroed in step 1 because it lies inside the
// grown partition: left there, it would be a stale table a recovery tool
// could find mid-disk once the filesystem has grown over it.
func Grow(d Disk, size int64, n int, o GrowOptions) (*Growth, error) {
	if size < 3*SectorSize {
		return nil, fmt.Errorf("%w: %d bytes is too small to hold one", ErrNoGPT, size)
	}
	r := &reader{r: d, lastLBA: uint64(size/SectorSize) - 1}
	last := r.lastLBA

	// The table to start from: the primary, or, when the primary is
	// damaged, the backup at the disk's end, which is where step 1 of an
	// interrupted Grow put it. A damaged primary with no backup at the end
	// is not Grow's to judge: Read and the firmware handle that.
	src, h, perr := r.table(1)
	fromBackup := false
	if perr != nil {
		var berr error
		src, h, berr = r.table(last)
		if berr != nil {
			return nil, fmt.Errorf("%w: %w; %w", ErrDamaged, perr, berr)
		}
		fromBackup = true
	}
	var p Partition
	found := false
	for _, q := range src.Partitions {
		if q.Number == n {
			p, found = q, true
		}
	}
	if !found {
		return nil, fmt.Errorf("no partition %d in the GPT", n)
	}
	for _, q := range src.Partitions {
		if q.Number != n && q.FirstLBA > p.LastLBA {
			return nil, fmt.Errorf("partition %d: %w (partition %d starts at LBA %d, after it)", n, ErrNotLast, q.Number, q.FirstLBA)
		}
	}

	newLastUsable := last - h.arraySectors - 1
	end := newLastUsable + 1
	if o.Align > 1 {
		end -= end % o.Align
	}
	newPartLast := p.LastLBA
	if end > p.LastLBA+1 && end-1-p.LastLBA >= max(o.MinGain, 1) {
		newPartLast = end - 1
	}
	g := &Growth{Partition: p, OldLastLBA: p.LastLBA}
	if !fromBackup && newPartLast == p.LastLBA {
		// Nothing to grow. The backup is left where the primary says:
		// moving it alone would gain nothing. But a cut can have lost
		// the protective MBR's new size after the primary was written.
		if h.altLBA == last {
			written, err := fixProtective(d, last, true)
			if err != nil {
				return nil, err
			}
			g.Written = written
		}
		return g, nil
	}
	if fromBackup {
		// Grown already, the primary lost to a cut (or to anything else):
		// the backup's own bounds stand.
		newLastUsable, newPartLast = h.lastUsable, p.LastLBA
	}

	arr := make([]byte, h.arraySectors*SectorSize)
	if err := r.read(arr, h.entryLBA); err != nil {
		return nil, fmt.Errorf("reading partition entries: %w", err)
	}
	le := binary.LittleEndian
	le.PutUint64(arr[uint64(n-1)*uint64(h.entrySize)+40:], newPartLast)
	arrayCRC := crc32.ChecksumIEEE(arr[:uint64(h.entries)*uint64(h.entrySize)])

	hdr := make([]byte, SectorSize)
	if err := r.read(hdr, h.myLBA); err != nil {
		return nil, fmt.Errorf("reading GPT header: %w", err)
	}
	primaryEntries := h.entryLBA
	if fromBackup {
		primaryEntries = 2
	}
	backupEntries := newLastUsable + 1
	if backupEntries+h.arraySectors != last {
		// Only for a table read from a backup that placed its entries
		// elsewhere: keep them against the header, as every tool does.
		backupEntries = last - h.arraySectors
	}
	header := func(my, alt, entries uint64) []byte {
		b := append([]byte(nil), hdr...)
		le.PutUint64(b[24:], my)
		le.PutUint64(b[32:], alt)
		le.PutUint64(b[48:], newLastUsable)
		le.PutUint64(b[72:], entries)
		le.PutUint32(b[88:], arrayCRC)
		le.PutUint32(b[16:], 0)
		le.PutUint32(b[16:], crc32.ChecksumIEEE(b[:h.headerSize]))
		return b
	}
	primary := header(1, last, primaryEntries)
	backup := header(last, 1, backupEntries)

	// Step 1: the new backup, and the old one's header gone.
	if !fromBackup {
		if err := writeAt(d, arr, backupEntries); err != nil {
			return nil, fmt.Errorf("writing the backup GPT's entries: %w", err)
		}
		if err := writeAt(d, backup, last); err != nil {
			return nil, fmt.Errorf("writing the backup GPT header: %w", err)
		}
		if old := h.altLBA; old != last && old > p.LastLBA && old < backupEntries {
			if err := writeAt(d, make([]byte, SectorSize), old); err != nil {
				return nil, fmt.Errorf("clearing the old backup GPT header at LBA %d: %w", old, err)
			}
		}
		if err := d.Sync(); err != nil {
			return nil, fmt.Errorf("syncing the backup GPT: %w", err)
		}
	}

	// Step 2: the protective MBR and the primary.
	if _, err := fixProtective(d, last, false); err != nil {
		return nil, err
	}
	if err := writeAt(d, primary, 1); err != nil {
		return nil, fmt.Errorf("writing the primary GPT header: %w", err)
	}
	if err := writeAt(d, arr, primaryEntries); err != nil {
		return nil, fmt.Errorf("writing the primary GPT's entries: %w", err)
	}
	if err := d.Sync(); err != nil {
		return nil, fmt.Errorf("syncing the primary GPT: %w", err)
	}
	g.Partition.LastLBA = newPartLast
	g.Written, g.Repaired = true, fromBackup
	return g, nil
}

// fixProtective makes the protective MBR cover the disk, and syncs it if
// sync (otherwise the caller's next Sync does).
func fixProtective(d Disk, last uint64, sync bool) (bool, error) {
	mbr := make([]byte, SectorSize)
	if err := (&reader{r: d, lastLBA: last}).read(mbr, 0); err != nil {
		return false, fmt.Errorf("reading the MBR: %w", err)
	}
	if !protectiveSize(mbr, last) {
		return false, nil
	}
	if err := writeAt(d, mbr, 0); err != nil {
		return false, fmt.Errorf("writing the protective MBR: %w", err)
	}
	if sync {
		if err := d.Sync(); err != nil {
			return false, fmt.Errorf("syncing the protective MBR: %w", err)
		}
	}
	return true, nil
}

// protectiveSize sets the size of a protective MBR's 0xEE entry to cover a
// disk whose last LBA is last (at most 2^32-1 sectors, as UEFI says) and
// reports whether it changed anything. A hybrid MBR (more than one entry)
// or no MBR signature is left alone.
func protectiveSize(mbr []byte, last uint64) bool {
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return false
	}
	le := binary.LittleEndian
	at := -1
	for i := range 4 {
		e := mbr[446+16*i : 446+16*(i+1)]
		switch {
		case e[4] == 0xEE && le.Uint32(e[8:]) == 1 && at < 0:
			at = i
		case !allZero(e):
			return false
		}
	}
	if at < 0 {
		return false
	}
	want := uint32(min(last, 0xFFFFFFFF))
	e := mbr[446+16*at:]
	if le.Uint32(e[12:]) == want {
		return false
	}
	le.PutUint32(e[12:], want)
	return true
}

func writeAt(d Disk, b []byte, lba uint64) error {
	_, err := d.WriteAt(b, int64(lba)*SectorSize)
	return err
}
