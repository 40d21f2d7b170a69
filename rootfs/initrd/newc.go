package initrd

import (
	"fmt"
	"io"
)

// The newc ("new ASCII", magic 070701) cpio format, the one the kernel's
// initramfs unpacker reads (Documentation/driver-api/early-userspace/
// buffer-format.rst). Each member is a 110-byte header of the magic and 13
// fields of 8 hex digits, the name with its NUL, padding to a multiple of 4,
// then the body, padded to a multiple of 4. The archive ends with a member
// named TRAILER!!!.
//
// It is written here rather than with cavaliergopher/cpio because that
// library does not write device numbers, and takes a symlink's target only
// from the body (DESIGN §7); with our own ~100 lines every field is ours.

const (
	newcMagic     = "070701"
	newcHeaderLen = 6 + 13*8
	trailerName   = "TRAILER!!!"

	// pathMax is the kernel's PATH_MAX. The initramfs unpacker refuses
	// (skips, with an error) names and symlink targets longer than this.
	pathMax = 4096
)

// File type bits of c_mode, as in <sys/stat.h>.
const (
	modeFifo    = 0o010000
	modeCharDev = 0o020000
	modeDir     = 0o040000
	modeBlkDev  = 0o060000
	modeFile    = 0o100000
	modeSymlink = 0o120000
	modeSocket  = 0o140000
)

// header is one newc member header. Every field is 32 bits on the wire.
type header struct {
	ino       uint32
	mode      uint32 // type bits | permission bits
	uid, gid  uint32
	nlink     uint32
	mtime     uint32
	filesize  uint32
	devMajor  uint32 // device holding the file: always 0, for reproducibility
	devMinor  uint32
	rdevMajor uint32 // device numbers of a char or block device node
	rdevMinor uint32
	name      string // without the NUL; c_namesize counts it
}

// cpioWriter writes newc members and tracks the offset, which all padding
// is relative to.
type cpioWriter struct {
	w   io.Writer
	off int64
	buf [newcHeaderLen + pathMax + 4]byte
}

func (c *cpioWriter) write(p []byte) error {
	n, err := c.w.Write(p)
	c.off += int64(n)
	return err
}

// pad writes NULs up to the next multiple of 4.
func (c *cpioWriter) pad() error {
	var zeros [3]byte
	if n := (4 - c.off%4) % 4; n != 0 {
		return c.write(zeros[:n])
	}
	return nil
}

// writeHeader writes h, its name, and the padding after the name. The
// caller then writes exactly h.filesize bytes of body and calls pad.
func (c *cpioWriter) writeHeader(h *header) error {
	if len(h.name)+1 > pathMax {
		return fmt.Errorf("name is %d bytes, longer than the kernel's PATH_MAX %d", len(h.name)+1, pathMax)
	}
	b := append(c.buf[:0], newcMagic...)
	for _, v := range [...]uint32{
		h.ino, h.mode, h.uid, h.gid, h.nlink, h.mtime, h.filesize,
		h.devMajor, h.devMinor, h.rdevMajor, h.rdevMinor,
		uint32(len(h.name) + 1),
		0, // c_check: only the 070702 ("crc") format uses it
	} {
		b = appendHex8(b, v)
	}
	b = append(b, h.name...)
	b = append(b, 0)
	if err := c.write(b); err != nil {
		return err
	}
	return c.pad()
}

// writeTrailer ends the archive. GNU cpio writes the trailer with nlink 1,
// and so do we; the kernel only looks at the name.
func (c *cpioWriter) writeTrailer() error {
	return c.writeHeader(&header{nlink: 1, name: trailerName})
}

// appendHex8 appends v as 8 upper-case hex digits, as the kernel's
// gen_init_cpio and GNU cpio write them.
func appendHex8(b []byte, v uint32) []byte {
	const digits = "0123456789ABCDEF"
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, digits[(v>>uint(shift))&0xf])
	}
	return b
}
