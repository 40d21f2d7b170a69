package install

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"

	"keel/image/disk"
)

// ReadLayout reads the primary GPT of a disk with 512-byte sectors into a
// disk.Layout: partitions by label, as image/disk planned them. It works
// on any io.ReaderAt: an image file or /dev/vda.
func ReadLayout(r io.ReaderAt, size int64) (*disk.Layout, error) {
	hdr := make([]byte, 512)
	if _, err := r.ReadAt(hdr, 512); err != nil {
		return nil, fmt.Errorf("read GPT header: %w", err)
	}
	if string(hdr[:8]) != "EFI PART" {
		return nil, fmt.Errorf("no GPT: the disk has no \"EFI PART\" header at LBA 1")
	}
	le := binary.LittleEndian
	lba, n, esize := le.Uint64(hdr[72:]), le.Uint32(hdr[80:]), le.Uint32(hdr[84:])
	if n == 0 || n > 1024 || esize < 128 || esize > 4096 {
		return nil, fmt.Errorf("implausible GPT: %d entries of %d bytes", n, esize)
	}
	ents := make([]byte, int(n)*int(esize))
	if _, err := r.ReadAt(ents, int64(lba)*512); err != nil {
		return nil, fmt.Errorf("read GPT entries: %w", err)
	}
	l := &disk.Layout{Size: size, GUID: guid(hdr[56:72])}
	for i := 0; i < int(n); i++ {
		e := ents[i*int(esize) : (i+1)*int(esize)]
		if allZero(e[:16]) {
			continue
		}
		first, last := int64(le.Uint64(e[32:])), int64(le.Uint64(e[40:]))
		if last < first || (size > 0 && (last+1)*512 > size) {
			return nil, fmt.Errorf("GPT entry %d: sectors %d-%d are outside the disk", i+1, first, last)
		}
		u := make([]uint16, 36)
		for j := range u {
			u[j] = le.Uint16(e[56+2*j:])
		}
		name := strings.TrimRight(string(utf16.Decode(u)), "\x00")
		l.Partitions = append(l.Partitions, disk.Partition{
			Number: i + 1, Label: name, Type: guid(e[0:16]), GUID: guid(e[16:32]),
			Start: first * 512, Size: (last - first + 1) * 512,
		})
	}
	return l, nil
}

// guid formats GPT's mixed-endian GUID bytes as image/disk does.
func guid(g []byte) string {
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
