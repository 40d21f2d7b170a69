package squashfs

import "encoding/binary"

// On-disk constants of squashfs 4.0 (see the kernel's fs/squashfs/squashfs_fs.h).
const (
	magic           = 0x73717368
	superblockSize  = 96
	metadataSize    = 8192
	metaUncompFlag  = 0x8000
	dataUncompFlag  = 1 << 24
	invalidFragment = 0xffffffff
	invalidXattr    = 0xffffffff
	invalidBlock    = 0xffffffffffffffff
	maxNameLen      = 256
	maxIDs          = 65536
	padTo           = 4096

	// Compressor ids.
	compGzip = 1
	compXZ   = 4
	compZstd = 6

	// Superblock flags.
	flagNoXattrs     = 0x0200
	flagCompOpts     = 0x0400
	flagExportable   = 0x0080
	flagDuplicates   = 0x0040
	flagAlwaysFrag   = 0x0020
	flagNoFragments  = 0x0010
	flagUncompressed = 0x0002
)

// Inode types. Directory entries always carry the basic type.
const (
	typeDir     = 1
	typeFile    = 2
	typeSymlink = 3
	typeBlkDev  = 4
	typeChrDev  = 5
	typeFifo    = 6
	typeSocket  = 7
	typeExtOff  = 7 // extended type = basic type + 7
)

// Xattr name prefixes squashfs can store, by their type id.
var xattrPrefixes = []string{"user.", "trusted.", "security."}

type superblock struct {
	inodeCount     uint32
	modTime        uint32
	blockSize      uint32
	fragmentCount  uint32
	compression    uint16
	blockLog       uint16
	flags          uint16
	idCount        uint16
	rootInode      uint64
	bytesUsed      uint64
	idTable        uint64
	xattrTable     uint64
	inodeTable     uint64
	directoryTable uint64
	fragmentTable  uint64
	exportTable    uint64
}

func (s *superblock) marshal() []byte {
	b := make([]byte, superblockSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], magic)
	le.PutUint32(b[4:], s.inodeCount)
	le.PutUint32(b[8:], s.modTime)
	le.PutUint32(b[12:], s.blockSize)
	le.PutUint32(b[16:], s.fragmentCount)
	le.PutUint16(b[20:], s.compression)
	le.PutUint16(b[22:], s.blockLog)
	le.PutUint16(b[24:], s.flags)
	le.PutUint16(b[26:], s.idCount)
	le.PutUint16(b[28:], 4) // version major
	le.PutUint16(b[30:], 0) // version minor
	le.PutUint64(b[32:], s.rootInode)
	le.PutUint64(b[40:], s.bytesUsed)
	le.PutUint64(b[48:], s.idTable)
	le.PutUint64(b[56:], s.xattrTable)
	le.PutUint64(b[64:], s.inodeTable)
	le.PutUint64(b[72:], s.directoryTable)
	le.PutUint64(b[80:], s.fragmentTable)
	le.PutUint64(b[88:], s.exportTable)
	return b
}

// encodeDev packs device numbers the way the kernel's new_encode_dev does,
// which is what squashfs stores.
func encodeDev(major, minor uint32) uint32 {
	return (minor & 0xff) | (major << 8) | ((minor &^ 0xff) << 12)
}

// le is a small append-style little-endian encoder for inodes and tables.
type le []byte

func (b le) u16(v uint16) le { return binary.LittleEndian.AppendUint16(b, v) }
func (b le) u32(v uint32) le { return binary.LittleEndian.AppendUint32(b, v) }
func (b le) u64(v uint64) le { return binary.LittleEndian.AppendUint64(b, v) }
