// Package verity writes the dm-verity hash tree of a root filesystem image,
// byte-identical to `veritysetup format` (format version 1, sha256, 4096-byte
// data and hash blocks, superblock on disk), and reads that superblock back
// at boot to build the kernel's "verity" target table.
//
// The tree follows the root squashfs in the same slot partition, the
// superblock at the first 4096-byte boundary after the data:
//
//	| squashfs (DataBlocks × 4096) | superblock (4096) | hash tree ... | free |
//	0                              HashOffset
//
// so that a slot stays one stream to install (an update writes one range of
// one partition, and a half-written slot is one slot to discard), and the
// A/B partition layout of images already in the field is unchanged. Separate
// verity partitions of the Discoverable Partitions Specification were
// considered; they would double the slot partitions and tie every update to
// a layout change.
//
// The API:
//
//	HashSize(dataSize int64) int64
//	Write(ctx, r io.ReaderAt, dataSize int64, w io.WriterAt, hashOffset int64, salt []byte, uuid [16]byte, workers int) (Info, error)
//	ReadSuperblock(r io.ReaderAt, off int64) (Superblock, error)
//	(Superblock).Table(dev string, hashOffset int64, rootHash []byte) string
//
// Write hashes the data blocks with several workers, keeps the tree in
// memory (about dataSize/127 bytes) and writes it with a few large writes;
// the bytes do not depend on the number of workers.
package verity
