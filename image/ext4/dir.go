package ext4

import (
	"encoding/binary"
	"fmt"
)

const ftDir = 2 // EXT4_FT_DIR, stored in each entry with the filetype feature

type dirent struct {
	ino  uint32
	name string
}

// direntLen is the smallest record for a name: 8 bytes of header, the name,
// padded to 4 bytes.
func direntLen(name string) int { return (8 + len(name) + 3) &^ 3 }

// dirBlock builds a one-block linear directory holding ents (all of them
// directories), the first two being "." and "..". The last record stretches
// to the end of the block, as ext4 requires.
func dirBlock(blockSize uint32, ents []dirent) ([]byte, error) {
	b := make([]byte, blockSize)
	le := binary.LittleEndian
	off := 0
	for i, e := range ents {
		n := direntLen(e.name)
		rec := n
		if i == len(ents)-1 {
			rec = int(blockSize) - off
		}
		if off+n > int(blockSize) {
			return nil, fmt.Errorf("%d entries do not fit in one %d-byte directory block", len(ents)-2, blockSize)
		}
		le.PutUint32(b[off:], e.ino)
		le.PutUint16(b[off+4:], uint16(rec))
		b[off+6] = byte(len(e.name))
		b[off+7] = ftDir
		copy(b[off+8:], e.name)
		off += rec
	}
	return b, nil
}

// emptyDirBlock is a directory block with no entries: one unused record
// (inode 0) covering the whole block, which is how lost+found's
// preallocated blocks look.
func emptyDirBlock(blockSize uint32) []byte {
	b := make([]byte, blockSize)
	binary.LittleEndian.PutUint16(b[4:], uint16(blockSize))
	return b
}
