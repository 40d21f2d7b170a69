// Package pecoff reads the headers of a PE/COFF image (an EFI application)
// and tells where in the file each field the UKI builder rewrites and the
// Authenticode signer skips lives. debug/pe parses more of a file, but
// hides those offsets, and both callers need exactly them.
package pecoff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrFormat is wrapped by every error about a file that is not a PE image
// this package can read.
var ErrFormat = errors.New("not a PE/COFF image")

const (
	// SectionHeaderSize is the size of one section table entry.
	SectionHeaderSize = 40
	// DirSecurity is the data directory entry of the certificate table
	// (a file offset, not an RVA).
	DirSecurity = 4

	magicPE32     = 0x10b
	magicPE32Plus = 0x20b

	// Offsets in the optional header, the same for PE32 and PE32+.
	OffSizeOfCode             = 4
	OffSizeOfInitializedData  = 8
	OffSectionAlignment       = 32
	OffFileAlignment          = 36
	OffSizeOfImage            = 56
	OffSizeOfHeaders          = 60
	OffCheckSum               = 64
	coffHeaderSize            = 20
	offCOFFNumberOfSections   = 2
	offCOFFPointerToSymbols   = 8
	offCOFFNumberOfSymbols    = 12
	offCOFFSizeOfOptionalHdr  = 16
	symbolSize                = 18
	sectionOffVirtualSize     = 8
	sectionOffVirtualAddress  = 12
	sectionOffSizeOfRawData   = 16
	sectionOffPointerToRaw    = 20
	sectionOffCharacteristics = 36
)

// Section characteristics the UKI builder sets.
const (
	ScnCntCode            = 0x00000020
	ScnCntInitializedData = 0x00000040
	ScnMemExecute         = 0x20000000
	ScnMemRead            = 0x40000000
)

// Section is one entry of the section table.
type Section struct {
	Name             string
	VirtualSize      uint32
	VirtualAddress   uint32
	SizeOfRawData    uint32
	PointerToRawData uint32
	Characteristics  uint32
}

// Header encodes s as a section table entry. The name must fit in 8 bytes:
// longer names need a COFF string table, which images do not have.
func (s Section) Header() ([]byte, error) {
	if len(s.Name) > 8 {
		return nil, fmt.Errorf("section name %q is longer than 8 bytes", s.Name)
	}
	h := make([]byte, SectionHeaderSize)
	copy(h, s.Name)
	le := binary.LittleEndian
	le.PutUint32(h[sectionOffVirtualSize:], s.VirtualSize)
	le.PutUint32(h[sectionOffVirtualAddress:], s.VirtualAddress)
	le.PutUint32(h[sectionOffSizeOfRawData:], s.SizeOfRawData)
	le.PutUint32(h[sectionOffPointerToRaw:], s.PointerToRawData)
	le.PutUint32(h[sectionOffCharacteristics:], s.Characteristics)
	return h, nil
}

// File is the parsed headers of an image, with the file offsets of the
// structures that hold them.
type File struct {
	// OptionalHeader is the file offset of the optional header; the Off*
	// constants are relative to it.
	OptionalHeader int
	// COFFHeader is the file offset of the COFF file header.
	COFFHeader int
	// SectionTable is the file offset of the first section header.
	SectionTable int

	PE32Plus              bool
	NumberOfSymbols       uint32
	PointerToSymbolTable  uint32
	SizeOfCode            uint32
	SizeOfInitializedData uint32
	SectionAlignment      uint32
	FileAlignment         uint32
	SizeOfImage           uint32
	SizeOfHeaders         uint32
	NumberOfRvaAndSizes   uint32
	// CertTable is the certificate table's file offset and size (data
	// directory entry 4); zero when the image is not signed.
	CertOffset, CertSize uint32

	Sections []Section
}

// ChecksumOffset is the file offset of the optional header's CheckSum.
func (f *File) ChecksumOffset() int { return f.OptionalHeader + OffCheckSum }

// DataDirOffset is the file offset of data directory entry i, or -1 if the
// image has fewer entries.
func (f *File) DataDirOffset(i int) int {
	if i < 0 || uint32(i) >= f.NumberOfRvaAndSizes {
		return -1
	}
	base := 96
	if f.PE32Plus {
		base = 112
	}
	return f.OptionalHeader + base + 8*i
}

// NumberOfSectionsOffset is the file offset of the COFF header's
// NumberOfSections.
func (f *File) NumberOfSectionsOffset() int { return f.COFFHeader + offCOFFNumberOfSections }

// SymbolTableOffsets are the file offsets of the COFF header's
// PointerToSymbolTable and NumberOfSymbols.
func (f *File) SymbolTableOffsets() (pointer, count int) {
	return f.COFFHeader + offCOFFPointerToSymbols, f.COFFHeader + offCOFFNumberOfSymbols
}

// SymbolTableEnd is where the COFF symbol table and the string table after
// it end, or 0 when there is none. Linkers that convert ELF to PE (the
// systemd stub is made so) leave one after the last section.
func (f *File) SymbolTableEnd(b []byte) (uint32, error) {
	if f.PointerToSymbolTable == 0 {
		return 0, nil
	}
	strtab := uint64(f.PointerToSymbolTable) + uint64(f.NumberOfSymbols)*symbolSize
	if strtab+4 > uint64(len(b)) {
		return 0, fmt.Errorf("%w: symbol table at %#x runs past the end of the file", ErrFormat, f.PointerToSymbolTable)
	}
	end := strtab + uint64(binary.LittleEndian.Uint32(b[strtab:]))
	if end > uint64(len(b)) || end < strtab+4 {
		return 0, fmt.Errorf("%w: string table at %#x runs past the end of the file", ErrFormat, strtab)
	}
	return uint32(end), nil
}

// RawEnd is the end of the last section's raw data in the file, or
// SizeOfHeaders when no section has any.
func (f *File) RawEnd() uint32 {
	end := f.SizeOfHeaders
	for _, s := range f.Sections {
		if s.SizeOfRawData > 0 && s.PointerToRawData+s.SizeOfRawData > end {
			end = s.PointerToRawData + s.SizeOfRawData
		}
	}
	return end
}

// Parse reads the headers of the image b. It checks that every structure
// it reads and every section's raw data lie inside b.
func Parse(b []byte) (*File, error) {
	le := binary.LittleEndian
	if len(b) < 0x40 || b[0] != 'M' || b[1] != 'Z' {
		return nil, fmt.Errorf("%w: no MZ header", ErrFormat)
	}
	pe := int(le.Uint32(b[0x3c:]))
	if pe < 0x40 || pe > len(b)-4-coffHeaderSize || !bytes.Equal(b[pe:pe+4], []byte("PE\x00\x00")) {
		return nil, fmt.Errorf("%w: no PE signature", ErrFormat)
	}
	f := &File{COFFHeader: pe + 4, OptionalHeader: pe + 4 + coffHeaderSize}
	coff := b[f.COFFHeader:]
	n := int(le.Uint16(coff[offCOFFNumberOfSections:]))
	f.PointerToSymbolTable = le.Uint32(coff[offCOFFPointerToSymbols:])
	f.NumberOfSymbols = le.Uint32(coff[offCOFFNumberOfSymbols:])
	optSize := int(le.Uint16(coff[offCOFFSizeOfOptionalHdr:]))
	f.SectionTable = f.OptionalHeader + optSize
	if f.SectionTable+n*SectionHeaderSize > len(b) {
		return nil, fmt.Errorf("%w: headers run past the end of the file", ErrFormat)
	}
	opt := b[f.OptionalHeader:f.SectionTable]
	if len(opt) < 2 {
		return nil, fmt.Errorf("%w: no optional header", ErrFormat)
	}
	dirBase := 0
	switch le.Uint16(opt) {
	case magicPE32:
		dirBase = 96
	case magicPE32Plus:
		f.PE32Plus, dirBase = true, 112
	default:
		return nil, fmt.Errorf("%w: optional header magic %#x", ErrFormat, le.Uint16(opt))
	}
	if len(opt) < dirBase {
		return nil, fmt.Errorf("%w: optional header of %d bytes is too short", ErrFormat, len(opt))
	}
	f.SizeOfCode = le.Uint32(opt[OffSizeOfCode:])
	f.SizeOfInitializedData = le.Uint32(opt[OffSizeOfInitializedData:])
	f.SectionAlignment = le.Uint32(opt[OffSectionAlignment:])
	f.FileAlignment = le.Uint32(opt[OffFileAlignment:])
	f.SizeOfImage = le.Uint32(opt[OffSizeOfImage:])
	f.SizeOfHeaders = le.Uint32(opt[OffSizeOfHeaders:])
	f.NumberOfRvaAndSizes = le.Uint32(opt[dirBase-4:])
	if uint64(dirBase)+8*uint64(f.NumberOfRvaAndSizes) > uint64(len(opt)) {
		return nil, fmt.Errorf("%w: %d data directories do not fit in the optional header", ErrFormat, f.NumberOfRvaAndSizes)
	}
	if !powerOfTwo(f.FileAlignment) || !powerOfTwo(f.SectionAlignment) || f.SectionAlignment < f.FileAlignment {
		return nil, fmt.Errorf("%w: file alignment %#x, section alignment %#x", ErrFormat, f.FileAlignment, f.SectionAlignment)
	}
	if int(f.SizeOfHeaders) < f.SectionTable+n*SectionHeaderSize || int(f.SizeOfHeaders) > len(b) {
		return nil, fmt.Errorf("%w: SizeOfHeaders %#x does not cover the section table", ErrFormat, f.SizeOfHeaders)
	}
	if d := f.DataDirOffset(DirSecurity); d >= 0 {
		f.CertOffset, f.CertSize = le.Uint32(b[d:]), le.Uint32(b[d+4:])
		if f.CertSize != 0 && uint64(f.CertOffset)+uint64(f.CertSize) > uint64(len(b)) {
			return nil, fmt.Errorf("%w: certificate table runs past the end of the file", ErrFormat)
		}
	}
	for i := range n {
		h := b[f.SectionTable+i*SectionHeaderSize:]
		s := Section{
			Name:             string(bytes.TrimRight(h[:8], "\x00")),
			VirtualSize:      le.Uint32(h[sectionOffVirtualSize:]),
			VirtualAddress:   le.Uint32(h[sectionOffVirtualAddress:]),
			SizeOfRawData:    le.Uint32(h[sectionOffSizeOfRawData:]),
			PointerToRawData: le.Uint32(h[sectionOffPointerToRaw:]),
			Characteristics:  le.Uint32(h[sectionOffCharacteristics:]),
		}
		if s.SizeOfRawData > 0 && uint64(s.PointerToRawData)+uint64(s.SizeOfRawData) > uint64(len(b)) {
			return nil, fmt.Errorf("%w: section %s runs past the end of the file", ErrFormat, s.Name)
		}
		f.Sections = append(f.Sections, s)
	}
	return f, nil
}

func powerOfTwo(x uint32) bool { return x != 0 && x&(x-1) == 0 }

// Checksum computes the optional header's CheckSum of image b the way the
// Windows image loader does: the end-around-carry sum of the file's 16-bit
// little-endian words with the CheckSum field taken as zero, plus the file
// length. (Deferring the carries, as here, gives the same sum, RFC 1071.)
func Checksum(b []byte, checksumOffset int) uint32 {
	var sum uint64
	if checksumOffset%2 == 0 && checksumOffset+4 <= len(b) {
		sum = wordSum(b[:checksumOffset]) + wordSum(b[checksumOffset+4:])
	} else {
		// The field straddles words: take it byte by byte.
		for i := 0; i < len(b); i += 2 {
			for j := i; j < i+2 && j < len(b); j++ {
				if j < checksumOffset || j >= checksumOffset+4 {
					sum += uint64(b[j]) << (8 * (j - i))
				}
			}
		}
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint32(sum) + uint32(len(b))
}

// wordSum adds up p's 16-bit little-endian words, an odd last byte as the
// low byte of a word; p must start at an even file offset.
func wordSum(p []byte) uint64 {
	var sum uint64
	for len(p) >= 8 {
		v := binary.LittleEndian.Uint64(p)
		sum += v&0xffff + v>>16&0xffff + v>>32&0xffff + v>>48
		p = p[8:]
	}
	for len(p) >= 2 {
		sum += uint64(binary.LittleEndian.Uint16(p))
		p = p[2:]
	}
	if len(p) == 1 {
		sum += uint64(p[0])
	}
	return sum
}

// SetChecksum writes the image's checksum into b.
func (f *File) SetChecksum(b []byte) {
	binary.LittleEndian.PutUint32(b[f.ChecksumOffset():], Checksum(b, f.ChecksumOffset()))
}
