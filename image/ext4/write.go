package ext4

import (
	"bytes"
	"fmt"
	"io"
)

// blockWriter writes whole blocks, skipping all-zero ones when the device
// is known to read as zeros.
type blockWriter struct {
	w          io.WriterAt
	blockSize  int64
	skipZeroes bool
	zeros      []byte
}

func (bw *blockWriter) write(block uint32, b []byte) error {
	if bw.skipZeroes && isZero(b) {
		return nil
	}
	off := int64(block) * bw.blockSize
	if _, err := bw.w.WriteAt(b, off); err != nil {
		return fmt.Errorf("writing block %d: %w", block, err)
	}
	return nil
}

// zero writes n zero blocks from block on, a chunk at a time.
func (bw *blockWriter) zero(block, n uint32) error {
	if bw.skipZeroes {
		return nil
	}
	per := uint32(int64(len(bw.zeros)) / bw.blockSize)
	for n > 0 {
		k := min(n, per)
		if err := bw.write(block, bw.zeros[:int64(k)*bw.blockSize]); err != nil {
			return err
		}
		block += k
		n -= k
	}
	return nil
}

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroPage))
		if !bytes.Equal(b[:n], zeroPage[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

var zeroPage [4096]byte

// write puts the plan on disk: data and inode tables first, then
// descriptors, bitmaps and backup superblocks, and the primary superblock
// last. Any older primary superblock is zeroed first, so an interrupted
// Format leaves no superblock describing half-written metadata.
func (p *plan) write(w io.WriterAt) error {
	g := p.geo
	bs := g.blockSize
	bw := &blockWriter{w: w, blockSize: int64(bs), skipZeroes: p.opts.AssumeZeroed, zeros: make([]byte, 1<<20)}
	if !bw.skipZeroes {
		if _, err := w.WriteAt(bw.zeros[:superOffset+superSize], 0); err != nil {
			return fmt.Errorf("zeroing the old superblock: %w", err)
		}
	}

	// Directory blocks.
	for _, d := range p.dirs {
		if err := bw.write(d.inode.runs[0].start, d.block); err != nil {
			return err
		}
		// Only lost+found has more: empty blocks.
		for i, r := range d.inode.runs {
			start, n := r.start, r.len
			if i == 0 {
				start, n = start+1, n-1
			}
			for k := range n {
				if err := bw.write(start+k, emptyDirBlock(bs)); err != nil {
					return err
				}
			}
		}
	}

	// Journal: superblock, zeroed log, extent leaf.
	if j := p.journal; j != nil {
		if err := bw.write(j.runs[0].start, journalSuperblock(bs, uint32(j.size/uint64(bs)), p.opts.UUID)); err != nil {
			return err
		}
		for i, r := range j.runs {
			start, n := r.start, r.len
			if i == 0 {
				start, n = start+1, n-1
			}
			if err := bw.zero(start, n); err != nil {
				return err
			}
		}
		if j.leaf != 0 {
			b, err := j.leafBlock(bs)
			if err != nil {
				return fmt.Errorf("journal inode: %w", err)
			}
			if err := bw.write(j.leaf, b); err != nil {
				return err
			}
		}
	}

	// Inode tables: the used inodes in group 0, zeros everywhere else.
	used, err := p.usedInodeBlocks()
	if err != nil {
		return err
	}
	t0 := g.inodeTable(0)
	for i, b := range used {
		if err := bw.write(t0+uint32(i), b); err != nil {
			return err
		}
	}
	if err := bw.zero(t0+uint32(len(used)), g.itableBlocks-uint32(len(used))); err != nil {
		return err
	}
	for i := uint32(1); i < g.groups; i++ {
		if err := bw.zero(g.inodeTable(i), g.itableBlocks); err != nil {
			return err
		}
	}

	// Bitmaps and descriptors.
	gdt := make([]byte, g.gdtBlocks*bs)
	var total counts
	for i := range g.groups {
		c, err := p.writeBitmaps(bw, i)
		if err != nil {
			return err
		}
		p.putDesc(gdt[i*descSize:], i, c)
		total.freeBlocks += c.freeBlocks
		total.freeInodes += c.freeInodes
	}

	// Superblocks and descriptor copies, group 0 last.
	for i := g.groups; i > 0; i-- {
		grp := i - 1
		if !HasSuper(grp) {
			continue
		}
		start := g.groupStart(grp)
		for k := range g.gdtBlocks {
			if err := bw.write(start+1+k, gdt[k*bs:(k+1)*bs]); err != nil {
				return err
			}
		}
		sb := p.superblock(grp, total)
		if grp > 0 {
			// A backup fills the first block of its group.
			b := make([]byte, bs)
			copy(b, sb)
			if err := bw.write(start, b); err != nil {
				return err
			}
			continue
		}
		// The primary lives at byte 1024, whatever the block size; the
		// boot area before it is zeroed so no older signature survives
		// there. With 1 KiB blocks that is block 0, outside the filesystem.
		b := make([]byte, superOffset+superSize)
		copy(b[superOffset:], sb)
		if _, err := w.WriteAt(b, 0); err != nil {
			return fmt.Errorf("writing superblock: %w", err)
		}
	}
	return nil
}

// usedInodeBlocks encodes the inode table blocks of group 0 that hold
// inodes 1..usedInodes; reserved inodes other than the root and the
// journal stay zero.
func (p *plan) usedInodeBlocks() ([][]byte, error) {
	bs := p.geo.blockSize
	table := make([]byte, roundUp(p.usedInodes*inodeSize, bs))
	put := func(ino uint32, in *inode) error {
		if err := in.encode(table[(ino-1)*inodeSize:], bs, p.opts.Time); err != nil {
			return fmt.Errorf("inode %d: %w", ino, err)
		}
		return nil
	}
	for _, d := range p.dirs {
		if err := put(d.ino, &d.inode); err != nil {
			return nil, err
		}
	}
	if p.journal != nil {
		if err := put(journalIno, p.journal); err != nil {
			return nil, err
		}
	}
	var blocks [][]byte
	for off := uint32(0); off < uint32(len(table)); off += bs {
		blocks = append(blocks, table[off:off+bs])
	}
	return blocks, nil
}
