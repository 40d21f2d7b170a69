// Package gpt reads a GUID Partition Table (UEFI 2.10 §5.3) from a disk with
// 512-byte sectors: the primary at LBA 1, checked by its header and
// partition-array CRC32s, and the backup at the end of the disk when the
// primary is damaged, as firmware and the Linux kernel do.
//
// It uses the standard library only, so that keel-init (a static PID 1)
// can link it. image/disk writes keel's GPT; this package reads any.
//
// The disk is hostile input: Read never panics, allocates at most
// maxArrayBytes for a partition array whatever the header says, and checks
// every LBA against the disk before using it.
package gpt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"unicode/utf16"
)

// SectorSize is the logical sector size Read assumes: keel's disks, virtio
// disks and image files all have 512-byte sectors.
const SectorSize = 512

const (
	signature     = "EFI PART"
	minHeaderSize = 92
	minEntrySize  = 128
	maxEntrySize  = 4096
	// maxArrayBytes bounds the partition array: 8192 entries of 128 bytes,
	// 64 times the usual 128 entries.
	maxArrayBytes = 1 << 20
	nameUnits     = 36 // UTF-16 code units in an entry's name
)

var (
	// ErrNoGPT is returned when neither the primary nor the backup location
	// holds a GPT header.
	ErrNoGPT = errors.New("no GPT")
	// ErrDamaged is returned when a GPT is there but neither copy is intact.
	ErrDamaged = errors.New("GPT damaged")

	// errNoHeader: no "EFI PART" signature where a header should be.
	errNoHeader = errors.New("no GPT header")
)

// Partition is one used entry of the partition array.
type Partition struct {
	Number     int    // entry index, from 1: the kernel's partition number
	Type       string // partition type GUID, e.g. C12A7328-F81F-11D2-BA4B-00A0C93EC93B
	GUID       string // unique partition GUID (PARTUUID)
	Name       string // partition name (PARTLABEL)
	FirstLBA   uint64
	LastLBA    uint64 // inclusive
	Attributes uint64
}

// Offset is where the partition starts, in bytes from the start of the disk.
func (p Partition) Offset() int64 { return int64(p.FirstLBA) * SectorSize }

// Size is the partition's length in bytes.
func (p Partition) Size() int64 { return int64(p.LastLBA-p.FirstLBA+1) * SectorSize }

// Table is a GPT as read from a disk.
type Table struct {
	DiskGUID       string
	FirstUsableLBA uint64
	LastUsableLBA  uint64
	// Partitions are the used entries, in entry order.
	Partitions []Partition

	// FromBackup says the table was read from the backup GPT because the
	// primary was damaged; PrimaryErr says how.
	FromBackup bool
	PrimaryErr error
	// BackupErr says what is wrong with the backup when the primary was
	// used: missing, damaged or not matching the primary. Nil when the
	// backup is a faithful copy.
	BackupErr error
}

// Find returns the partition with the given name.
func (t *Table) Find(name string) (Partition, bool) {
	for _, p := range t.Partitions {
		if p.Name == name {
			return p, true
		}
	}
	return Partition{}, false
}

// ReadFile reads the GPT of the disk or image file at name. A block device's
// size comes from seeking to its end, as its Stat size is 0.
func ReadFile(name string) (*Table, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("size of %s: %w", name, err)
	}
	t, err := Read(f, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}

// Read reads the GPT of a disk of size bytes. It uses the primary GPT when
// both its CRCs and its header's fields check out, and otherwise the
// backup: at the LBA the primary's header names, if that header is intact,
// and at the disk's last LBA.
func Read(r io.ReaderAt, size int64) (*Table, error) {
	if size < 3*SectorSize {
		return nil, fmt.Errorf("%w: %d bytes is too small to hold one", ErrNoGPT, size)
	}
	d := &reader{r: r, lastLBA: uint64(size/SectorSize) - 1}
	t, h, perr := d.table(1)
	if perr == nil {
		t.BackupErr = d.checkBackup(h)
		return t, nil
	}
	tried := []uint64{d.lastLBA}
	if h != nil && h.altLBA != d.lastLBA && h.altLBA > 1 && h.altLBA <= d.lastLBA {
		// Its CRC held: the backup is probably where it says, e.g. on a
		// disk that has grown since (an image written to a larger disk).
		tried = []uint64{h.altLBA, d.lastLBA}
	}
	var berr error
	for _, lba := range tried {
		b, _, err := d.table(lba)
		if err == nil {
			b.FromBackup, b.PrimaryErr = true, perr
			return b, nil
		}
		if berr == nil || !errors.Is(err, errNoHeader) {
			berr = err
		}
	}
	if errors.Is(perr, errNoHeader) && errors.Is(berr, errNoHeader) {
		return nil, fmt.Errorf("%w: no \"EFI PART\" header at LBA 1 or at the last LBA, %d", ErrNoGPT, d.lastLBA)
	}
	return nil, fmt.Errorf("%w: %w; %w", ErrDamaged, perr, berr)
}

type reader struct {
	r       io.ReaderAt
	lastLBA uint64
}

// header is the part of a GPT header Read uses (UEFI table 5.5).
type header struct {
	myLBA, altLBA             uint64
	firstUsable, lastUsable   uint64
	diskGUID                  [16]byte
	entryLBA                  uint64
	entries, entrySize        uint32
	arrayCRC                  uint32
	arraySectors              uint64
	headerSize, revision, crc uint32
}

// table reads and checks the header at lba and its partition array. When
// only the array is at fault it also returns the header, whose CRC held.
func (d *reader) table(lba uint64) (*Table, *header, error) {
	what := fmt.Sprintf("backup GPT (LBA %d)", lba)
	if lba == 1 {
		what = "primary GPT (LBA 1)"
	}
	h, err := d.header(lba)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	t, err := d.entries(h)
	if err != nil {
		return nil, h, fmt.Errorf("%s: %w", what, err)
	}
	return t, h, nil
}

func (d *reader) read(b []byte, lba uint64) error {
	n, err := d.r.ReadAt(b, int64(lba)*SectorSize)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (d *reader) header(lba uint64) (*header, error) {
	b := make([]byte, SectorSize)
	if err := d.read(b, lba); err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	if string(b[:8]) != signature {
		return nil, errNoHeader
	}
	le := binary.LittleEndian
	h := &header{
		revision: le.Uint32(b[8:]), headerSize: le.Uint32(b[12:]), crc: le.Uint32(b[16:]),
		myLBA: le.Uint64(b[24:]), altLBA: le.Uint64(b[32:]),
		firstUsable: le.Uint64(b[40:]), lastUsable: le.Uint64(b[48:]),
		entryLBA: le.Uint64(b[72:]), entries: le.Uint32(b[80:]), entrySize: le.Uint32(b[84:]),
		arrayCRC: le.Uint32(b[88:]),
	}
	copy(h.diskGUID[:], b[56:72])
	// The CRC first: a header that fails it says nothing reliable, and
	// "CRC mismatch" is the truest report of a flipped bit.
	if h.headerSize < minHeaderSize || h.headerSize > SectorSize {
		return nil, fmt.Errorf("header size %d is not between %d and %d", h.headerSize, minHeaderSize, SectorSize)
	}
	le.PutUint32(b[16:], 0)
	if got := crc32.ChecksumIEEE(b[:h.headerSize]); got != h.crc {
		return nil, fmt.Errorf("header CRC32 is 0x%08x, its content gives 0x%08x", h.crc, got)
	}
	if h.revision>>16 != 1 {
		return nil, fmt.Errorf("revision %d.%d is not 1.x", h.revision>>16, h.revision&0xffff)
	}
	if h.myLBA != lba {
		return nil, fmt.Errorf("header at LBA %d says it is at LBA %d", lba, h.myLBA)
	}
	if h.firstUsable < 2 || h.firstUsable > h.lastUsable || h.lastUsable >= d.lastLBA {
		return nil, fmt.Errorf("usable LBAs %d-%d do not fit a disk whose last LBA is %d", h.firstUsable, h.lastUsable, d.lastLBA)
	}
	if h.entrySize < minEntrySize || h.entrySize > maxEntrySize || h.entrySize&(h.entrySize-1) != 0 {
		return nil, fmt.Errorf("entry size %d is not 128 x a power of two, at most %d", h.entrySize, maxEntrySize)
	}
	arrayBytes := uint64(h.entries) * uint64(h.entrySize)
	if arrayBytes > maxArrayBytes {
		return nil, fmt.Errorf("%d entries of %d bytes: more than %d bytes of partition entries", h.entries, h.entrySize, maxArrayBytes)
	}
	h.arraySectors = (arrayBytes + SectorSize - 1) / SectorSize
	if h.arraySectors > 0 {
		first, last := h.entryLBA, h.entryLBA+h.arraySectors-1
		switch {
		case first < 1 || first > d.lastLBA || last > d.lastLBA:
			return nil, fmt.Errorf("partition entries at LBAs %d-%d are outside the disk (last LBA %d)", first, last, d.lastLBA)
		case first <= h.lastUsable && last >= h.firstUsable:
			return nil, fmt.Errorf("partition entries at LBAs %d-%d overlap the usable LBAs %d-%d", first, last, h.firstUsable, h.lastUsable)
		case first <= lba && lba <= last:
			return nil, fmt.Errorf("partition entries at LBAs %d-%d overlap the header", first, last)
		}
	}
	if lba >= h.firstUsable && lba <= h.lastUsable {
		return nil, fmt.Errorf("header is inside the usable LBAs %d-%d", h.firstUsable, h.lastUsable)
	}
	return h, nil
}

// entries reads and checks h's partition array.
func (d *reader) entries(h *header) (*Table, error) {
	arr := make([]byte, h.arraySectors*SectorSize)
	if err := d.read(arr, h.entryLBA); err != nil {
		return nil, fmt.Errorf("reading partition entries: %w", err)
	}
	arr = arr[:uint64(h.entries)*uint64(h.entrySize)]
	if got := crc32.ChecksumIEEE(arr); got != h.arrayCRC {
		return nil, fmt.Errorf("partition entries' CRC32 is 0x%08x, their content gives 0x%08x", h.arrayCRC, got)
	}
	t := &Table{DiskGUID: formatGUID(h.diskGUID[:]), FirstUsableLBA: h.firstUsable, LastUsableLBA: h.lastUsable}
	le := binary.LittleEndian
	for i := range int(h.entries) {
		e := arr[i*int(h.entrySize):]
		if allZero(e[:16]) {
			continue
		}
		p := Partition{
			Number: i + 1, Type: formatGUID(e[0:16]), GUID: formatGUID(e[16:32]),
			FirstLBA: le.Uint64(e[32:]), LastLBA: le.Uint64(e[40:]), Attributes: le.Uint64(e[48:]),
			Name: decodeName(e[56:128]),
		}
		if p.FirstLBA > p.LastLBA || p.FirstLBA < h.firstUsable || p.LastLBA > h.lastUsable {
			return nil, fmt.Errorf("partition %d: LBAs %d-%d are outside the usable LBAs %d-%d", p.Number, p.FirstLBA, p.LastLBA, h.firstUsable, h.lastUsable)
		}
		t.Partitions = append(t.Partitions, p)
	}
	byStart := slices.Clone(t.Partitions)
	slices.SortFunc(byStart, func(a, b Partition) int {
		if a.FirstLBA != b.FirstLBA {
			if a.FirstLBA < b.FirstLBA {
				return -1
			}
			return 1
		}
		return a.Number - b.Number
	})
	for i := 1; i < len(byStart); i++ {
		if a, b := byStart[i-1], byStart[i]; b.FirstLBA <= a.LastLBA {
			return nil, fmt.Errorf("partitions %d and %d overlap", a.Number, b.Number)
		}
	}
	return t, nil
}

// checkBackup reads the backup GPT where the intact primary h says it is
// and reports what, if anything, is wrong with it.
func (d *reader) checkBackup(h *header) error {
	if h.altLBA <= 1 || h.altLBA > d.lastLBA {
		return fmt.Errorf("backup GPT: the primary places it at LBA %d, outside the disk (last LBA %d)", h.altLBA, d.lastLBA)
	}
	_, b, err := d.table(h.altLBA)
	switch {
	case err != nil:
		return err
	case b.diskGUID != h.diskGUID || b.arrayCRC != h.arrayCRC || b.entries != h.entries || b.entrySize != h.entrySize ||
		b.firstUsable != h.firstUsable || b.lastUsable != h.lastUsable:
		return fmt.Errorf("backup GPT (LBA %d) does not match the primary", h.altLBA)
	}
	return nil
}

func decodeName(b []byte) string {
	u := make([]uint16, 0, nameUnits)
	for i := 0; i+1 < len(b) && len(u) < nameUnits; i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// formatGUID writes GPT's mixed-endian GUID bytes as text, in upper case as
// image/disk writes GUIDs.
func formatGUID(g []byte) string {
	le := binary.LittleEndian
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", le.Uint32(g[0:]), le.Uint16(g[4:]), le.Uint16(g[6:]), g[8:10], g[10:16])
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
