package ext4

import "encoding/binary"

const (
	jbdMagic        = 0xC03B3998
	jbdSuperblockV2 = 4
	jbdMinBlocks    = 1024 // the kernel refuses smaller journals
)

// journalBlocks is mke2fs's default journal size for a filesystem of n
// blocks (ext2fs_default_journal_size), or 0 if it is too small for one.
func journalBlocks(n uint32) uint32 {
	switch {
	case n < 2048:
		return 0
	case n < 32768:
		return 1024
	case n < 256*1024:
		return 4096
	case n < 512*1024:
		return 8192
	case n < 4096*1024:
		return 16384
	case n < 8192*1024:
		return 32768
	case n < 16384*1024:
		return 65536
	case n < 32768*1024:
		return 131072
	}
	return 262144
}

// journalSuperblock is the first block of an empty internal jbd2 journal
// of n blocks, written as mke2fs writes it (big-endian). s_start 0 says
// there is nothing to replay; the first transaction gets sequence 1.
func journalSuperblock(blockSize, n uint32, uuid [16]byte) []byte {
	b := make([]byte, blockSize)
	be := binary.BigEndian
	be.PutUint32(b[0x00:], jbdMagic)
	be.PutUint32(b[0x04:], jbdSuperblockV2)
	be.PutUint32(b[0x0C:], blockSize)
	be.PutUint32(b[0x10:], n) // s_maxlen
	be.PutUint32(b[0x14:], 1) // s_first: log starts after this block
	be.PutUint32(b[0x18:], 1) // s_sequence
	copy(b[0x30:0x40], uuid[:])
	be.PutUint32(b[0x40:], 1) // s_nr_users; s_users stays zero for an internal journal
	return b
}
