// Package inspect reads a keel disk image back: partitions, boot entries,
// and what each slot holds.
package inspect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"keel/bootloader"
	_ "keel/bootloader/all" // the loaders an ESP may name
	"keel/bootloader/espfat"
	"keel/image/fat"
	"keel/image/format"
	"keel/image/gpt"
	"keel/image/install"
)

// Report is what Inspect finds.
type Report struct {
	Size     int64  `json:"size"`
	DiskGUID string `json:"disk_guid"`
	// GPTWarning is set when one of the two GPT copies is damaged.
	GPTWarning string      `json:"gpt_warning,omitempty"`
	Partitions []Partition `json:"partitions"`
	// Loader is the boot loader the ESP records (bootloader.NameFile).
	Loader  string  `json:"loader"`
	Entries []Entry `json:"entries"`
	Slots   []Slot  `json:"slots"`
}

// Partition is one GPT entry.
type Partition struct {
	Number int    `json:"number"`
	Label  string `json:"label"`
	Type   string `json:"type"`
	GUID   string `json:"guid"`
	Start  int64  `json:"start"`
	Size   int64  `json:"size"`
}

// Entry is a boot-loader entry on the ESP.
type Entry struct {
	File       string `json:"file"`
	Slot       string `json:"slot"`
	Title      string `json:"title"`
	Generation int    `json:"generation"`
	Linux      string `json:"linux"`
	Initrd     string `json:"initrd"`
	Options    string `json:"options"`
	// EFI is the EFI image (a unified kernel image) an efi entry boots
	// instead of Linux, Initrd and Options.
	EFI string `json:"efi,omitempty"`
	// State is "good", "trial" (with TriesLeft) or "bad" (no tries left).
	State     string `json:"state"`
	TriesLeft int    `json:"tries_left,omitempty"`
	TriesDone int    `json:"tries_done,omitempty"`
}

// Slot is one root partition.
type Slot struct {
	Name        string `json:"name"`
	Filesystem  string `json:"filesystem"` // "squashfs" or "empty"
	Bytes       int64  `json:"bytes,omitempty"`
	Compression string `json:"compression,omitempty"`
	Inodes      uint32 `json:"inodes,omitempty"`
	// RootHash is the dm-verity root hash the slot's image.json on the
	// ESP records, when its root has a verity tree.
	RootHash string `json:"root_hash,omitempty"`
}

// File inspects the disk image (or block device) at name. A file with no
// GPT at all is "NAME: not a keel disk (no GPT)".
func File(name string) (*Report, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Seek, not Stat: a block device's Stat size is 0.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("size of %s: %w", name, err)
	}
	// A converted image has no GPT at its start: say what it is instead.
	if ft, err := format.Detect(f); err == nil && ft != format.Raw {
		return nil, fmt.Errorf("%s: a %s image, and keel inspect reads raw images only (qemu-img convert -O raw %s OUT.img makes one)", name, ft, name)
	}
	r, err := Inspect(f, size)
	if errors.Is(err, gpt.ErrNoGPT) {
		return nil, fmt.Errorf("%s: not a keel disk (no GPT)", name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return r, nil
}

// Inspect reads the disk in f, of size bytes. A damaged primary GPT is read
// from its backup, as firmware would; Report.GPTWarning says so.
func Inspect(f io.ReaderAt, size int64) (*Report, error) {
	t, err := gpt.Read(f, size)
	if err != nil {
		return nil, fmt.Errorf("read partition table: %w", err)
	}
	r := &Report{Size: size, DiskGUID: t.DiskGUID}
	switch {
	case t.FromBackup:
		r.GPTWarning = fmt.Sprintf("primary GPT damaged, read from the backup: %v", t.PrimaryErr)
	case t.BackupErr != nil:
		r.GPTWarning = t.BackupErr.Error()
	}
	for _, p := range t.Partitions {
		r.Partitions = append(r.Partitions, Partition{
			Number: p.Number, Label: p.Name, Type: strings.ToLower(p.Type), GUID: strings.ToLower(p.GUID),
			Start: p.Offset(), Size: p.Size(),
		})
	}
	var esp *fat.FS
	for _, p := range r.Partitions {
		sec := io.NewSectionReader(f, p.Start, p.Size)
		switch {
		case p.Label == "esp":
			if esp, err = fat.Open(readOnly{sec}, p.Size, fat.OpenOptions{}); err != nil {
				return nil, fmt.Errorf("open esp: %w", err)
			}
			if r.Loader, err = bootloader.ReadName(espfat.ESP{FS: esp}); err != nil {
				return nil, err
			}
			if r.Entries, err = entries(esp); err != nil {
				return nil, err
			}
		case strings.HasPrefix(p.Label, "root-"):
			r.Slots = append(r.Slots, slot(strings.TrimPrefix(p.Label, "root-"), sec))
		}
	}
	if esp != nil {
		for i, s := range r.Slots {
			// A slot without image.json (empty, or built before it
			// existed) has no root hash to show.
			if im, err := install.ReadImage(espfat.ESP{FS: esp}, s.Name, bootloader.EntryState{}); err == nil {
				r.Slots[i].RootHash = im.RootHash
			}
		}
	}
	return r, nil
}

type readOnly struct{ *io.SectionReader }

func (readOnly) WriteAt([]byte, int64) (int, error) { return 0, fmt.Errorf("read-only") }

// entries reads the ESP's boot entries the way keelctl and the installer
// do, newest generation first.
func entries(esp *fat.FS) ([]Entry, error) {
	m, err := bootloader.ManagerOn(espfat.ESP{FS: esp})
	if err != nil {
		return nil, err
	}
	states, err := m.Entries(espfat.ESP{FS: esp})
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(states))
	for _, st := range states {
		e := Entry{
			File: st.File, Slot: st.Slot, Title: st.Title, Generation: st.Generation,
			Linux: st.Kernel, Initrd: st.Initrd, Options: st.Options, EFI: st.EFI, State: st.State(), TriesDone: st.TriesDone,
		}
		if st.Counted {
			e.TriesLeft = st.Tries
		}
		out = append(out, e)
	}
	return out, nil
}

var compressions = map[uint16]string{1: "gzip", 2: "lzma", 3: "lzo", 4: "xz", 5: "lz4", 6: "zstd"}

func slot(name string, r io.ReaderAt) Slot {
	s := Slot{Name: name, Filesystem: "empty"}
	sb := make([]byte, 96)
	if _, err := r.ReadAt(sb, 0); err != nil {
		return s
	}
	if binary.LittleEndian.Uint32(sb) != 0x73717368 {
		return s
	}
	s.Filesystem = "squashfs"
	s.Inodes = binary.LittleEndian.Uint32(sb[4:])
	s.Compression = compressions[binary.LittleEndian.Uint16(sb[20:])]
	s.Bytes = int64(binary.LittleEndian.Uint64(sb[40:]))
	return s
}
