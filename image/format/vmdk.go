package format

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"
)

// vmdk, monolithicSparse (VMware's Virtual Disk Format 1.1): one file
// holding, in sectors,
//
//	0                  sparse extent header
//	1..20              the descriptor (text, NUL-padded)
//	21..               redundant grain directory and its grain tables
//	then               grain directory: one entry per grain table
//	then               every grain table (512 entries, 32 MiB each),
//	                   all allocated, as VMware itself lays them out
//	from overHead      the non-zero grains (64 KiB), in disk order
//
// The redundant copy is what VMware and qemu-img write too (flag bit 1);
// VMware's repair reads it.
//
// A grain table entry of 0 is a grain that reads as zeros. The descriptor's
// CID, which VMware and VirtualBox compare against a child's parentCID,
// is derived from the content.

const (
	vmdkGrainSectors = cluster / sector
	vmdkGTEntries    = 512
	vmdkGTSectors    = vmdkGTEntries * 4 / sector
	vmdkDescOffset   = 1
	vmdkDescSectors  = 20
	// vmdkMax is a sparse extent's limit: its grain table entries are
	// 32-bit sector numbers. (A disk near it also needs its data and
	// tables to fit below 2 TiB of file: writeVMDK checks.)
	vmdkMax = 2 << 40
)

func writeVMDK(w *writer, s *scan, o Options) error {
	capacity := s.size / sector
	grains := ceilDiv(capacity, vmdkGrainSectors)
	nGT := ceilDiv(grains, vmdkGTEntries)
	gdSectors := ceilDiv(nGT*4, sector)
	tablesSectors := gdSectors + nGT*vmdkGTSectors
	rgdOffset := int64(vmdkDescOffset + vmdkDescSectors)
	gdOffset := rgdOffset + tablesSectors
	overHead := ceilDiv(gdOffset+tablesSectors, vmdkGrainSectors) * vmdkGrainSectors

	if end := overHead + int64(len(s.alloc))*vmdkGrainSectors; end > 1<<32 {
		return fmt.Errorf("%w: %d sectors of tables and data, more than a sparse extent's 32-bit grain offsets reach", ErrSize, end)
	}

	h := make([]byte, sector)
	copy(h, "KDMV")
	le32(h[4:], 1) // version
	le32(h[8:], 3) // flags: newline detection test, redundant grain directory
	le64(h[12:], uint64(capacity))
	le64(h[20:], vmdkGrainSectors)
	le64(h[28:], vmdkDescOffset)
	le64(h[36:], vmdkDescSectors)
	le32(h[44:], vmdkGTEntries)
	le64(h[48:], uint64(rgdOffset))
	le64(h[56:], uint64(gdOffset))
	le64(h[64:], uint64(overHead))
	h[72] = 0 // clean
	copy(h[73:], "\n \r\n")
	// compressAlgorithm 0: none
	w.write(h)

	desc := make([]byte, vmdkDescSectors*sector)
	// The descriptor quotes the name on one line: what would end the
	// quote or the line cannot be in it.
	name := strings.Map(func(r rune) rune {
		if r == '"' || r < ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, filepath.Base(o.Name))
	if o.Name == "" {
		name = "disk.vmdk"
	}
	copy(desc, vmdkDescriptor(capacity, binary.LittleEndian.Uint32(s.content("vmdk CID")), name))
	w.write(desc)

	// The two copies differ only in where their directory points.
	gd := make([]byte, gdSectors*sector)
	gts := make([]byte, vmdkGTSectors*sector)
	for _, dir := range []int64{rgdOffset, gdOffset} {
		for i := range nGT {
			le32(gd[i*4:], uint32(dir+gdSectors+i*vmdkGTSectors))
		}
		w.write(gd)
		next := overHead
		a := s.alloc
		for t := range nGT {
			clear(gts)
			for len(a) > 0 && a[0]/vmdkGTEntries == t {
				le32(gts[a[0]%vmdkGTEntries*4:], uint32(next))
				next += vmdkGrainSectors
				a = a[1:]
			}
			w.write(gts)
		}
	}
	w.pad(overHead * sector)

	w.total = int64(len(s.alloc)) * cluster
	buf := make([]byte, cluster)
	for _, c := range s.alloc {
		w.data(s, buf, c*cluster, cluster)
	}
	return w.err
}

// vmdkDescriptor is the embedded descriptor. The extent is the file
// itself, named as VMware names it; the geometry is the one VMware gives
// an IDE disk: 16 heads, 63 sectors a track.
func vmdkDescriptor(capacity int64, cid uint32, name string) string {
	if cid == 0xffffffff {
		cid = 0xfffffffe // ffffffff means "no parent" in parentCID
	}
	cyl := min(capacity/(16*63), 16383)
	return fmt.Sprintf(`# Disk DescriptorFile
version=1
CID=%08x
parentCID=ffffffff
createType="monolithicSparse"

# Extent description
RW %d SPARSE "%s"

# The Disk Data Base
#DDB

ddb.virtualHWVersion = "4"
ddb.geometry.cylinders = "%d"
ddb.geometry.heads = "16"
ddb.geometry.sectors = "63"
ddb.adapterType = "ide"
`, cid, capacity, name, cyl)
}
