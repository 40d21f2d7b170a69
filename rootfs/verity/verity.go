package verity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"math"
	"runtime"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// BlockSize is the data and hash block size keel uses.
const BlockSize = 4096

const (
	digestSize     = sha256.Size
	hashesPerBlock = BlockSize / digestSize // 128
	// readChunk is how much of the data one worker reads and hashes at a
	// time: large enough that a read costs little next to the hashing.
	readChunk = 1 << 20
	// writeChunk bounds one WriteAt of the hash area, so that a
	// cancellation is noticed between writes of a large tree.
	writeChunk = 8 << 20
)

// Info is what a build fixes and the kernel command line / bundle carry.
type Info struct {
	RootHash   []byte // sha256
	Salt       []byte
	DataBlocks uint64 // data blocks covered (DataSize/4096)
	HashOffset int64  // byte offset of the superblock (== DataBlocks*4096)
	HashSize   int64  // bytes of superblock (padded to 4096) + tree
}

// levelSizes returns the number of hash blocks of each level of the tree
// over dataBlocks blocks, the level that hashes the data first. The top
// level is one block; a single data block has no level at all (its hash is
// the root). This is veritysetup's hash_levels.
func levelSizes(dataBlocks uint64) []uint64 {
	var sizes []uint64
	for n := dataBlocks; n > 1; {
		n = (n + hashesPerBlock - 1) / hashesPerBlock
		sizes = append(sizes, n)
	}
	return sizes
}

// HashSize is the space the superblock and tree take for dataSize bytes of
// data (dataSize a multiple of 4096).
func HashSize(dataSize int64) int64 {
	size := int64(BlockSize) // the superblock, padded to a block
	for _, n := range levelSizes(uint64(dataSize) / BlockSize) {
		size += int64(n) * BlockSize
	}
	return size
}

// Write reads dataSize bytes of data from r (dataSize must be a multiple of
// BlockSize; callers pad), writes a veritysetup-format (version 1, sha256,
// 4096/4096) superblock at hashOffset in w followed by the hash tree, exactly
// where and how
//
//	veritysetup format --data-blocks=N --hash-offset=hashOffset --salt=HEX --uuid=UUID FILE FILE
//
// would, and returns the root hash. One difference: veritysetup writes the
// 512 bytes of the superblock and leaves the rest of its block as it was;
// Write writes zeros there, so the whole hash area is a function of the
// inputs. hashOffset must be a multiple of BlockSize and at least dataSize:
// the tree follows the data. salt is at most 256 bytes (it may be empty).
// uuid goes into the superblock, a parameter so that builds are
// reproducible. workers < 1 means GOMAXPROCS; the output does not depend on
// it. Nothing is synced: that is the caller's, who knows what w is.
func Write(ctx context.Context, r io.ReaderAt, dataSize int64, w io.WriterAt, hashOffset int64, salt []byte, uuid [16]byte, workers int) (Info, error) {
	switch {
	case dataSize <= 0 || dataSize%BlockSize != 0:
		return Info{}, fmt.Errorf("verity: data size %d is not a positive multiple of %d", dataSize, BlockSize)
	case hashOffset%BlockSize != 0 || hashOffset < dataSize:
		return Info{}, fmt.Errorf("verity: hash offset %d is not a multiple of %d at or after the end of the data (%d)", hashOffset, BlockSize, dataSize)
	case len(salt) > maxSalt:
		return Info{}, fmt.Errorf("verity: salt of %d bytes, at most %d", len(salt), maxSalt)
	}
	size := HashSize(dataSize)
	if hashOffset > math.MaxInt64-size {
		return Info{}, fmt.Errorf("verity: hash area of %d bytes at %d overflows", size, hashOffset)
	}
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	dataBlocks := uint64(dataSize) / BlockSize

	// The hash area as it goes on disk: the superblock's block, then the
	// levels top first, the level over the data last (veritysetup's order).
	area := make([]byte, size)
	sizes := levelSizes(dataBlocks)
	start := make([]int64, len(sizes)) // byte offset of each level in area
	pos := int64(BlockSize)
	for i := len(sizes) - 1; i >= 0; i-- {
		start[i] = pos
		pos += int64(sizes[i]) * BlockSize
	}

	var root []byte
	if len(sizes) == 0 {
		// One data block: its hash is the root, there is no tree.
		block := make([]byte, BlockSize)
		if err := readFull(r, block, 0, dataSize); err != nil {
			return Info{}, err
		}
		root = hashBlock(sha256.New(), salt, block, nil)
	} else {
		if err := hashData(ctx, r, dataBlocks, salt, area[start[0]:], workers); err != nil {
			return Info{}, err
		}
		h := sha256.New()
		for i := 1; i < len(sizes); i++ {
			below := area[start[i-1] : start[i-1]+int64(sizes[i-1])*BlockSize]
			out := area[start[i]:]
			for j := 0; j < len(below)/BlockSize; j++ {
				hashBlock(h, salt, below[j*BlockSize:(j+1)*BlockSize], out[j*digestSize:j*digestSize:(j+1)*digestSize])
			}
		}
		top := len(sizes) - 1
		root = hashBlock(h, salt, area[start[top]:start[top]+BlockSize], nil)
	}

	sb := Superblock{
		Version:       1,
		HashType:      1,
		UUID:          uuid,
		Algorithm:     algorithm,
		DataBlockSize: BlockSize,
		HashBlockSize: BlockSize,
		DataBlocks:    dataBlocks,
		Salt:          salt,
	}
	copy(area, sb.marshal())
	for off := int64(0); off < size; off += writeChunk {
		if err := ctx.Err(); err != nil {
			return Info{}, fmt.Errorf("verity: writing hash area: %w", err)
		}
		chunk := area[off:min(off+writeChunk, size)]
		if _, err := w.WriteAt(chunk, hashOffset+off); err != nil {
			return Info{}, fmt.Errorf("verity: writing hash area at %d: %w", hashOffset+off, err)
		}
	}
	return Info{
		RootHash:   root,
		Salt:       bytes.Clone(salt),
		DataBlocks: dataBlocks,
		HashOffset: hashOffset,
		HashSize:   size,
	}, nil
}

// hashData hashes every data block into out, digest i at i*32, with workers
// goroutines each reading and hashing readChunk bytes at a time. Each chunk
// has its own place in out, so the result does not depend on scheduling.
func hashData(ctx context.Context, r io.ReaderAt, dataBlocks uint64, salt, out []byte, workers int) error {
	const blocksPerChunk = readChunk / BlockSize
	chunks := (dataBlocks + blocksPerChunk - 1) / blocksPerChunk
	dataSize := int64(dataBlocks) * BlockSize
	workers = int(min(uint64(workers), chunks))
	var next atomic.Uint64
	g, ctx := errgroup.WithContext(ctx)
	for range workers {
		g.Go(func() error {
			buf := make([]byte, readChunk)
			h := sha256.New()
			for {
				c := next.Add(1) - 1
				if c >= chunks {
					return nil
				}
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("verity: hashing data: %w", err)
				}
				first := c * blocksPerChunk
				n := min(blocksPerChunk, dataBlocks-first)
				b := buf[:n*BlockSize]
				if err := readFull(r, b, int64(first)*BlockSize, dataSize); err != nil {
					return err
				}
				for i := range n {
					d := (first + i) * digestSize
					hashBlock(h, salt, b[i*BlockSize:(i+1)*BlockSize], out[d:d:d+digestSize])
				}
			}
		})
	}
	return g.Wait()
}

// hashBlock appends sha256(salt || block) to dst (format version 1 puts the
// salt first) and returns the result; a dst of zero length and enough
// capacity has the digest written in place.
func hashBlock(h hash.Hash, salt, block, dst []byte) []byte {
	h.Reset()
	h.Write(salt)
	h.Write(block)
	return h.Sum(dst)
}

// readFull reads len(b) bytes at off, an io.EOF with a full buffer being
// success (io.ReaderAt allows it at the end).
func readFull(r io.ReaderAt, b []byte, off, dataSize int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = fmt.Errorf("data ends before %d bytes: %w", dataSize, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("verity: reading data at %d: %w", off+int64(n), err)
}
