// Package disk lays out and writes keel's GPT disk: ESP, root-a, root-b and
// data (DESIGN §2), with every GUID derived from a seed so that two builds of
// the same profile are byte-identical.
package disk

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
)

// Partition type GUIDs from the UAPI Discoverable Partitions Specification.
const (
	TypeESP       = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	TypeRootX8664 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
	TypeRootArm64 = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"
	TypeLinuxData = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	// TypeBIOSBoot holds GRUB's core.img on a GPT disk booted by BIOS.
	TypeBIOSBoot = "21686148-6449-6E6F-744E-656564454649"
)

// Partition labels, which are also how keel-init and keelctl find them.
const (
	LabelESP   = "esp"
	LabelRootA = "root-a"
	LabelRootB = "root-b"
	LabelData  = "data"
	// LabelBIOSBoot is the BIOS boot partition, in the gap before the
	// first MiB (see Sizes.BIOSBoot).
	LabelBIOSBoot = "bios-boot"
)

// The BIOS boot partition fills the gap between the primary GPT and the
// first partition: no MiB of the disk moves, and its number comes last, so
// the ESP stays partition 1 and the slots 2 and 3.
const (
	biosBootStart = 64 * sector // 32 KiB: past the GPT's 34 sectors, 4 KiB aligned
	biosBootSize  = align - biosBootStart
)

const (
	sector = 512
	align  = 1 << 20 // partitions start on MiB boundaries
	// gptReserve is what the primary and backup GPT need at each end: the
	// protective MBR, header and 128 entries at the start, entries and
	// header at the end.
	gptReserve = 34 * sector
)

// Sizes are the partition sizes a profile asks for.
type Sizes struct {
	Total int64 // 0: just big enough
	ESP   int64
	Slot  int64
	Data  int64
	// BIOSBoot adds a BIOS boot partition, for a loader that boots by
	// BIOS (GRUB's core.img).
	BIOSBoot bool
	// Arch is the profile's architecture, which picks the root slots'
	// partition type: "x86_64" (or "") or "aarch64".
	Arch string
}

// RootType is the Discoverable Partitions Specification's root partition
// type for arch ("" is x86_64). Nothing of keel's finds a slot by its type
// (keel-init and keelctl go by label and GUID), but systemd's tools and
// a reader of the table do.
func RootType(arch string) (string, error) {
	switch arch {
	case "", "x86_64":
		return TypeRootX8664, nil
	case "aarch64":
		return TypeRootArm64, nil
	}
	return "", fmt.Errorf("no root partition type for architecture %q", arch)
}

// RootArch is the architecture whose root partition type typ is (any
// case), "" for none: how `keel run` tells what machine a disk needs.
func RootArch(typ string) string {
	switch strings.ToUpper(typ) {
	case TypeRootX8664:
		return "x86_64"
	case TypeRootArm64:
		return "aarch64"
	}
	return ""
}

// Partition is one planned partition.
type Partition struct {
	Number int
	Label  string
	Type   string
	GUID   string
	Start  int64 // bytes
	Size   int64 // bytes
}

// Layout is a planned disk.
type Layout struct {
	Size       int64
	GUID       string
	Partitions []Partition
}

// Slot returns the root partition of slot "a" or "b".
func (l *Layout) Slot(slot string) (Partition, bool) {
	return l.Find("root-" + slot)
}

// Find returns the partition with the given label.
func (l *Layout) Find(label string) (Partition, bool) {
	for _, p := range l.Partitions {
		if p.Label == label {
			return p, true
		}
	}
	return Partition{}, false
}

// Size limits: what keel's own formatters accept, checked against them by
// TestLimitsMatchFormatters.
const (
	// MinESP is the smallest FAT32 volume image/fat formats: 65525
	// clusters of one sector (fewer, and every reader takes the volume for
	// FAT16), two FATs of 512 sectors and 32 reserved sectors.
	MinESP = (65525 + 2*512 + 32) * sector
	// MaxESP is FAT32's limit: a 32-bit count of sectors.
	MaxESP = 0xFFFFFFFF * sector
	// MinData is the smallest ext4 image/ext4 formats with a journal:
	// 2048 blocks of 4 KiB.
	MinData = 2048 * 4096
	// MaxData is 2^32 blocks of 4 KiB: more needs ext4's 64bit feature,
	// which image/ext4 does not write.
	MaxData = 1<<32*4096 - sector
	// maxPart bounds every size, beyond any disk keel builds and low enough
	// that adding them up cannot overflow.
	maxPart = 1 << 50
)

// SizeError is a size Plan cannot lay out. Field is the profile field
// that holds it: "disk.esp", "disk.slot", "disk.data" or "disk.size".
type SizeError struct {
	Field string
	Size  int64 // what was asked
	// Limit is the least (if Size is below it) or most (if above) that
	// would do, for the Reason given; 0 when Size is not whole sectors.
	Limit  int64
	Reason string // e.g. "FAT32 (65525 clusters) needs at least"
}

func (e *SizeError) Error() string {
	return e.Field + ": " + e.Explain(func(n int64) string { return fmt.Sprintf("%d bytes", n) })
}

// Explain says what is wrong without the field, writing sizes with size:
// profile validation passes its own size notation.
func (e *SizeError) Explain(size func(int64) string) string {
	switch {
	case e.Limit == 0:
		return fmt.Sprintf("%s is not a whole number of %d-byte sectors", size(e.Size), sector)
	case e.Size < e.Limit:
		s := fmt.Sprintf("%s is too small: %s %s", size(e.Size), e.Reason, size(e.Limit))
		if e.Limit%align != 0 {
			s += ", say " + size(roundUp(e.Limit, align))
		}
		return s
	default:
		return fmt.Sprintf("%s is too large: %s %s", size(e.Size), e.Reason, size(e.Limit))
	}
}

// Plan lays out the four partitions in order, each starting on a MiB
// boundary, and derives the disk and partition GUIDs from seed. It is the
// one place that decides whether sizes fit: profile validation calls it,
// and the default disk size is the Size it picks when s.Total is 0. Every
// partition size that does not fit is reported, each a *SizeError, joined.
func Plan(s Sizes, seed []byte) (*Layout, error) {
	var errs []error
	for _, c := range []struct {
		field string
		v     int64
		min   int64
		needs string
		max   int64
		holds string
	}{
		{"disk.esp", s.ESP, MinESP, "FAT32 (65525 clusters) needs at least", MaxESP, "FAT32 holds at most"},
		{"disk.slot", s.Slot, sector, "a root slot needs at least", maxPart, "keel lays out at most"},
		{"disk.data", s.Data, MinData, "ext4 with a journal needs at least", MaxData, "ext4 without its 64bit feature holds at most"},
	} {
		switch {
		case c.v < c.min:
			errs = append(errs, &SizeError{Field: c.field, Size: c.v, Limit: c.min, Reason: c.needs})
		case c.v > c.max:
			errs = append(errs, &SizeError{Field: c.field, Size: c.v, Limit: c.max, Reason: c.holds})
		case c.v%sector != 0:
			errs = append(errs, &SizeError{Field: c.field, Size: c.v})
		}
	}
	rootType, err := RootType(s.Arch)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	l := &Layout{GUID: GUID(seed, "disk")}
	at := int64(align)
	add := func(label, typ string, size int64) {
		l.Partitions = append(l.Partitions, Partition{
			Number: len(l.Partitions) + 1, Label: label, Type: typ,
			GUID: GUID(seed, "partition "+label), Start: at, Size: size,
		})
		at += roundUp(size, align)
	}
	add(LabelESP, TypeESP, s.ESP)
	add(LabelRootA, rootType, s.Slot)
	add(LabelRootB, rootType, s.Slot)
	add(LabelData, TypeLinuxData, s.Data)
	if s.BIOSBoot {
		l.Partitions = append(l.Partitions, Partition{
			Number: len(l.Partitions) + 1, Label: LabelBIOSBoot, Type: TypeBIOSBoot,
			GUID: GUID(seed, "partition "+LabelBIOSBoot), Start: biosBootStart, Size: biosBootSize,
		})
	}
	need := at + gptReserve
	l.Size = roundUp(need, align)
	if s.Total != 0 {
		if s.Total < need {
			return nil, &SizeError{Field: "disk.size", Size: s.Total, Limit: need,
				Reason: "esp, two slots and data, each starting on a MiB boundary, and the two partition tables need at least"}
		}
		if s.Total%sector != 0 {
			return nil, &SizeError{Field: "disk.size", Size: s.Total}
		}
		l.Size = s.Total
	}
	return l, nil
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// GUID derives a stable RFC 4122 version-4-shaped GUID from seed and a
// purpose string.
func GUID(seed []byte, purpose string) string {
	h := sha256.New()
	h.Write(seed)
	h.Write([]byte{0})
	h.Write([]byte(purpose))
	b := h.Sum(nil)[:16]
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
