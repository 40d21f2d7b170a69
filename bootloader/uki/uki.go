// Package uki builds Unified Kernel Images: systemd's EFI stub with the
// kernel, initrd, command line and os-release appended as PE sections, one
// EFI binary that can be signed as a whole for Secure Boot (DESIGN §4,
// Type #2 entries). It does what `ukify` (systemd 253 and later) does with
// objcopy, without objcopy and byte for byte reproducibly: the same stub and
// sections give the same image.
//
// What systemd-stub 252 (Debian 12's systemd-boot-efi) reads, from its
// source (src/boot/efi/stub.c, pe.c, linux.c, boot.c of v252.x):
//   - .linux (required), .initrd, .cmdline, .osrel, .splash, .dtb, .pcrsig
//     and .pcrpkey, found by name in the section table; a section's size is
//     its VirtualSize. .uname is not read by the 252 stub nor by
//     systemd-boot 252 (ukify adds it from 253 on, for tools such as
//     bootctl and kernel-install); Build writes it when given one.
//   - Under Secure Boot the stub ignores the options the boot loader passes
//     if and only if the image has a non-empty .cmdline; without one it
//     takes them, so a signed image without a command line would let anyone
//     at the boot menu choose init=/bin/sh. Build therefore requires one.
//     Without Secure Boot, options passed (a Type #1 entry's "options"
//     line, or an edit in the menu) replace .cmdline entirely.
//   - systemd-boot 252 lists an EFI/Linux/*.efi only if it has a non-empty
//     .osrel (for its title and version); Build requires it too.
//   - The kernel is started with LoadImage/StartImage from the .linux
//     bytes (kernels with PE image version >= 1, i.e. Linux 5.8+, as
//     Debian 12's 6.1), which copies it: .linux needs no alignment beyond
//     the PE's own. Older kernels use the EFI handover protocol, in place;
//     the kernel then relocates itself if it is misaligned. ukify puts
//     .linux last "to leave breathing room for decompression", and so does
//     Build.
//   - The stub warns ("Overlapping PE sections detected") when a section's
//     VirtualAddress is below the end of the one before it in the table;
//     Build appends sections in ascending, non-overlapping order.
package uki

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"keel/bootloader/internal/pecoff"
)

// Sections are the contents of a UKI's payload sections.
type Sections struct {
	Linux   []byte // the kernel (bzImage); required
	Initrd  []byte // optional
	Cmdline []byte // required (see the package comment)
	OSRel   []byte // os-release; required (see the package comment)
	Uname   []byte // the kernel release (uname -r); optional
}

// ErrNoRoom is returned when the stub's headers cannot hold the section
// table entries Build has to add.
var ErrNoRoom = errors.New("no room in the PE headers for more sections")

// DefaultSBAT is the .sbat Build adds when the stub has none: the SBAT
// format's own version line, which shim requires first.
const DefaultSBAT = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n"

// payloadSections are the section names Build writes; a stub that already
// has one of them is refused (it is a UKI, not a stub).
var payloadSections = []string{".osrel", ".cmdline", ".uname", ".initrd", ".linux"}

// pageSize is the alignment of every appended section's address, as ukify
// does: a multiple of any SectionAlignment up to a page, and it lets
// firmware map each section with its own protections.
const pageSize = 4096

// Build returns the stub with s appended as sections, in ukify's order
// (.osrel, .cmdline, .uname, .initrd, .linux) after a .sbat if the stub
// has none. Each section starts at the next page-aligned address after the
// one before and at the next FileAlignment boundary in the file. The
// stub's certificate table (if it was signed) and COFF symbol table are
// dropped: the first would no longer match, the second is debugging
// leftover that would otherwise sit in the middle of the image. The
// header's section count, SizeOfImage, SizeOfCode, SizeOfInitializedData
// and CheckSum are updated. The result is unsigned.
func Build(stub []byte, s Sections) ([]byte, error) {
	switch {
	case len(s.Linux) == 0:
		return nil, errors.New("building UKI: no kernel (.linux)")
	case len(s.Cmdline) == 0:
		return nil, errors.New("building UKI: no command line (.cmdline): under Secure Boot the stub would take any from the boot loader")
	case len(s.OSRel) == 0:
		return nil, errors.New("building UKI: no os-release (.osrel): systemd-boot does not list a UKI without one")
	}
	f, err := pecoff.Parse(stub)
	if err != nil {
		return nil, fmt.Errorf("reading stub: %w", err)
	}
	hasSBAT := false
	for _, sec := range f.Sections {
		for _, p := range payloadSections {
			if sec.Name == p {
				return nil, fmt.Errorf("reading stub: it already has a %s section (a UKI, not a stub?)", p)
			}
		}
		hasSBAT = hasSBAT || sec.Name == ".sbat"
	}
	end, err := stubEnd(stub, f)
	if err != nil {
		return nil, fmt.Errorf("reading stub: %w", err)
	}

	type payload struct {
		name  string
		data  []byte
		flags uint32
	}
	const dataFlags = pecoff.ScnCntInitializedData | pecoff.ScnMemRead
	var add []payload
	if !hasSBAT {
		add = append(add, payload{".sbat", []byte(DefaultSBAT), dataFlags})
	}
	add = append(add,
		payload{".osrel", s.OSRel, dataFlags},
		payload{".cmdline", s.Cmdline, dataFlags},
		payload{".uname", s.Uname, dataFlags},
		payload{".initrd", s.Initrd, dataFlags},
		// Code, as ukify marks it: the handover path jumps into it.
		payload{".linux", s.Linux, pecoff.ScnCntCode | pecoff.ScnMemExecute | pecoff.ScnMemRead},
	)

	// Room for the new entries between the section table and the first
	// byte of section data, which must be unused (zero).
	n := len(f.Sections)
	k := 0
	for _, p := range add {
		if len(p.data) > 0 {
			k++
		}
	}
	tableEnd := f.SectionTable + n*pecoff.SectionHeaderSize
	newTableEnd := tableEnd + k*pecoff.SectionHeaderSize
	limit := int(f.SizeOfHeaders)
	for _, sec := range f.Sections {
		if sec.SizeOfRawData > 0 && int(sec.PointerToRawData) < limit {
			limit = int(sec.PointerToRawData)
		}
	}
	if newTableEnd > limit {
		return nil, fmt.Errorf("building UKI: %w: %d sections need %d bytes of headers, the stub has %d", ErrNoRoom, n+k, newTableEnd, limit)
	}
	if !allZero(stub[tableEnd:newTableEnd]) {
		return nil, fmt.Errorf("building UKI: %w: the bytes after the section table are in use", ErrNoRoom)
	}

	fa := uint64(f.FileAlignment)
	size := alignUp(uint64(end), fa)
	va := uint64(f.SizeOfImage)
	for _, sec := range f.Sections {
		va = max(va, uint64(sec.VirtualAddress)+uint64(max(sec.VirtualSize, sec.SizeOfRawData)))
	}
	va = alignUp(va, pageSize)
	type placed struct {
		pecoff.Section
		data []byte
	}
	var secs []placed
	off := size
	for _, p := range add {
		if len(p.data) == 0 {
			continue
		}
		raw := alignUp(uint64(len(p.data)), fa)
		if va+uint64(len(p.data)) > math.MaxUint32 || off+raw > math.MaxUint32 {
			return nil, fmt.Errorf("building UKI: section %s (%d bytes) does not fit in a PE image's 4 GiB", p.name, len(p.data))
		}
		secs = append(secs, placed{pecoff.Section{
			Name:             p.name,
			VirtualSize:      uint32(len(p.data)),
			VirtualAddress:   uint32(va),
			SizeOfRawData:    uint32(raw),
			PointerToRawData: uint32(off),
			Characteristics:  p.flags,
		}, p.data})
		va = alignUp(va+uint64(len(p.data)), pageSize)
		off += raw
	}

	out := make([]byte, off)
	copy(out, stub[:end])
	le := binary.LittleEndian
	opt := out[f.OptionalHeader:]
	codeSize, dataSize := uint64(f.SizeOfCode), uint64(f.SizeOfInitializedData)
	for i, sec := range secs {
		h, err := sec.Header()
		if err != nil {
			return nil, fmt.Errorf("building UKI: %w", err)
		}
		copy(out[tableEnd+i*pecoff.SectionHeaderSize:], h)
		copy(out[sec.PointerToRawData:], sec.data)
		if sec.Characteristics&pecoff.ScnCntCode != 0 {
			codeSize += uint64(sec.SizeOfRawData)
		} else {
			dataSize += uint64(sec.SizeOfRawData)
		}
	}
	last := secs[len(secs)-1]
	imageSize := alignUp(uint64(last.VirtualAddress)+uint64(last.VirtualSize), uint64(f.SectionAlignment))
	if codeSize > math.MaxUint32 || dataSize > math.MaxUint32 || imageSize > math.MaxUint32 {
		return nil, errors.New("building UKI: the image does not fit in a PE image's 4 GiB")
	}
	le.PutUint16(out[f.NumberOfSectionsOffset():], uint16(n+len(secs)))
	le.PutUint32(opt[pecoff.OffSizeOfCode:], uint32(codeSize))
	le.PutUint32(opt[pecoff.OffSizeOfInitializedData:], uint32(dataSize))
	le.PutUint32(opt[pecoff.OffSizeOfImage:], uint32(imageSize))
	if d := f.DataDirOffset(pecoff.DirSecurity); d >= 0 {
		clear(out[d : d+8])
	}
	sym, nsym := f.SymbolTableOffsets()
	le.PutUint32(out[sym:], 0)
	le.PutUint32(out[nsym:], 0)
	f.SetChecksum(out)
	return out, nil
}

// stubEnd is where the stub's content ends once a certificate table, a
// COFF symbol table and zero padding after its last section are cut off.
// Anything else after the last section is an error: it would be lost.
func stubEnd(b []byte, f *pecoff.File) (int, error) {
	end := len(b)
	if f.CertSize != 0 {
		if int(f.CertOffset)+int(f.CertSize) != len(b) {
			return 0, errors.New("the certificate table is not at the end of the file")
		}
		end = int(f.CertOffset)
	}
	symEnd, err := f.SymbolTableEnd(b[:end])
	if err != nil {
		return 0, err
	}
	raw := int(f.RawEnd())
	if symEnd != 0 {
		if int(f.PointerToSymbolTable) < raw {
			return 0, fmt.Errorf("the COFF symbol table at %#x lies inside the sections", f.PointerToSymbolTable)
		}
		if !allZero(b[symEnd:end]) {
			return 0, fmt.Errorf("%d bytes of unknown data after the symbol table", end-int(symEnd))
		}
		end = int(f.PointerToSymbolTable)
	}
	if end < raw {
		return 0, errors.New("the certificate table overlaps the sections")
	}
	if !allZero(b[raw:end]) {
		return 0, fmt.Errorf("%d bytes of unknown data after the last section", end-raw)
	}
	return raw, nil
}

// Read returns the contents of every section of the PE image pe by name:
// VirtualSize bytes (what the stub reads), or the raw data if that is
// shorter. The slices alias pe.
func Read(pe []byte) (map[string][]byte, error) {
	f, err := pecoff.Parse(pe)
	if err != nil {
		return nil, fmt.Errorf("reading UKI: %w", err)
	}
	m := make(map[string][]byte, len(f.Sections))
	for _, s := range f.Sections {
		if _, dup := m[s.Name]; dup {
			return nil, fmt.Errorf("reading UKI: two sections named %q", s.Name)
		}
		n := s.VirtualSize
		if n == 0 || n > s.SizeOfRawData {
			n = s.SizeOfRawData
		}
		m[s.Name] = pe[s.PointerToRawData : s.PointerToRawData+n : s.PointerToRawData+n]
	}
	return m, nil
}

func alignUp(x, a uint64) uint64 { return (x + a - 1) / a * a }

func allZero(b []byte) bool { return len(bytes.Trim(b, "\x00")) == 0 }
