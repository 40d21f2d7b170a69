package install

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"keel/bootloader"
	_ "keel/bootloader/all" // the loaders an ESP may name
	"keel/bootloader/espfat"
	"keel/image/disk"
	"keel/image/fat"
	"keel/image/format"
)

// DiskFile is a keel disk image file opened for an offline update.
type DiskFile struct {
	Target
	File *os.File
}

// OpenFile opens the disk image at name (a file, or a block device holding
// a keel disk that is not running) for updating. Nothing is booted,
// so the "booted" slot is the one the loader would boot: the newest good
// entry's. Files written to the ESP get the time when (FAT keeps local
// time; keel treats it as UTC; see FileTime).
//
// The file stays locked (flock, exclusive) until Close, so two updates of
// one disk cannot interleave their steps: the second is refused with
// ErrBusy, a *RefusedError, before anything is read or written.
func OpenFile(name string, when time.Time) (*DiskFile, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, Refuse(fmt.Errorf("%w: another update of %s is running", ErrBusy, name))
		}
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	size := fi.Size()
	if fi.Mode()&fs.ModeDevice != 0 {
		// A block device (a disk in a card reader, a loop device) has no
		// size in its inode: its end is where a seek takes it.
		if size, err = f.Seek(0, io.SeekEnd); err != nil {
			f.Close()
			return nil, fmt.Errorf("size of %s: %w", name, err)
		}
	}
	// A converted image has no GPT at its start: say what it is.
	if ft, err := format.Detect(f); err == nil && ft != format.Raw {
		f.Close()
		return nil, Refuse(fmt.Errorf("%s: a %s image; an offline update writes raw images only (build with --format raw, or qemu-img convert -O raw)", name, ft))
	}
	t, err := OpenDisk(f, size, when)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &DiskFile{Target: *t, File: f}, nil
}

// Close closes the file, which releases its lock; Install has already
// synced it.
func (d *DiskFile) Close() error { return d.File.Close() }

// FileTime is the time stamped on the files an offline update writes to a
// disk image's ESP, by keel update and keelctl --disk alike: the
// SOURCE_DATE_EPOCH environment variable (read with getenv) when set, as
// keel build does, else 0, which FAT keeps as its epoch (1980-01-01). The
// same disk and bundle then give the same bytes. On a device the kernel's
// vfat driver stamps the files with the clock instead.
func FileTime(getenv func(string) string) (time.Time, error) {
	v := getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a non-negative integer", v)
	}
	return time.Unix(n, 0).UTC(), nil
}

// OpenDisk makes the Target for a keel disk of size bytes in dev, with
// keel's FAT editor for its ESP (see OpenFile).
func OpenDisk(dev Disk, size int64, when time.Time) (*Target, error) {
	l, err := ReadLayout(dev, size)
	if err != nil {
		return nil, err
	}
	p, ok := l.Find(disk.LabelESP)
	if !ok {
		return nil, fmt.Errorf("no partition labelled %q", disk.LabelESP)
	}
	fs, err := fat.Open(fat.NewSection(dev, p.Start, p.Size), p.Size, fat.OpenOptions{Time: when})
	if err != nil {
		return nil, fmt.Errorf("ESP: %w", err)
	}
	esp := espfat.ESP{FS: fs}
	loader, err := bootloader.ManagerOn(esp)
	if err != nil {
		return nil, fmt.Errorf("ESP: %w", err)
	}
	t := &Target{Disk: dev, Layout: l, ESP: esp, Loader: loader}
	es, err := t.Loader.Entries(t.ESP)
	if errors.Is(err, bootloader.ErrDamagedEntry) {
		return nil, Refuse(fmt.Errorf("%w (which slot boots is unknown: repair or remove it by hand)", err))
	}
	if err != nil {
		return nil, err
	}
	e, ok := NewestGood(es)
	if !ok {
		return nil, Refuse(fmt.Errorf("no good boot entry: which slot runs is unknown"))
	}
	t.Booted = e.Slot
	if t.Running, err = ReadImage(t.ESP, e.Slot, e); err != nil {
		return nil, err
	}
	return t, nil
}

// NewestGood is the entry systemd-boot boots when no trial is pending: the
// newest blessed one.
func NewestGood(es []bootloader.EntryState) (bootloader.EntryState, bool) {
	for _, e := range es { // newest first
		if e.State() == "good" {
			return e, true
		}
	}
	return bootloader.EntryState{}, false
}
