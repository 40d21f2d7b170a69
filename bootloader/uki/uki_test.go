package uki_test

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"keel/bootloader/internal/pecoff"
	"keel/bootloader/uki"
)

// stubPath is systemd-stub as Debian 12's systemd-boot-efi (252) installs it.
const stubPath = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

func readStub(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(stubPath)
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("systemd-boot-efi not installed")
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s (%s): not installed", name, pkg)
	}
	return p
}

// pattern fills n bytes with a sequence that differs at every offset, so a
// section copied to the wrong place or cut short is noticed.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

func sections() uki.Sections {
	return uki.Sections{
		Linux:   pattern(3<<20+17, 1), // odd sizes: VirtualSize is not padded
		Initrd:  pattern(1<<20+5, 2),
		Cmdline: []byte("root=PARTUUID=0FC63DAF-8483-4772-8E79-3D69D8477DE4 keel.slot=a console=ttyS0"),
		OSRel:   []byte("ID=keel\nIMAGE_ID=test\nIMAGE_VERSION=1.0.0\n"),
		Uname:   []byte("6.1.0-56-amd64"),
	}
}

type objSection struct {
	name           string
	size, vma, off uint64
}

// objdumpSections runs objdump -h, binutils' own PE reader.
func objdumpSections(t *testing.T, path string) []objSection {
	t.Helper()
	out, err := exec.Command(needTool(t, "objdump", "binutils"), "-h", path).CombinedOutput()
	if err != nil {
		t.Fatalf("objdump -h %s: %v\n%s", path, err, out)
	}
	re := regexp.MustCompile(`(?m)^\s*\d+\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+2\*\*(\d+)$`)
	var secs []objSection
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		s := objSection{name: m[1]}
		s.size, _ = strconv.ParseUint(m[2], 16, 64)
		s.vma, _ = strconv.ParseUint(m[3], 16, 64)
		s.off, _ = strconv.ParseUint(m[4], 16, 64)
		secs = append(secs, s)
	}
	if len(secs) == 0 {
		t.Fatalf("objdump -h listed no sections:\n%s", out)
	}
	return secs
}

// TestBuild builds a UKI from the real stub and checks it with binutils,
// Go's debug/pe and osslsigncode, and that a second build is identical.
func TestBuild(t *testing.T) {
	stub := readStub(t)
	s := sections()
	out, err := uki.Build(stub, s)
	if err != nil {
		t.Fatal(err)
	}
	again, err := uki.Build(stub, s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, again) {
		t.Error("two builds from the same inputs differ")
	}
	path := filepath.Join(t.TempDir(), "uki.efi")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}

	want := map[string][]byte{".osrel": s.OSRel, ".cmdline": s.Cmdline, ".uname": s.Uname, ".initrd": s.Initrd, ".linux": s.Linux}
	stubSecs := objdumpSections(t, stubPath)
	secs := objdumpSections(t, path)
	var names []string
	for _, sec := range secs {
		names = append(names, sec.name)
	}
	wantNames := []string{".text", ".reloc", ".data", ".dynamic", ".rela", ".dynsym", ".sbat", ".sdmagic", ".osrel", ".cmdline", ".uname", ".initrd", ".linux"}
	if strings.Join(names, " ") != strings.Join(wantNames, " ") {
		t.Errorf("objdump sections %v, want %v", names, wantNames)
	}
	// The stub's own sections are where they were; the new ones follow,
	// page-aligned in memory, FileAlignment-aligned in the file, and no
	// section overlaps the one before it in memory or in the file.
	for i, sec := range secs {
		if i < len(stubSecs) && sec != stubSecs[i] {
			t.Errorf("stub section %s moved: %+v, was %+v", sec.name, sec, stubSecs[i])
		}
		if w, ok := want[sec.name]; ok {
			if sec.size != uint64(len(w)) || sec.vma%4096 != 0 || sec.off%512 != 0 {
				t.Errorf("%s: size %#x vma %#x file offset %#x, want size %#x, page-aligned vma, 512-aligned offset", sec.name, sec.size, sec.vma, sec.off, len(w))
			}
		}
		if i > 0 {
			prev := secs[i-1]
			if sec.vma < prev.vma+prev.size {
				t.Errorf("%s at %#x overlaps %s (%#x+%#x) in memory", sec.name, sec.vma, prev.name, prev.vma, prev.size)
			}
			if sec.off < prev.off+prev.size {
				t.Errorf("%s at file offset %#x overlaps %s", sec.name, sec.off, prev.name)
			}
		}
	}
	// binutils reads back each section's exact bytes.
	dir := t.TempDir()
	for name, w := range want {
		dump := filepath.Join(dir, strings.TrimPrefix(name, "."))
		if out, err := exec.Command("objcopy", "--dump-section", name+"="+dump, path, filepath.Join(dir, "discard")).CombinedOutput(); err != nil {
			t.Fatalf("objcopy --dump-section %s: %v\n%s", name, err, out)
		}
		if got, _ := os.ReadFile(dump); !bytes.Equal(got, w) {
			t.Errorf("objcopy: %s has %d bytes, not what was put in (%d)", name, len(got), len(w))
		}
	}

	// Go's reader: the same sections, each VirtualSize bytes of content,
	// and SizeOfImage covering the last.
	f, err := pe.Open(path)
	if err != nil {
		t.Fatalf("debug/pe: %v", err)
	}
	defer f.Close()
	oh, ok := f.OptionalHeader.(*pe.OptionalHeader64)
	if !ok {
		t.Fatalf("debug/pe: optional header %T, want PE32+", f.OptionalHeader)
	}
	last := f.Sections[len(f.Sections)-1]
	if oh.SizeOfImage < last.VirtualAddress+last.VirtualSize || oh.SizeOfImage%oh.SectionAlignment != 0 {
		t.Errorf("SizeOfImage %#x does not cover %s (%#x+%#x) or is not aligned", oh.SizeOfImage, last.Name, last.VirtualAddress, last.VirtualSize)
	}
	if d := oh.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_SECURITY]; d.Size != 0 || d.VirtualAddress != 0 {
		t.Errorf("certificate table %+v in an unsigned image", d)
	}
	if f.FileHeader.PointerToSymbolTable != 0 || f.FileHeader.NumberOfSymbols != 0 {
		t.Errorf("COFF symbol table left: %#x, %d symbols", f.FileHeader.PointerToSymbolTable, f.FileHeader.NumberOfSymbols)
	}
	var code, data uint32
	for _, sec := range f.Sections {
		switch {
		case sec.Characteristics&pe.IMAGE_SCN_CNT_CODE != 0:
			code += sec.Size
		case sec.Characteristics&pe.IMAGE_SCN_CNT_INITIALIZED_DATA != 0:
			data += sec.Size
		}
		if w, ok := want[sec.Name]; ok {
			b, err := sec.Data()
			if err != nil {
				t.Fatalf("debug/pe: %s: %v", sec.Name, err)
			}
			if !bytes.Equal(b[:sec.VirtualSize], w) || !allZero(b[sec.VirtualSize:]) {
				t.Errorf("debug/pe: %s does not hold what was put in", sec.Name)
			}
		}
	}
	if oh.SizeOfCode != code || oh.SizeOfInitializedData != data {
		t.Errorf("SizeOfCode %#x, SizeOfInitializedData %#x; the sections add up to %#x and %#x", oh.SizeOfCode, oh.SizeOfInitializedData, code, data)
	}

	// The stub's own .sbat is kept as it was.
	got, err := uki.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	stubRead, err := uki.Read(stub)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[".sbat"], stubRead[".sbat"]) || !bytes.HasPrefix(got[".sbat"], []byte("sbat,1,")) {
		t.Errorf(".sbat changed: %q", got[".sbat"])
	}
	for name, w := range want {
		if !bytes.Equal(got[name], w) {
			t.Errorf("Read: %s differs", name)
		}
	}

	checkChecksum(t, path)
}

// checkChecksum has osslsigncode compute the PE checksum independently,
// and first makes sure it notices a wrong one.
func checkChecksum(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := pecoff.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad-checksum.efi")
	b = bytes.Clone(b)
	b[f.ChecksumOffset()]++
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if checksumOK(t, bad) {
		t.Fatal("osslsigncode accepts a wrong PE checksum: it checks nothing")
	}
	if !checksumOK(t, path) {
		t.Errorf("osslsigncode: bad PE checksum in %s", path)
	}
}

func checksumOK(t *testing.T, path string) bool {
	out, _ := exec.Command(needTool(t, "osslsigncode", "osslsigncode"), "verify", "-in", path).CombinedOutput()
	if !bytes.Contains(out, []byte("PE checksum")) {
		t.Fatalf("osslsigncode did not check the PE checksum:\n%s", out)
	}
	return !bytes.Contains(out, []byte("invalid PE checksum"))
}

func allZero(b []byte) bool { return len(bytes.Trim(b, "\x00")) == 0 }

// TestBuildOptional leaves out the optional sections: no empty section is
// written for them.
func TestBuildOptional(t *testing.T) {
	stub := readStub(t)
	s := sections()
	s.Initrd, s.Uname = nil, nil
	out, err := uki.Build(stub, s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := uki.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".initrd", ".uname"} {
		if _, ok := got[name]; ok {
			t.Errorf("%s written though empty", name)
		}
	}
	if !bytes.Equal(got[".linux"], s.Linux) {
		t.Error(".linux differs")
	}
}

// TestBuildSignedStub: a signed stub (sbsign) gives the same UKI as the
// unsigned one: its certificate table is dropped, not carried along.
func TestBuildSignedStub(t *testing.T) {
	stub := readStub(t)
	sbsign := needTool(t, "sbsign", "sbsigntool")
	dir := t.TempDir()
	key, crt := filepath.Join(dir, "k.key"), filepath.Join(dir, "k.crt")
	if out, err := exec.Command(needTool(t, "openssl", "openssl"), "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=test/", "-days", "1", "-keyout", key, "-out", crt).CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	signed := filepath.Join(dir, "stub.signed")
	if out, err := exec.Command(sbsign, "--key", key, "--cert", crt, "--output", signed, stubPath).CombinedOutput(); err != nil {
		t.Fatalf("sbsign: %v\n%s", err, out)
	}
	sb, err := os.ReadFile(signed)
	if err != nil {
		t.Fatal(err)
	}
	a, err := uki.Build(stub, sections())
	if err != nil {
		t.Fatal(err)
	}
	b, err := uki.Build(sb, sections())
	if err != nil {
		t.Fatalf("signed stub: %v", err)
	}
	if !bytes.Equal(a, b) {
		t.Error("a UKI from the signed stub differs from one from the unsigned stub")
	}
}

// TestBuildAddsSBAT: a stub without .sbat gets one.
func TestBuildAddsSBAT(t *testing.T) {
	stub := bytes.Clone(readStub(t))
	f, err := pecoff.Parse(stub)
	if err != nil {
		t.Fatal(err)
	}
	renamed := false
	for i, s := range f.Sections {
		if s.Name == ".sbat" {
			copy(stub[f.SectionTable+i*pecoff.SectionHeaderSize:], ".sbax")
			renamed = true
		}
	}
	if !renamed {
		t.Fatal("the stub has no .sbat to hide")
	}
	out, err := uki.Build(stub, sections())
	if err != nil {
		t.Fatal(err)
	}
	got, err := uki.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(got[".sbat"]) != uki.DefaultSBAT {
		t.Errorf(".sbat %q, want %q", got[".sbat"], uki.DefaultSBAT)
	}
	path := filepath.Join(t.TempDir(), "uki.efi")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	secs := objdumpSections(t, path)
	if secs[len(secs)-6].name != ".sbat" {
		t.Errorf("objdump: .sbat is not before the payload sections: %+v", secs)
	}
	checkChecksum(t, path)
}

func TestBuildErrors(t *testing.T) {
	stub := readStub(t)
	f, err := pecoff.Parse(stub)
	if err != nil {
		t.Fatal(err)
	}
	tableEnd := f.SectionTable + len(f.Sections)*pecoff.SectionHeaderSize
	// More (empty) section entries, so that the five new ones no longer
	// fit below SizeOfHeaders.
	fullHeaders := bytes.Clone(stub)
	spare := (int(f.SizeOfHeaders) - tableEnd) / pecoff.SectionHeaderSize
	binary.LittleEndian.PutUint16(fullHeaders[f.NumberOfSectionsOffset():], uint16(len(f.Sections)+spare-4))
	headerInUse := bytes.Clone(stub)
	headerInUse[tableEnd+3*pecoff.SectionHeaderSize] = 1
	built, err := uki.Build(stub, sections())
	if err != nil {
		t.Fatal(err)
	}
	trailing := append(bytes.Clone(stub), "junk"...)
	noLinux, noCmdline, noOSRel := sections(), sections(), sections()
	noLinux.Linux, noCmdline.Cmdline, noOSRel.OSRel = nil, nil, nil

	tests := []struct {
		name  string
		stub  []byte
		s     uki.Sections
		is    error
		match string
	}{
		{"no room for the section table", fullHeaders, sections(), uki.ErrNoRoom, "need"},
		{"bytes after the section table in use", headerInUse, sections(), uki.ErrNoRoom, "in use"},
		{"already a UKI", built, sections(), nil, "already has a .osrel section"},
		{"data after the symbol table", trailing, sections(), nil, "unknown data after the symbol table"},
		{"not a PE", []byte("MZ but nothing else"), sections(), pecoff.ErrFormat, "not a PE"},
		{"no kernel", stub, noLinux, nil, "no kernel"},
		{"no command line", stub, noCmdline, nil, "Secure Boot"},
		{"no os-release", stub, noOSRel, nil, "osrel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := uki.Build(tt.stub, tt.s)
			if err == nil {
				t.Fatal("built")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.match) {
				t.Errorf("error %q does not say %q", err, tt.match)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	stub := readStub(t)
	f, err := pecoff.Parse(stub)
	if err != nil {
		t.Fatal(err)
	}
	dup := bytes.Clone(stub)
	copy(dup[f.SectionTable+pecoff.SectionHeaderSize:], ".text\x00\x00\x00")
	truncated := stub[:f.Sections[len(f.Sections)-1].PointerToRawData+1]
	for name, b := range map[string][]byte{"duplicate name": dup, "truncated": truncated, "empty": nil} {
		if _, err := uki.Read(b); err == nil {
			t.Errorf("%s: read without error", name)
		}
	}
}

// FuzzRead: Read never panics, and whatever it returns lies inside the input.
func FuzzRead(f *testing.F) {
	if stub, err := os.ReadFile(stubPath); err == nil {
		f.Add(stub[:0x400])
		if u, err := uki.Build(stub, sections()); err == nil {
			f.Add(u[:0x600])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := uki.Read(b)
		if err != nil {
			return
		}
		for name, s := range m {
			if len(s) > len(b) {
				t.Errorf("%s: %d bytes from a %d-byte input", name, len(s), len(b))
			}
		}
	})
}
