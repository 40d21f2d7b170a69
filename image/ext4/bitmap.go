package ext4

import "encoding/binary"

// writeBitmaps writes group i's block and inode bitmaps and returns its
// free counts. Bits past the end of the group (only the last one is short)
// and past inodesPerGroup are set, as e2fsck expects of the padding.
func (p *plan) writeBitmaps(bw *blockWriter, i uint32) (counts, error) {
	g := p.geo
	bs := g.blockSize
	start, n := g.groupStart(i), g.groupLen(i)

	bb := make([]byte, bs)
	setBits(bb, 0, g.overhead(i))
	for _, r := range p.alloc.used {
		s, e := max(r.start, start), min(r.start+r.len, start+n)
		if s < e {
			setBits(bb, s-start, e-start)
		}
	}
	setBits(bb, n, 8*bs)
	if err := bw.write(g.blockBitmap(i), bb); err != nil {
		return counts{}, err
	}

	ib := make([]byte, bs)
	var usedInodes uint32
	if i == 0 {
		usedInodes = p.usedInodes
	}
	setBits(ib, 0, usedInodes)
	setBits(ib, g.inodesPerGroup, 8*bs)
	if err := bw.write(g.inodeBitmap(i), ib); err != nil {
		return counts{}, err
	}
	return counts{
		freeBlocks: p.freeBlocks(i),
		freeInodes: g.inodesPerGroup - usedInodes,
	}, nil
}

// freeBlocks counts the blocks of group i not yet allocated.
func (p *plan) freeBlocks(i uint32) uint32 {
	return p.geo.groupLen(i) - p.geo.overhead(i) - p.alloc.usedIn(i)
}

// setBits sets bits [from, to) of a little-endian bitmap.
func setBits(b []byte, from, to uint32) {
	for k := from; k < to; k++ {
		b[k/8] |= 1 << (k % 8)
	}
}

// putDesc encodes group i's 32-byte descriptor. bg_flags stays 0: the
// INODE_UNINIT/BLOCK_UNINIT/ITABLE_ZEROED flags mean something only with
// group descriptor checksums, which this filesystem does not have.
func (p *plan) putDesc(b []byte, i uint32, c counts) {
	g := p.geo
	le := binary.LittleEndian
	le.PutUint32(b[0x00:], g.blockBitmap(i))
	le.PutUint32(b[0x04:], g.inodeBitmap(i))
	le.PutUint32(b[0x08:], g.inodeTable(i))
	le.PutUint16(b[0x0C:], uint16(c.freeBlocks))
	le.PutUint16(b[0x0E:], uint16(c.freeInodes))
	var dirs uint16
	if i == 0 {
		dirs = uint16(len(p.dirs))
	}
	le.PutUint16(b[0x10:], dirs)
}
