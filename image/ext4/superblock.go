package ext4

import (
	"encoding/binary"
	"math/bits"
)

const (
	superOffset = 1024 // the primary superblock's byte offset on the device
	superSize   = 1024
	magic       = 0xEF53

	compatHasJournal = 0x0004
	compatExtAttr    = 0x0008
	compatDirIndex   = 0x0020

	incompatFiletype = 0x0002
	incompatExtents  = 0x0040

	roCompatSparseSuper = 0x0001
	roCompatLargeFile   = 0x0002
	roCompatHugeFile    = 0x0008
	roCompatDirNlink    = 0x0020
	roCompatExtraIsize  = 0x0040

	defmXattrUser = 0x0004 // default mount options: user_xattr
	defmACL       = 0x0008 // and acl, as mke2fs sets them

	flagSignedHash = 0x0001 // htree hashes as x86 computes them (signed char)
	hashHalfMD4    = 1      // mke2fs's default directory hash
	jnlBackupBlock = 1      // s_jnl_blocks holds a copy of the journal's i_block
	stateClean     = 1
	errorsContinue = 1
)

// counts are the totals the superblock carries.
type counts struct {
	freeBlocks, freeInodes uint32
}

// superblock encodes the 1024-byte superblock as stored in group group
// (only s_block_group_nr differs between the copies).
func (p *plan) superblock(group uint32, c counts) []byte {
	g, o := p.geo, p.opts
	b := make([]byte, superSize)
	le := binary.LittleEndian
	le.PutUint32(b[0x00:], g.inodes())
	le.PutUint32(b[0x04:], g.blocks)
	le.PutUint32(b[0x08:], g.blocks/20) // 5% for root, as mke2fs -m 5
	le.PutUint32(b[0x0C:], c.freeBlocks)
	le.PutUint32(b[0x10:], c.freeInodes)
	le.PutUint32(b[0x14:], g.firstDataBlock)
	logBlock := uint32(bits.TrailingZeros32(g.blockSize) - 10)
	le.PutUint32(b[0x18:], logBlock)
	le.PutUint32(b[0x1C:], logBlock) // cluster size = block size without bigalloc
	le.PutUint32(b[0x20:], g.blocksPerGroup)
	le.PutUint32(b[0x24:], g.blocksPerGroup) // clusters per group
	le.PutUint32(b[0x28:], g.inodesPerGroup)
	// s_mtime (last mount) stays 0: never mounted.
	lo, hi := uint32(o.Time), byte(o.Time>>32)
	le.PutUint32(b[0x30:], lo) // s_wtime
	b[0x274] = hi
	le.PutUint16(b[0x36:], 0xFFFF) // s_max_mnt_count -1: no check by mount count
	le.PutUint16(b[0x38:], magic)
	if group == 0 {
		// Backups say "not clean", as mke2fs writes them, so that an
		// e2fsck that has to fall back on one checks everything.
		le.PutUint16(b[0x3A:], stateClean)
	}
	le.PutUint16(b[0x3C:], errorsContinue)
	le.PutUint32(b[0x40:], lo) // s_lastcheck
	b[0x277] = hi
	le.PutUint32(b[0x4C:], 1) // s_rev_level: dynamic
	le.PutUint32(b[0x54:], firstIno)
	le.PutUint16(b[0x58:], inodeSize)
	le.PutUint16(b[0x5A:], uint16(group))
	compat := uint32(compatExtAttr | compatDirIndex)
	if p.journal != nil {
		compat |= compatHasJournal
	}
	le.PutUint32(b[0x5C:], compat)
	le.PutUint32(b[0x60:], incompatFiletype|incompatExtents)
	le.PutUint32(b[0x64:], roCompatSparseSuper|roCompatLargeFile|roCompatHugeFile|roCompatDirNlink|roCompatExtraIsize)
	copy(b[0x68:0x78], o.UUID[:])
	copy(b[0x78:0x88], o.Label)
	if p.journal != nil {
		le.PutUint32(b[0xE0:], journalIno)
		b[0xFD] = jnlBackupBlock
		// s_jnl_blocks: i_block[0..14], then i_size_high and i_size, so
		// e2fsck can rebuild a damaged journal inode.
		copy(b[0x10C:0x10C+60], p.journalIBlock[:])
		le.PutUint32(b[0x10C+15*4:], uint32(p.journal.size>>32))
		le.PutUint32(b[0x10C+16*4:], uint32(p.journal.size))
	}
	copy(b[0xEC:0xFC], o.HashSeed[:])
	b[0xFC] = hashHalfMD4
	le.PutUint32(b[0x100:], defmXattrUser|defmACL)
	le.PutUint32(b[0x108:], lo) // s_mkfs_time
	b[0x276] = hi
	le.PutUint16(b[0x15C:], extraIsize) // s_min_extra_isize
	le.PutUint16(b[0x15E:], extraIsize) // s_want_extra_isize
	le.PutUint32(b[0x160:], flagSignedHash)
	return b
}
