package pcimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"testing"
	"testing/fstest"
)

// grubDir is where Debian's grub-pc-bin puts GRUB's i386-pc files.
const grubDir = "/usr/lib/grub/i386-pc"

// keelModules is the module set recommended for keel's grub.cfg: the
// disk and file system to find grub.cfg and grubenv (biosdisk, part_gpt,
// part_msdos, fat), the script and its commands (normal, configfile for
// source/configfile, test for [ -eq -gt ], echo, loadenv, regexp, search
// with search_fs_uuid), the serial console (serial, terminal for
// terminal_output) and booting Linux (linux for linux/initrd; halt and
// reboot for the test and for a failed boot).
var keelModules = []string{
	"biosdisk", "part_gpt", "part_msdos", "fat",
	"normal", "configfile", "test", "echo", "loadenv", "regexp",
	"search", "search_fs_uuid",
	"serial", "terminal",
	"linux", "halt", "reboot",
}

// grubFiles returns GRUB's i386-pc directory, skipping the test when
// grub-pc-bin is not installed.
func grubFiles(t testing.TB) fs.FS {
	t.Helper()
	if _, err := os.Stat(grubDir + "/kernel.img"); err != nil {
		t.Skipf("%s/kernel.img: grub-pc-bin not installed (%v)", grubDir, err)
	}
	return os.DirFS(grubDir)
}

// grubMapFS copies the files CoreImage and Embed read into a map, for
// tests that damage one of them.
func grubMapFS(t testing.TB) fstest.MapFS {
	t.Helper()
	files := grubFiles(t)
	m := fstest.MapFS{}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		m[p] = &fstest.MapFile{Data: b, Mode: 0o644}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// testSection describes a section for makeELF.
type testSection struct {
	name        string
	typ, flags  uint32
	addr        uint32
	data        []byte
	nobitsBytes uint32 // size of a NOBITS section
}

// makeELF writes a little ELF32 file: header, section data, a name table
// and the section headers, for tests and fuzz seeds that need an ELF
// keel's reader has to accept or refuse for one reason only.
func makeELF(typ, machine uint16, secs []testSection) []byte {
	le := binary.LittleEndian
	var body bytes.Buffer
	body.Write(make([]byte, elfHeaderLen))
	names := []byte{0}
	type hdr struct{ name, typ, flags, addr, off, size uint32 }
	hdrs := []hdr{{}}
	for _, s := range secs {
		h := hdr{name: uint32(len(names)), typ: s.typ, flags: s.flags, addr: s.addr, off: uint32(body.Len()), size: uint32(len(s.data))}
		names = append(append(names, s.name...), 0)
		if s.typ == shtNobits {
			h.size = s.nobitsBytes
		} else {
			body.Write(s.data)
		}
		hdrs = append(hdrs, h)
	}
	strtab := hdr{name: uint32(len(names)), typ: 3, off: uint32(body.Len())}
	names = append(append(names, ".shstrtab"...), 0)
	strtab.size = uint32(len(names))
	body.Write(names)
	hdrs = append(hdrs, strtab)
	for body.Len()%4 != 0 {
		body.WriteByte(0)
	}
	shoff := body.Len()
	for _, h := range hdrs {
		var b [elfSectionLen]byte
		le.PutUint32(b[0:], h.name)
		le.PutUint32(b[4:], h.typ)
		le.PutUint32(b[8:], h.flags)
		le.PutUint32(b[12:], h.addr)
		le.PutUint32(b[16:], h.off)
		le.PutUint32(b[20:], h.size)
		body.Write(b[:])
	}
	out := body.Bytes()
	copy(out, []byte{0x7f, 'E', 'L', 'F', 1, 1, 1})
	le.PutUint16(out[16:], typ)
	le.PutUint16(out[18:], machine)
	le.PutUint32(out[20:], 1)
	le.PutUint32(out[32:], uint32(shoff))
	le.PutUint16(out[40:], elfHeaderLen)
	le.PutUint16(out[46:], elfSectionLen)
	le.PutUint16(out[48:], uint16(len(hdrs)))
	le.PutUint16(out[50:], uint16(len(hdrs)-1))
	return out
}

// testKernel is a kernel.img in miniature: text at the link address,
// read-only data, data and bss.
func testKernel() []byte {
	return makeELF(etExec, em386, []testSection{
		{name: ".text", typ: shtProgbits, flags: shfAlloc | shfExecinstr, addr: linkAddr, data: []byte{0xea, 0x1c, 0x82, 0, 0, 0x90, 0x90}},
		{name: ".rodata", typ: shtProgbits, flags: shfAlloc, addr: linkAddr + 8, data: []byte("rodata\x00\x00")},
		{name: ".data", typ: shtProgbits, flags: shfAlloc | 1, addr: linkAddr + 16, data: []byte{1, 2, 3, 4}},
		{name: ".bss", typ: shtNobits, flags: shfAlloc | 1, addr: linkAddr + 32, nobitsBytes: 64},
	})
}

// testModule is a module in miniature: a relocatable 386 object with a
// .modname.
func testModule(name string) []byte {
	return makeELF(etRel, em386, []testSection{
		{name: ".text", typ: shtProgbits, flags: shfAlloc | shfExecinstr, data: []byte{0xc3}},
		{name: ".modname", typ: shtProgbits, data: append([]byte(name), 0)},
	})
}

// payload decompresses the part of a core image after diskboot.img and
// lzma_decompress.img (decompLen bytes), returning it with the header
// fields of the decompressor.
func payload(core []byte, decompLen int) (out []byte, compressed, uncompressed uint32, err error) {
	le := binary.LittleEndian
	if len(core) < sectorSize+decompLen {
		return nil, 0, 0, errors.New("core image too short")
	}
	d := core[sectorSize:]
	compressed, uncompressed = le.Uint32(d[decompCompressedSize:]), le.Uint32(d[decompUncompressedSize:])
	stream := d[decompLen:]
	if int(compressed) != len(stream) {
		return nil, 0, 0, fmt.Errorf("compressed size field %d, stream is %d bytes", compressed, len(stream))
	}
	out, err = decompress(stream, int(uncompressed))
	return out, compressed, uncompressed, err
}

// moduleNames lists the ELF modules in a decompressed payload whose
// module area starts at kernelSize.
func moduleNames(payload []byte, kernelSize int) ([]string, error) {
	le := binary.LittleEndian
	if kernelSize < 0 || kernelSize+moduleInfoLen > len(payload) {
		return nil, errors.New("payload too short for the module info")
	}
	info := payload[kernelSize:]
	if le.Uint32(info) != moduleMagic {
		return nil, fmt.Errorf("module info magic 0x%x, want 0x%x", le.Uint32(info), moduleMagic)
	}
	size := int(le.Uint32(info[8:]))
	if size > len(info) {
		return nil, fmt.Errorf("module area of %d bytes, only %d left", size, len(info))
	}
	var names []string
	for off := int(le.Uint32(info[4:])); off < size; {
		if off+moduleHeadLen > size {
			return nil, fmt.Errorf("module header at %d past the area's end", off)
		}
		typ, n := le.Uint32(info[off:]), int(le.Uint32(info[off+4:]))
		if n < moduleHeadLen || off+n > size {
			return nil, fmt.Errorf("module at %d has bad size %d", off, n)
		}
		if typ == objTypeELF {
			f, err := parseELF32(info[off+moduleHeadLen : off+n])
			if err != nil {
				return nil, err
			}
			s, ok := f.section(".modname")
			if !ok {
				return nil, fmt.Errorf("module at %d has no .modname", off)
			}
			name, _, _ := bytes.Cut(f.data(s), []byte{0})
			names = append(names, string(name))
		}
		off += n
	}
	return names, nil
}
