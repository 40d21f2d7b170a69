package fat

import (
	"encoding/binary"
	"fmt"
)

const (
	entryMask   = 0x0FFFFFFF // FAT32 entries are 28 bits; the top 4 are reserved and preserved
	eoc         = 0x0FFFFFFF // end of chain, as Linux writes it
	badCluster  = 0x0FFFFFF7
	minEOC      = 0x0FFFFFF8
	maxClusters = 0x0FFFFFF5 - 2 // highest cluster number is 0x0FFFFFF6
)

// table is the file allocation table, held in memory in full (4 bytes per
// cluster: 1 MiB for a 1 GiB ESP) so allocation never reads the device.
// Sectors changed since the last flush are tracked and written to every FAT
// copy by flush, which the operations call at their ordering points.
type table struct {
	ent      []uint32 // every entry of one FAT, including those past the last cluster
	clusters uint32   // data clusters; valid cluster numbers are 2..clusters+1
	free     uint32
	last     uint32 // last allocated cluster: the FSInfo next-free hint
	dirty    []uint64
	perSect  uint32 // entries per sector
}

func newTable(entries int, clusters uint32, entriesPerSector uint32) *table {
	t := &table{
		ent:      make([]uint32, entries),
		clusters: clusters,
		perSect:  entriesPerSector,
	}
	sectors := (entries + int(entriesPerSector) - 1) / int(entriesPerSector)
	t.dirty = make([]uint64, (sectors+63)/64)
	return t
}

func (t *table) get(c uint32) uint32 { return t.ent[c] & entryMask }

func (t *table) set(c, v uint32) {
	t.ent[c] = t.ent[c]&^entryMask | v&entryMask
	s := c / t.perSect
	t.dirty[s/64] |= 1 << (s % 64)
}

func (t *table) valid(c uint32) bool { return c >= 2 && c <= t.clusters+1 }

// countFree recounts free clusters; done on Open, since a foreign FSInfo
// count may be stale or absent.
func (t *table) countFree() {
	t.free = 0
	for c := uint32(2); c <= t.clusters+1; c++ {
		if t.get(c) == 0 {
			t.free++
		}
	}
}

// alloc takes n free clusters, next-fit from the hint (so a fresh volume
// fills front to back and files come out contiguous), and chains them. The
// change is in memory only until flush.
func (t *table) alloc(n int) ([]uint32, error) {
	if n == 0 {
		return nil, nil
	}
	if uint64(n) > uint64(t.free) {
		return nil, fmt.Errorf("%w: need %d clusters, %d free", ErrNoSpace, n, t.free)
	}
	out := make([]uint32, 0, n)
	c := t.last
	for scanned := uint32(0); len(out) < n; scanned++ {
		if scanned > t.clusters {
			return nil, fmt.Errorf("%w: free count %d but fewer free clusters", ErrCorrupt, t.free)
		}
		c++
		if !t.valid(c) {
			c = 2
		}
		if t.get(c) == 0 {
			out = append(out, c)
		}
	}
	for i, c := range out {
		if i+1 < len(out) {
			t.set(c, out[i+1])
		} else {
			t.set(c, eoc)
		}
	}
	t.free -= uint32(n)
	t.last = out[n-1]
	return out, nil
}

// release marks clusters free (in memory until flush).
func (t *table) release(cs []uint32) {
	for _, c := range cs {
		t.set(c, 0)
	}
	t.free += uint32(len(cs))
}

// chain follows a cluster chain from first, refusing out-of-range links and
// loops, so a corrupt FAT is an error rather than a hang.
func (t *table) chain(first uint32) ([]uint32, error) {
	if first == 0 {
		return nil, nil
	}
	var out []uint32
	for c := first; ; {
		if !t.valid(c) {
			return nil, fmt.Errorf("%w: cluster %d out of range in chain from %d", ErrCorrupt, c, first)
		}
		if uint32(len(out)) >= t.clusters {
			return nil, fmt.Errorf("%w: loop in cluster chain from %d", ErrCorrupt, first)
		}
		out = append(out, c)
		next := t.get(c)
		if next >= minEOC {
			return out, nil
		}
		if next == 0 || next == badCluster {
			return nil, fmt.Errorf("%w: chain from %d runs into free or bad cluster at %d", ErrCorrupt, first, c)
		}
		c = next
	}
}

// flush writes the dirty FAT sectors, in runs, to every FAT copy (or only the
// active one when mirroring is off), first copy first.
func (fs *FS) flushFAT() error {
	t := fs.fat
	ss := int64(fs.sectorSize)
	nsect := int64(len(t.dirty)) * 64
	for s := int64(0); s < nsect; {
		if t.dirty[s/64]&(1<<(s%64)) == 0 {
			s++
			continue
		}
		e := s
		for e < nsect && t.dirty[e/64]&(1<<(e%64)) != 0 {
			e++
		}
		buf := make([]byte, (e-s)*ss)
		for i := range buf[:len(buf)/4] {
			idx := s*int64(t.perSect) + int64(i)
			if idx < int64(len(t.ent)) {
				binary.LittleEndian.PutUint32(buf[i*4:], t.ent[idx])
			}
		}
		for _, copyNo := range fs.fatCopies() {
			off := fs.fatOffset + int64(copyNo)*fs.fatBytes + s*ss
			if _, err := fs.writeMeta(buf, off); err != nil {
				return fmt.Errorf("write FAT %d: %w", copyNo, err)
			}
		}
		for i := s; i < e; i++ {
			t.dirty[i/64] &^= 1 << (i % 64)
		}
		s = e
	}
	return nil
}

func (fs *FS) fatCopies() []int {
	if fs.bs.extFlags&0x80 != 0 {
		return []int{int(fs.bs.extFlags & 0x0F)}
	}
	out := make([]int, fs.bs.numFATs)
	for i := range out {
		out[i] = i
	}
	return out
}

// loadFAT reads the active FAT from the device.
func (fs *FS) loadFAT(clusters uint32) error {
	entries := fs.fatBytes / 4
	t := newTable(int(entries), clusters, uint32(fs.sectorSize/4))
	active := int64(0)
	if fs.bs.extFlags&0x80 != 0 {
		active = int64(fs.bs.extFlags & 0x0F)
	}
	off := fs.fatOffset + active*fs.fatBytes
	const chunk = 1 << 20
	buf := make([]byte, chunk)
	for done := int64(0); done < fs.fatBytes; {
		n := min(int64(chunk), fs.fatBytes-done)
		if err := readFull(fs.dev, buf[:n], off+done); err != nil {
			return fmt.Errorf("read FAT: %w", err)
		}
		for i := int64(0); i+4 <= n; i += 4 {
			t.ent[(done+i)/4] = binary.LittleEndian.Uint32(buf[i:])
		}
		done += n
	}
	t.countFree()
	t.last = 2
	fs.fat = t
	return nil
}

// writeFSInfo records the free count and next-free hint, in the primary
// FSInfo and in the backup next to the backup boot sector.
func (fs *FS) writeFSInfo() error {
	if !fs.hasFSInfo {
		return nil
	}
	s := fsInfoSector(fs.fat.free, fs.fat.last)
	for _, sec := range fs.fsInfoSectors() {
		off := int64(sec) * int64(fs.sectorSize)
		if _, err := fs.writeMeta(s[488:496], off+488); err != nil {
			return fmt.Errorf("write FSInfo: %w", err)
		}
	}
	return nil
}

func (fs *FS) fsInfoSectors() []uint16 {
	out := []uint16{fs.bs.fsInfo}
	if b := fs.bs.backupBoot; b != 0 && b != 0xFFFF && b+fs.bs.fsInfo < fs.bs.reserved && fs.hasBackupFSInfo {
		out = append(out, b+fs.bs.fsInfo)
	}
	return out
}
