package fat

import (
	"encoding/binary"
	"fmt"
)

const (
	sectorSize = 512 // what Format writes; Open accepts 512..4096

	fsInfoLeadSig   = 0x41615252 // "RRaA"
	fsInfoStructSig = 0x61417272 // "rrAa"
	fsInfoTrailSig  = 0xAA550000

	noFreeCount = 0xFFFFFFFF
)

// bootSector is the FAT32 BIOS parameter block, the fields keel reads or
// writes. Offsets are those of the Microsoft FAT specification (fatgen103).
type bootSector struct {
	oem            [8]byte
	bytesPerSector uint16
	secPerClus     uint8
	reserved       uint16
	numFATs        uint8
	media          uint8
	secPerTrack    uint16
	heads          uint16
	hidden         uint32
	totalSectors   uint32
	fatSize        uint32 // sectors per FAT
	extFlags       uint16
	rootCluster    uint32
	fsInfo         uint16
	backupBoot     uint16
	driveNum       uint8
	volumeID       uint32
	label          [11]byte
}

// bootCode is the stub mkfs.fat puts after the FAT32 BPB (at offset 0x5A):
// it prints a message and waits for a key, so a BIOS that tries to boot the
// ESP says why it cannot instead of hanging. The 0x77 0x7C after 0xBE is the
// message's address (0x7C00+0x5A+29).
var bootCode = append([]byte{
	0x0e,             // push cs
	0x1f,             // pop ds
	0xbe, 0x77, 0x7c, // mov si, message
	0xac,       // lodsb
	0x22, 0xc0, // and al, al
	0x74, 0x0b, // jz key_press
	0x56,       // push si
	0xb4, 0x0e, // mov ah, 0eh
	0xbb, 0x07, 0x00, // mov bx, 0007h
	0xcd, 0x10, // int 10h
	0x5e,       // pop si
	0xeb, 0xf0, // jmp write_msg
	0x32, 0xe4, // xor ah, ah
	0xcd, 0x16, // int 16h
	0xcd, 0x19, // int 19h
	0xeb, 0xfe, // jmp $
}, "This is not a bootable disk.  Please insert a bootable floppy and\r\npress any key to try again ... \r\n\x00"...)

func (b *bootSector) marshal() []byte {
	s := make([]byte, sectorSize)
	copy(s[0:], []byte{0xEB, 0x58, 0x90}) // jmp 0x5A; nop
	copy(s[3:11], b.oem[:])
	le := binary.LittleEndian
	le.PutUint16(s[11:], b.bytesPerSector)
	s[13] = b.secPerClus
	le.PutUint16(s[14:], b.reserved)
	s[16] = b.numFATs
	// 17: root entries 0, 19: total sectors (16-bit) 0 — FAT32 uses neither.
	s[21] = b.media
	// 22: FAT size (16-bit) 0.
	le.PutUint16(s[24:], b.secPerTrack)
	le.PutUint16(s[26:], b.heads)
	le.PutUint32(s[28:], b.hidden)
	le.PutUint32(s[32:], b.totalSectors)
	le.PutUint32(s[36:], b.fatSize)
	le.PutUint16(s[40:], b.extFlags)
	// 42: version 0.0
	le.PutUint32(s[44:], b.rootCluster)
	le.PutUint16(s[48:], b.fsInfo)
	le.PutUint16(s[50:], b.backupBoot)
	s[64] = b.driveNum
	s[66] = 0x29 // extended boot signature: volume ID, label and type follow
	le.PutUint32(s[67:], b.volumeID)
	copy(s[71:82], b.label[:])
	copy(s[82:90], "FAT32   ")
	copy(s[90:], bootCode)
	s[510], s[511] = 0x55, 0xAA
	return s
}

// parseBootSector decodes and validates a FAT32 boot sector. It checks every
// field the rest of the package relies on, against the device size, so a
// garbage sector is an error here and not a panic or a huge allocation later.
func parseBootSector(s []byte, size int64) (*bootSector, error) {
	if len(s) < 512 {
		return nil, fmt.Errorf("boot sector: short read (%d bytes)", len(s))
	}
	if s[510] != 0x55 || s[511] != 0xAA {
		return nil, fmt.Errorf("boot sector: no 0x55AA signature")
	}
	le := binary.LittleEndian
	b := &bootSector{
		bytesPerSector: le.Uint16(s[11:]),
		secPerClus:     s[13],
		reserved:       le.Uint16(s[14:]),
		numFATs:        s[16],
		media:          s[21],
		secPerTrack:    le.Uint16(s[24:]),
		heads:          le.Uint16(s[26:]),
		hidden:         le.Uint32(s[28:]),
		totalSectors:   le.Uint32(s[32:]),
		fatSize:        le.Uint32(s[36:]),
		extFlags:       le.Uint16(s[40:]),
		rootCluster:    le.Uint32(s[44:]),
		fsInfo:         le.Uint16(s[48:]),
		backupBoot:     le.Uint16(s[50:]),
		driveNum:       s[64],
	}
	copy(b.oem[:], s[3:11])
	if s[66] == 0x29 {
		b.volumeID = le.Uint32(s[67:])
		copy(b.label[:], s[71:82])
	}
	bps := b.bytesPerSector
	if bps < 512 || bps > 4096 || bps&(bps-1) != 0 {
		return nil, fmt.Errorf("boot sector: bad bytes per sector %d", bps)
	}
	if spc := b.secPerClus; spc == 0 || spc&(spc-1) != 0 {
		return nil, fmt.Errorf("boot sector: bad sectors per cluster %d", spc)
	}
	if b.reserved == 0 {
		return nil, fmt.Errorf("boot sector: no reserved sectors")
	}
	if b.numFATs == 0 || b.numFATs > 4 {
		return nil, fmt.Errorf("boot sector: bad number of FATs %d", b.numFATs)
	}
	if le.Uint16(s[17:]) != 0 || le.Uint16(s[22:]) != 0 || b.fatSize == 0 {
		return nil, fmt.Errorf("boot sector: not FAT32 (root entries %d, 16-bit FAT size %d)",
			le.Uint16(s[17:]), le.Uint16(s[22:]))
	}
	if v := le.Uint16(s[42:]); v != 0 {
		return nil, fmt.Errorf("boot sector: unsupported FAT32 version %#x", v)
	}
	total := uint64(b.totalSectors)
	if t16 := le.Uint16(s[19:]); t16 != 0 {
		total = uint64(t16)
		b.totalSectors = uint32(t16)
	}
	if total*uint64(bps) > uint64(size) {
		return nil, fmt.Errorf("boot sector: %d sectors of %d bytes do not fit in %d bytes",
			total, bps, size)
	}
	meta := uint64(b.reserved) + uint64(b.numFATs)*uint64(b.fatSize)
	if meta >= total {
		return nil, fmt.Errorf("boot sector: reserved sectors and FATs (%d sectors) fill the volume (%d)",
			meta, total)
	}
	clusters := (total - meta) / uint64(b.secPerClus)
	if clusters == 0 || clusters > maxClusters {
		return nil, fmt.Errorf("boot sector: bad cluster count %d", clusters)
	}
	if uint64(b.fatSize)*uint64(bps)/4 < clusters+2 {
		return nil, fmt.Errorf("boot sector: FAT of %d sectors too small for %d clusters",
			b.fatSize, clusters)
	}
	if b.rootCluster < 2 || uint64(b.rootCluster) >= clusters+2 {
		return nil, fmt.Errorf("boot sector: root cluster %d out of range", b.rootCluster)
	}
	if b.extFlags&0x80 != 0 && uint8(b.extFlags&0x0F) >= b.numFATs {
		return nil, fmt.Errorf("boot sector: active FAT %d of %d", b.extFlags&0x0F, b.numFATs)
	}
	return b, nil
}

// fsInfoSector builds the FSInfo sector (one 512-byte structure at the start
// of its sector, whatever the sector size).
func fsInfoSector(free, next uint32) []byte {
	s := make([]byte, sectorSize)
	le := binary.LittleEndian
	le.PutUint32(s[0:], fsInfoLeadSig)
	le.PutUint32(s[484:], fsInfoStructSig)
	le.PutUint32(s[488:], free)
	le.PutUint32(s[492:], next)
	le.PutUint32(s[508:], fsInfoTrailSig)
	return s
}

func validFSInfo(s []byte) bool {
	le := binary.LittleEndian
	return len(s) >= 512 && le.Uint32(s[0:]) == fsInfoLeadSig &&
		le.Uint32(s[484:]) == fsInfoStructSig && le.Uint32(s[508:]) == fsInfoTrailSig
}
