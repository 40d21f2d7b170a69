// Package disk lays out and writes keel's GPT disk: ESP, root-a, root-b and
// data (DESIGN §2), with every GUID derived from a seed so that two builds of
// the same profile are byte-identical.
package disk

import (
	"crypto/sha256"
	"fmt"
)

// Partition type GUIDs from the UAPI Discoverable Partitions Specification.
const (
	TypeESP       = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	TypeRootX8664 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
	TypeLinuxData = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
)

// Partition labels, which are also how keel-init and keelctl find them.
const (
	LabelESP   = "esp"
	LabelRootA = "root-a"
	LabelRootB = "root-b"
	LabelData  = "data"
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

// Plan lays out the four partitions in order, each MiB-aligned, and derives
// the disk and partition GUIDs from seed.
func Plan(s Sizes, seed []byte) (*Layout, error) {
	for _, c := range []struct {
		name string
		v    int64
	}{{"esp", s.ESP}, {"slot", s.Slot}, {"data", s.Data}} {
		if c.v <= 0 || c.v%sector != 0 {
			return nil, fmt.Errorf("disk.%s: %d is not a positive multiple of %d bytes", c.name, c.v, sector)
		}
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
	add(LabelRootA, TypeRootX8664, s.Slot)
	add(LabelRootB, TypeRootX8664, s.Slot)
	add(LabelData, TypeLinuxData, s.Data)
	need := at + gptReserve
	l.Size = roundUp(need, align)
	if s.Total != 0 {
		if s.Total < need {
			return nil, fmt.Errorf("disk.size %d is too small: the partitions and tables need %d bytes", s.Total, need)
		}
		if s.Total%sector != 0 {
			return nil, fmt.Errorf("disk.size %d is not a multiple of %d bytes", s.Total, sector)
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
