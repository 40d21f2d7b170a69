package verity

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
)

// The on-disk superblock of veritysetup (cryptsetup's struct verity_sb),
// little-endian, 512 bytes at the start of the hash area:
const (
	offMagic         = 0   // [8]byte "verity\0\0"
	offVersion       = 8   // uint32, superblock version: 1
	offHashType      = 12  // uint32, 0 Chrome OS, 1 normal
	offUUID          = 16  // [16]byte
	offAlgorithm     = 32  // [32]byte, NUL-padded name
	offDataBlockSize = 64  // uint32
	offHashBlockSize = 68  // uint32
	offDataBlocks    = 72  // uint64
	offSaltSize      = 80  // uint16
	offPad1          = 82  // [6]byte
	offSalt          = 88  // [256]byte
	offPad2          = 344 // [168]byte
	superblockSize   = 512

	maxSalt   = 256
	magic     = "verity\x00\x00"
	algorithm = "sha256"
)

// ErrBadSuperblock is wrapped by every error ReadSuperblock returns for a
// superblock it read but refuses, as opposed to one it could not read.
var ErrBadSuperblock = errors.New("bad verity superblock")

// Superblock is the veritysetup superblock at the start of the hash area.
type Superblock struct {
	Version       uint32 // superblock format: 1
	HashType      uint32 // hash format, the target's <version>: 1
	UUID          [16]byte
	Algorithm     string
	DataBlockSize uint32
	HashBlockSize uint32
	DataBlocks    uint64
	Salt          []byte
}

// marshal encodes s into the 512 bytes veritysetup writes. Fields are
// written as given; ReadSuperblock is where they are checked.
func (s Superblock) marshal() []byte {
	b := make([]byte, superblockSize)
	copy(b[offMagic:], magic)
	le := binary.LittleEndian
	le.PutUint32(b[offVersion:], s.Version)
	le.PutUint32(b[offHashType:], s.HashType)
	copy(b[offUUID:offUUID+16], s.UUID[:])
	copy(b[offAlgorithm:offAlgorithm+32], s.Algorithm)
	le.PutUint32(b[offDataBlockSize:], s.DataBlockSize)
	le.PutUint32(b[offHashBlockSize:], s.HashBlockSize)
	le.PutUint64(b[offDataBlocks:], s.DataBlocks)
	le.PutUint16(b[offSaltSize:], uint16(len(s.Salt)))
	copy(b[offSalt:offSalt+maxSalt], s.Salt)
	return b
}

// ReadSuperblock reads the superblock at off and checks every field against
// the one format keel writes: version 1, hash type 1, sha256, 4096-byte data
// and hash blocks, at least one data block, a salt of at most 256 bytes, and
// zeros in every reserved byte. An error names the field. The superblock is
// not authenticated (the root hash from the signed command line is), so the
// checks are there to fail early and clearly, not for security.
func ReadSuperblock(r io.ReaderAt, off int64) (Superblock, error) {
	if off < 0 || off%BlockSize != 0 || off > math.MaxInt64-superblockSize {
		return Superblock{}, fmt.Errorf("reading verity superblock: offset %d is not a non-negative multiple of %d", off, BlockSize)
	}
	b := make([]byte, superblockSize)
	if n, err := r.ReadAt(b, off); n < len(b) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Superblock{}, fmt.Errorf("reading verity superblock at %d: %w", off, err)
	}
	bad := func(field, format string, args ...any) (Superblock, error) {
		return Superblock{}, fmt.Errorf("%w at %d: %s: %s", ErrBadSuperblock, off, field, fmt.Sprintf(format, args...))
	}
	le := binary.LittleEndian
	if string(b[offMagic:offMagic+8]) != magic {
		return bad("magic", "%q, want %q", b[offMagic:offMagic+8], magic)
	}
	s := Superblock{
		Version:       le.Uint32(b[offVersion:]),
		HashType:      le.Uint32(b[offHashType:]),
		DataBlockSize: le.Uint32(b[offDataBlockSize:]),
		HashBlockSize: le.Uint32(b[offHashBlockSize:]),
		DataBlocks:    le.Uint64(b[offDataBlocks:]),
	}
	copy(s.UUID[:], b[offUUID:])
	if s.Version != 1 {
		return bad("version", "%d, want 1", s.Version)
	}
	if s.HashType != 1 {
		return bad("hash type", "%d, want 1", s.HashType)
	}
	alg := b[offAlgorithm : offAlgorithm+32]
	name, rest, _ := bytes.Cut(alg, []byte{0})
	if string(name) != algorithm || nonZero(rest) >= 0 {
		return bad("algorithm", "%q, want %q", bytes.TrimRight(alg, "\x00"), algorithm)
	}
	s.Algorithm = algorithm
	if s.DataBlockSize != BlockSize {
		return bad("data block size", "%d, want %d", s.DataBlockSize, BlockSize)
	}
	if s.HashBlockSize != BlockSize {
		return bad("hash block size", "%d, want %d", s.HashBlockSize, BlockSize)
	}
	if s.DataBlocks == 0 || s.DataBlocks > math.MaxInt64/BlockSize {
		return bad("data blocks", "%d, want 1 to %d", s.DataBlocks, math.MaxInt64/BlockSize)
	}
	saltSize := int(le.Uint16(b[offSaltSize:]))
	if saltSize > maxSalt {
		return bad("salt size", "%d, want at most %d", saltSize, maxSalt)
	}
	s.Salt = bytes.Clone(b[offSalt : offSalt+saltSize])
	for _, p := range []struct {
		field    string
		from, to int
	}{
		{"padding after salt size", offPad1, offSalt},
		{"salt beyond salt size", offSalt + saltSize, offSalt + maxSalt},
		{"padding after salt", offPad2, superblockSize},
	} {
		if i := nonZero(b[p.from:p.to]); i >= 0 {
			return bad(p.field, "byte %d is %#02x, want 0", p.from+i, b[p.from+i])
		}
	}
	return s, nil
}

// nonZero returns the index of the first byte of b that is not zero, or -1.
func nonZero(b []byte) int {
	for i, c := range b {
		if c != 0 {
			return i
		}
	}
	return -1
}

// Table renders the parameters of the device-mapper "verity" target for
// data and hash on the one device dev, the superblock at hashOffset (as
// given to ReadSuperblock) and the tree right after it:
//
//	1 DEV DEV 4096 4096 DATABLOCKS HASHSTARTBLOCK sha256 ROOTHEX SALTHEX
//
// The full table line is "0 <Sectors()> verity " followed by this. There are
// no optional arguments on purpose: a block that fails verification then
// reads as EIO (the target's default) rather than restarting the machine or
// being ignored. An empty salt is "-", as the target expects.
func (s Superblock) Table(dev string, hashOffset int64, rootHash []byte) string {
	salt := "-"
	if len(s.Salt) > 0 {
		salt = hex.EncodeToString(s.Salt)
	}
	// The superblock takes the whole first hash block: veritysetup rounds
	// offset+512 up to a hash block, which is the next block for an
	// aligned offset. ReadSuperblock made sure blocks are BlockSize.
	hashStart := uint64(hashOffset)/BlockSize + 1
	return fmt.Sprintf("%d %s %s %d %d %d %d %s %s %s",
		s.HashType, dev, dev, s.DataBlockSize, s.HashBlockSize, s.DataBlocks, hashStart,
		s.Algorithm, hex.EncodeToString(rootHash), salt)
}

// Sectors is the size of the verity device in 512-byte sectors, the length
// field of its table line.
func (s Superblock) Sectors() uint64 {
	return s.DataBlocks * uint64(s.DataBlockSize) / 512
}
