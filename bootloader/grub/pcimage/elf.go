package pcimage

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// The ELF32 constants GRUB's images use (ELF specification, include/grub/elf.h).
const (
	elfHeaderLen  = 52
	elfSectionLen = 40

	etRel  = 1
	etExec = 2
	em386  = 3

	shtProgbits = 1
	shtNobits   = 8

	shfAlloc     = 0x2
	shfExecinstr = 0x4
)

// elfSection is one section header of an ELF32 file, with its name.
type elfSection struct {
	name   string
	typ    uint32
	flags  uint32
	addr   uint32
	offset uint32
	size   uint32
}

// elfFile is what keel needs of an ELF32 little-endian file: its type,
// machine and section headers. Every offset has been checked against the
// file, so data never slices out of range.
type elfFile struct {
	raw      []byte
	typ      uint16
	machine  uint16
	sections []elfSection
}

// parseELF32 reads the header and section headers of an ELF32 LSB file.
// It checks what grub-mkimage's check_elf_header checks and, unlike it,
// every offset and size, so that a damaged kernel.img or module is an
// error rather than a read past the end.
func parseELF32(b []byte) (*elfFile, error) {
	if len(b) < elfHeaderLen {
		return nil, fmt.Errorf("not an ELF file: %d bytes, shorter than an ELF32 header", len(b))
	}
	if !bytes.Equal(b[:4], []byte{0x7f, 'E', 'L', 'F'}) {
		return nil, fmt.Errorf("not an ELF file: magic % x", b[:4])
	}
	if b[4] != 1 {
		return nil, fmt.Errorf("ELF class %d, want 1 (32-bit)", b[4])
	}
	if b[5] != 1 {
		return nil, fmt.Errorf("ELF data encoding %d, want 1 (little-endian)", b[5])
	}
	le := binary.LittleEndian
	if b[6] != 1 || le.Uint32(b[20:]) != 1 {
		return nil, fmt.Errorf("ELF version %d/%d, want 1", b[6], le.Uint32(b[20:]))
	}
	f := &elfFile{raw: b, typ: le.Uint16(b[16:]), machine: le.Uint16(b[18:])}
	shoff := uint64(le.Uint32(b[32:]))
	shentsize := uint64(le.Uint16(b[46:]))
	shnum := uint64(le.Uint16(b[48:]))
	shstrndx := uint64(le.Uint16(b[50:]))
	if shnum == 0 {
		return nil, fmt.Errorf("ELF file has no section headers")
	}
	if shentsize != elfSectionLen {
		return nil, fmt.Errorf("ELF section header size %d, want %d", shentsize, elfSectionLen)
	}
	if shoff+shnum*shentsize > uint64(len(b)) {
		return nil, fmt.Errorf("ELF section headers at %d (%d of %d bytes) run past the end of the %d-byte file", shoff, shnum, shentsize, len(b))
	}
	if shstrndx >= shnum {
		return nil, fmt.Errorf("ELF section name table index %d, but only %d sections", shstrndx, shnum)
	}
	f.sections = make([]elfSection, shnum)
	for i := range f.sections {
		h := b[shoff+uint64(i)*shentsize:]
		s := elfSection{
			typ:    le.Uint32(h[4:]),
			flags:  le.Uint32(h[8:]),
			addr:   le.Uint32(h[12:]),
			offset: le.Uint32(h[16:]),
			size:   le.Uint32(h[20:]),
		}
		if s.typ != shtNobits && uint64(s.offset)+uint64(s.size) > uint64(len(b)) {
			return nil, fmt.Errorf("ELF section %d (offset %d, size %d) runs past the end of the %d-byte file", i, s.offset, s.size, len(b))
		}
		f.sections[i] = s
	}
	strtab := f.sections[shstrndx]
	if strtab.typ == shtNobits {
		return nil, fmt.Errorf("ELF section name table %d has no data", shstrndx)
	}
	names := f.data(strtab)
	for i := range f.sections {
		off := le.Uint32(b[shoff+uint64(i)*shentsize:])
		if uint64(off) >= uint64(len(names)) {
			return nil, fmt.Errorf("ELF section %d: name offset %d outside the %d-byte name table", i, off, len(names))
		}
		end := bytes.IndexByte(names[off:], 0)
		if end < 0 {
			return nil, fmt.Errorf("ELF section %d: name at %d is not NUL-terminated", i, off)
		}
		f.sections[i].name = string(names[off : off+uint32(end)])
	}
	return f, nil
}

// data is the file content of s; empty for a NOBITS section.
func (f *elfFile) data(s elfSection) []byte {
	if s.typ == shtNobits {
		return nil
	}
	return f.raw[s.offset : s.offset+s.size]
}

// section returns the first section called name.
func (f *elfFile) section(name string) (elfSection, bool) {
	for _, s := range f.sections {
		if s.name == name {
			return s, true
		}
	}
	return elfSection{}, false
}

// checkModule checks that b is a GRUB module for i386-pc called name:
// an ELF32 relocatable object for the 386 whose .modname section names
// it. GRUB's loader (grub_dl_load_core) refuses anything else at boot,
// when it is too late to say which file was wrong.
func checkModule(name string, b []byte) error {
	f, err := parseELF32(b)
	if err != nil {
		return err
	}
	if f.typ != etRel || f.machine != em386 {
		return fmt.Errorf("ELF type %d machine %d, want a relocatable object (1) for the 386 (3)", f.typ, f.machine)
	}
	s, ok := f.section(".modname")
	if !ok {
		return fmt.Errorf("no .modname section")
	}
	got, _, _ := bytes.Cut(f.data(s), []byte{0})
	if string(got) != name {
		return fmt.Errorf(".modname is %q", got)
	}
	return nil
}
