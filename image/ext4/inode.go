package ext4

import (
	"encoding/binary"
	"fmt"
)

const (
	modeDir = 0o040000
	modeReg = 0o100000

	extentsFlag   = 0x80000 // EXT4_EXTENTS_FL: i_block holds an extent tree
	extentMagic   = 0xF30A
	inlineExtents = 4 // extents that fit in i_block after the header
)

// inode is what we need to say about the few inodes we write.
type inode struct {
	mode     uint16 // type and permission bits
	uid, gid uint32
	links    uint16
	size     uint64
	runs     []run  // data blocks, in file order
	leaf     uint32 // extent leaf block when runs do not fit in i_block, else 0
}

// encode writes the 256-byte on-disk inode into b. Every timestamp is t;
// crtime too, since these inodes are born at t.
func (in *inode) encode(b []byte, blockSize uint32, t int64) error {
	le := binary.LittleEndian
	clear(b[:inodeSize])
	le.PutUint16(b[0x00:], in.mode)
	le.PutUint16(b[0x02:], uint16(in.uid))
	le.PutUint32(b[0x04:], uint32(in.size))
	le.PutUint32(b[0x6C:], uint32(in.size>>32))
	le.PutUint16(b[0x18:], uint16(in.gid))
	le.PutUint16(b[0x78:], uint16(in.uid>>16))
	le.PutUint16(b[0x7A:], uint16(in.gid>>16))
	le.PutUint16(b[0x1A:], in.links)

	// i_blocks counts 512-byte sectors (huge_file only changes that when
	// EXT4_HUGE_FILE_FL is set), including an extent leaf block.
	var blocks uint64
	for _, r := range in.runs {
		blocks += uint64(r.len)
	}
	if in.leaf != 0 {
		blocks++
	}
	sectors := blocks * uint64(blockSize/512)
	if sectors>>48 != 0 {
		return fmt.Errorf("inode of %d blocks is too large", blocks)
	}
	le.PutUint32(b[0x1C:], uint32(sectors))
	le.PutUint16(b[0x74:], uint16(sectors>>32))

	lo, extra := encodeTime(t)
	for _, off := range []int{0x08, 0x0C, 0x10, 0x90} { // atime ctime mtime crtime
		le.PutUint32(b[off:], lo)
	}
	for _, off := range []int{0x84, 0x88, 0x8C, 0x94} { // their _extra words
		le.PutUint32(b[off:], extra)
	}
	le.PutUint16(b[0x80:], extraIsize)

	le.PutUint32(b[0x20:], extentsFlag)
	iblock := b[0x28 : 0x28+60]
	if in.leaf == 0 {
		if len(in.runs) > inlineExtents {
			return fmt.Errorf("%d extents do not fit in an inode", len(in.runs))
		}
		putExtentHeader(iblock, len(in.runs), inlineExtents, 0)
		putExtents(iblock[12:], in.runs)
		return nil
	}
	// Depth 1: one index entry in the inode pointing at the leaf block.
	putExtentHeader(iblock, 1, inlineExtents, 1)
	le.PutUint32(iblock[12:], 0)       // ei_block: first logical block covered
	le.PutUint32(iblock[16:], in.leaf) // ei_leaf_lo
	return nil
}

// leafBlock is the extent leaf block of an inode whose runs do not fit in
// i_block (only a large journal).
func (in *inode) leafBlock(blockSize uint32) ([]byte, error) {
	b := make([]byte, blockSize)
	capacity := int(blockSize-12) / 12
	if len(in.runs) > capacity {
		return nil, fmt.Errorf("%d extents do not fit in one leaf block", len(in.runs))
	}
	putExtentHeader(b, len(in.runs), capacity, 0)
	putExtents(b[12:], in.runs)
	return b, nil
}

func putExtentHeader(b []byte, entries, capacity, depth int) {
	le := binary.LittleEndian
	le.PutUint16(b[0:], extentMagic)
	le.PutUint16(b[2:], uint16(entries))
	le.PutUint16(b[4:], uint16(capacity))
	le.PutUint16(b[6:], uint16(depth))
	le.PutUint32(b[8:], 0) // eh_generation
}

func putExtents(b []byte, runs []run) {
	le := binary.LittleEndian
	var logical uint32
	for i, r := range runs {
		e := b[i*12:]
		le.PutUint32(e[0:], logical) // ee_block
		le.PutUint16(e[4:], uint16(r.len))
		le.PutUint16(e[6:], 0) // ee_start_hi: blocks are below 2^32
		le.PutUint32(e[8:], r.start)
		logical += r.len
	}
}

// encodeTime splits t into the 32-bit seconds field and the _extra word,
// whose low two bits extend the signed seconds by multiples of 2^32
// (nanoseconds, the upper 30 bits, are 0).
func encodeTime(t int64) (lo, extra uint32) {
	lo = uint32(t)
	epoch := (t - int64(int32(lo))) >> 32
	return lo, uint32(epoch) & 3
}
