package format

import (
	"encoding/hex"
	"hash/crc32"
	"strings"
)

// vhdx (Microsoft's [MS-VHDX] 2.0), a dynamic disk of 1 MiB blocks, laid
// out as
//
//	0        file type identifier
//	64 KiB   header 1, 128 KiB header 2 (the current one: higher sequence)
//	192 KiB  region table, 256 KiB its copy
//	1 MiB    log (1 MiB, empty: the log GUID is zero, nothing to replay)
//	2 MiB    metadata (1 MiB): table, then the items from 64 KiB on
//	3 MiB    BAT, a whole number of MiB
//	then     the blocks that hold data, in disk order
//
// A block not in the file is PAYLOAD_BLOCK_NOT_PRESENT, which a disk
// without a parent reads as zeros; the sector bitmap entries the BAT
// interleaves every chunk ratio blocks are for differencing disks and
// stay zero. The GUIDs (file and data write, page 83) come from the
// content.

const (
	vhdxBlock       = 1 << 20
	mib             = 1 << 20
	vhdxLogOffset   = 1 * mib
	vhdxLogLength   = 1 * mib
	vhdxMetaOffset  = 2 * mib
	vhdxMetaLength  = 1 * mib
	vhdxBATOffset   = 3 * mib
	vhdxChunkRatio  = (1 << 23) * sector / vhdxBlock
	vhdxFullPresent = 6 // PAYLOAD_BLOCK_FULLY_PRESENT
	vhdxMax         = 64 << 40
)

// The region and metadata item GUIDs [MS-VHDX] defines.
var (
	vhdxRegionBAT      = guid("2DC27766-F623-4200-9D64-115E9BFD4A08")
	vhdxRegionMetadata = guid("8B7CA206-4790-4B9A-B8FE-575F050F886E")
	vhdxFileParams     = guid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
	vhdxDiskSize       = guid("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
	vhdxPage83         = guid("BECA12AB-B2E6-4523-93EF-C309E000C746")
	vhdxLogicalSector  = guid("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
	vhdxPhysicalSector = guid("CDA348C7-445D-4471-9CC9-E9885251C556")
)

// guid encodes a GUID the way VHDX stores it: the first three fields
// little-endian, the last eight bytes as written.
func guid(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		panic("bad GUID " + s)
	}
	b[0], b[1], b[2], b[3] = b[3], b[2], b[1], b[0]
	b[4], b[5] = b[5], b[4]
	b[6], b[7] = b[7], b[6]
	return b
}

// derivedGUID is a version-4-shaped GUID from the content digest, in
// VHDX's byte order.
func derivedGUID(s *scan, purpose string) []byte {
	b := s.content(purpose)[:16]
	// Byte 7 holds the version and byte 8 the variant once the first
	// three fields are stored little-endian.
	b[7] = b[7]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return b
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum fills the CRC-32C at b[4:8], computed with that field zero.
func checksum(b []byte) {
	le32(b[4:], 0)
	le32(b[4:], crc32.Checksum(b, castagnoli))
}

func writeVHDX(w *writer, s *scan) error {
	blocks := ceilDiv(s.size, vhdxBlock)
	batEntries := blocks + (blocks-1)/vhdxChunkRatio
	batLength := ceilDiv(batEntries*8, mib) * mib
	dataOff := vhdxBATOffset + batLength

	id := make([]byte, 64<<10)
	copy(id, "vhdxfile")
	for i, r := range "keel" {
		le16(id[8+2*i:], uint16(r))
	}
	w.write(id)

	fileGUID, dataGUID := derivedGUID(s, "vhdx file write"), derivedGUID(s, "vhdx data write")
	for seq := range uint64(2) {
		h := make([]byte, 64<<10)
		copy(h, "head")
		le64(h[8:], seq+1)
		copy(h[16:], fileGUID)
		copy(h[32:], dataGUID)
		// log GUID h[48:64] zero: the log is empty
		// log version h[64:66] 0
		le16(h[66:], 1) // version
		le32(h[68:], vhdxLogLength)
		le64(h[72:], vhdxLogOffset)
		checksum(h[:4096])
		w.write(h)
	}

	rt := make([]byte, 64<<10)
	copy(rt, "regi")
	le32(rt[8:], 2) // entry count
	for i, r := range []struct {
		guid      []byte
		off, size int64
	}{{vhdxRegionBAT, vhdxBATOffset, batLength}, {vhdxRegionMetadata, vhdxMetaOffset, vhdxMetaLength}} {
		e := rt[16+32*i:]
		copy(e, r.guid)
		le64(e[16:], uint64(r.off))
		le32(e[24:], uint32(r.size))
		le32(e[28:], 1) // required
	}
	checksum(rt)
	w.write(rt)
	w.write(rt)
	w.pad(vhdxLogOffset)
	w.pad(vhdxLogOffset + vhdxLogLength) // the empty log

	meta := make([]byte, vhdxMetaLength)
	copy(meta, "metadata")
	const (
		isVirtualDisk = 2
		isRequired    = 4
		items         = 64 << 10
	)
	type item struct {
		guid  []byte
		flags uint32
		value []byte
	}
	u32 := func(v uint32) []byte { b := make([]byte, 4); le32(b, v); return b }
	u64 := func(v uint64) []byte { b := make([]byte, 8); le64(b, v); return b }
	list := []item{
		// block size, and flags 0: blocks may be unmapped, no parent
		{vhdxFileParams, isRequired, append(u32(vhdxBlock), u32(0)...)},
		{vhdxDiskSize, isVirtualDisk | isRequired, u64(uint64(s.size))},
		{vhdxLogicalSector, isVirtualDisk | isRequired, u32(sector)},
		{vhdxPhysicalSector, isVirtualDisk | isRequired, u32(sector)},
		{vhdxPage83, isVirtualDisk | isRequired, derivedGUID(s, "vhdx page 83")},
	}
	le16(meta[10:], uint16(len(list)))
	at := items
	for i, it := range list {
		e := meta[32+32*i:]
		copy(e, it.guid)
		le32(e[16:], uint32(at))
		le32(e[20:], uint32(len(it.value)))
		le32(e[24:], it.flags)
		copy(meta[at:], it.value)
		at += len(it.value)
	}
	w.write(meta)

	// The blocks with any non-zero cluster, in disk order.
	var present []int64
	for _, c := range s.alloc {
		if b := c * cluster / vhdxBlock; len(present) == 0 || present[len(present)-1] != b {
			present = append(present, b)
		}
	}
	bat := make([]byte, batLength)
	for i, b := range present {
		le64(bat[(b+b/vhdxChunkRatio)*8:], uint64(dataOff+int64(i)*vhdxBlock)|vhdxFullPresent)
	}
	w.write(bat)

	w.total = int64(len(present)) * vhdxBlock
	buf := make([]byte, vhdxBlock)
	for _, b := range present {
		w.data(s, buf, b*vhdxBlock, vhdxBlock)
	}
	return w.err
}
