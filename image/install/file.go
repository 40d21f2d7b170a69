package install

import (
	"fmt"
	"os"
	"time"

	"keel/bootloader"
	"keel/bootloader/espfat"
	"keel/bootloader/systemdboot"
	"keel/image/disk"
	"keel/image/fat"
)

// DiskFile is a keel disk image file opened for an offline update.
type DiskFile struct {
	Target
	File *os.File
}

// OpenFile opens the disk image at name for updating. Nothing is booted,
// so the "booted" slot is the one the loader would boot: the newest good
// entry's. Files written to the ESP get the time when (FAT keeps local
// time; keel treats it as UTC).
func OpenFile(name string, when time.Time) (*DiskFile, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	t, err := OpenDisk(f, fi.Size(), when)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &DiskFile{Target: *t, File: f}, nil
}

// Close closes the file; Install has already synced it.
func (d *DiskFile) Close() error { return d.File.Close() }

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
	t := &Target{Disk: dev, Layout: l, ESP: espfat.ESP{FS: fs}, Loader: systemdboot.Entries{}}
	es, err := t.Loader.Entries(t.ESP)
	if err != nil {
		return nil, err
	}
	e, ok := NewestGood(es)
	if !ok {
		return nil, fmt.Errorf("no good boot entry: which slot runs is unknown")
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
