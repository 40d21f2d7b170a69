package ext4

import (
	"fmt"
	"math"
)

const (
	inodeSize      = 256 // room for the extra fields: nanoseconds, crtime, 2446
	extraIsize     = 32  // bytes of those extra fields we fill
	descSize       = 32  // group descriptor size without the 64bit feature
	firstIno       = 11  // first non-reserved inode (lost+found)
	rootIno        = 2
	journalIno     = 8
	lpfIno         = 11
	maxExtentLen   = 32768 // longest initialised extent
	lastGroupSlack = 50    // mke2fs drops a last group with less free space
)

// geometry is the block-group layout: where each group starts and where its
// bitmaps and inode table are. Without flex_bg every group holds its own,
// right after its superblock and descriptor backup if it has one.
type geometry struct {
	blockSize      uint32
	firstDataBlock uint32 // 1 with 1 KiB blocks: block 0 is the boot block
	blocks         uint32 // s_blocks_count: may be less than size/blockSize
	blocksPerGroup uint32
	groups         uint32
	inodesPerGroup uint32
	itableBlocks   uint32 // inode table blocks per group
	gdtBlocks      uint32 // blocks of group descriptors (per copy)
}

// newGeometry lays out size bytes in groups of 8*blockSize blocks (one
// bitmap block each), with one inode per bytesPerInode, at least minInodes
// of them in group 0. Like mke2fs, a last group too small to hold its own
// metadata plus some room is dropped rather than kept nearly full.
func newGeometry(size int64, blockSize uint32, bytesPerInode int64, minInodes uint32) (*geometry, error) {
	g := &geometry{blockSize: blockSize, blocksPerGroup: 8 * blockSize}
	if blockSize == 1024 {
		g.firstDataBlock = 1
	}
	n := size / int64(blockSize)
	if n > math.MaxUint32 {
		return nil, fmt.Errorf("%d bytes is %d blocks of %d bytes: more than 2^32 blocks needs the 64bit feature, which is not implemented", size, n, blockSize)
	}
	if n <= int64(g.firstDataBlock)+1 {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooSmall, size)
	}
	g.blocks = uint32(n)
	perBlock := blockSize / inodeSize
	step := max(perBlock, 8) // whole inode-table blocks, whole bitmap bytes
	maxIPG := 8 * blockSize  // one inode-bitmap block
	if minInodes > maxIPG {
		return nil, fmt.Errorf("%d inodes needed in group 0, at most %d fit", minInodes, maxIPG)
	}
	// As in mke2fs, the inode count comes from the whole size, even if the
	// last group is dropped below.
	total := uint64(g.blocks) * uint64(blockSize) / uint64(bytesPerInode)
	for {
		g.groups = ceilDiv(g.blocks-g.firstDataBlock, g.blocksPerGroup)
		// mke2fs's rounding: fill the last inode-table block, then down
		// to whole bitmap bytes (with 1 KiB blocks, 4 inodes a block).
		ipg := uint32(min(ceilDiv64(total, uint64(g.groups)), uint64(maxIPG)))
		ipg = roundUp(ipg, perBlock) &^ 7
		ipg = max(ipg, roundUp(minInodes, step))
		if uint64(ipg)*uint64(g.groups) > math.MaxUint32 {
			ipg = uint32(math.MaxUint32/uint64(g.groups)) / step * step
		}
		g.inodesPerGroup = min(ipg, maxIPG)
		g.itableBlocks = ceilDiv(g.inodesPerGroup*inodeSize, blockSize)
		g.gdtBlocks = ceilDiv(g.groups*descSize, blockSize)

		last := g.groups - 1
		rem := g.groupLen(last)
		if g.groups > 1 && rem < g.overhead(last)+lastGroupSlack {
			g.blocks -= rem
			continue
		}
		if rem <= g.overhead(last) {
			return nil, fmt.Errorf("%w: %d bytes leave %d blocks for %d blocks of metadata", ErrTooSmall, size, rem, g.overhead(last))
		}
		return g, nil
	}
}

func (g *geometry) groupStart(i uint32) uint32 { return g.firstDataBlock + i*g.blocksPerGroup }

// groupOf is the group holding block b.
func (g *geometry) groupOf(b uint32) uint32 {
	return (max(b, g.firstDataBlock) - g.firstDataBlock) / g.blocksPerGroup
}

// groupLen is the number of blocks in group i: only the last one is short.
func (g *geometry) groupLen(i uint32) uint32 {
	if i == g.groups-1 {
		return g.blocks - g.groupStart(i)
	}
	return g.blocksPerGroup
}

// HasSuper says whether group i holds a superblock and descriptor copy:
// with sparse_super, groups 0 and 1 and the powers of 3, 5 and 7. keel-init
// asks it too, to tell what the kernel's online resize will add.
func HasSuper(i uint32) bool {
	if i <= 1 {
		return true
	}
	for _, b := range []uint32{3, 5, 7} {
		n := b
		for n < i {
			n *= b
		}
		if n == i {
			return true
		}
	}
	return false
}

func (g *geometry) blockBitmap(i uint32) uint32 {
	b := g.groupStart(i)
	if HasSuper(i) {
		b += 1 + g.gdtBlocks
	}
	return b
}

func (g *geometry) inodeBitmap(i uint32) uint32 { return g.blockBitmap(i) + 1 }
func (g *geometry) inodeTable(i uint32) uint32  { return g.blockBitmap(i) + 2 }

// overhead is the number of metadata blocks at the start of group i.
func (g *geometry) overhead(i uint32) uint32 {
	return g.inodeTable(i) + g.itableBlocks - g.groupStart(i)
}

func (g *geometry) inodes() uint32 { return g.groups * g.inodesPerGroup }

// run is a contiguous range of blocks, at most maxExtentLen long so that
// each run is one extent.
type run struct{ start, len uint32 }

// allocator hands out data blocks in order from the first free block of
// group 0, skipping the metadata at the start of each group.
type allocator struct {
	g     *geometry
	group uint32
	next  uint32
	used  []run
}

func (a *allocator) alloc(n uint32) ([]run, error) {
	var runs []run
	for n > 0 {
		if a.group >= a.g.groups {
			return nil, fmt.Errorf("%w: no room for %d more data blocks", ErrTooSmall, n)
		}
		first := a.g.groupStart(a.group) + a.g.overhead(a.group)
		end := a.g.groupStart(a.group) + a.g.groupLen(a.group)
		a.next = max(a.next, first)
		if a.next >= end {
			a.group++
			continue
		}
		take := min(n, end-a.next, maxExtentLen)
		runs = append(runs, run{a.next, take})
		a.next += take
		n -= take
	}
	a.used = append(a.used, runs...)
	return runs, nil
}

// seek moves allocation on to group i, unless it is already there or past.
func (a *allocator) seek(i uint32) {
	if i > a.group {
		a.group, a.next = i, 0
	}
}

// usedIn counts allocated data blocks in group i.
func (a *allocator) usedIn(i uint32) uint32 {
	lo, hi := a.g.groupStart(i), a.g.groupStart(i)+a.g.groupLen(i)
	var n uint32
	for _, r := range a.used {
		s, e := max(r.start, lo), min(r.start+r.len, hi)
		if s < e {
			n += e - s
		}
	}
	return n
}

func ceilDiv(a, b uint32) uint32    { return uint32(ceilDiv64(uint64(a), uint64(b))) }
func ceilDiv64(a, b uint64) uint64  { return (a + b - 1) / b }
func roundUp(a, step uint32) uint32 { return ceilDiv(a, step) * step }
