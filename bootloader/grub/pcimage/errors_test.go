package pcimage

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// TestCoreImageErrors damages one input at a time and checks that
// CoreImage names what is wrong.
func TestCoreImageErrors(t *testing.T) {
	base := grubMapFS(t)
	kernel := base[kernelName].Data
	le := binary.LittleEndian

	// Every module of the directory: more than the BIOS can load.
	var all []string
	for p := range base {
		if n, ok := strings.CutSuffix(p, ".mod"); ok {
			all = append(all, n)
		}
	}
	slices.Sort(all)

	set := func(name string, data []byte) func(fstest.MapFS) {
		return func(m fstest.MapFS) { m[name] = &fstest.MapFile{Data: data} }
	}
	patched := func(b []byte, off int, v uint32) []byte {
		b = bytes.Clone(b)
		le.PutUint32(b[off:], v)
		return b
	}
	shoff := int(le.Uint32(kernel[32:]))

	tests := []struct {
		name    string
		modules []string
		config  string
		change  func(fstest.MapFS)
		want    string
	}{
		{name: "unknown module", modules: []string{"fat", "nosuchmodule"}, want: `unknown module "nosuchmodule"`},
		{name: "bad module name", modules: []string{"../fat"}, want: "not a GRUB module name"},
		{name: "missing dependency file", modules: []string{"fat"},
			change: func(m fstest.MapFS) { delete(m, "fshelp.mod") }, want: `module "fshelp", needed by "fat"`},
		{name: "unknown dependency", modules: []string{"fat"},
			change: set(moddepName, []byte("fat: fshelp notamodule\nfshelp:\n")), want: `module "notamodule", needed by "fat"`},
		{name: "dependency cycle", modules: []string{"fat"},
			change: set(moddepName, []byte("fat: fshelp\nfshelp: disk\ndisk: fat\n")), want: "dependency cycle in moddep.lst: fat -> fshelp -> disk -> fat"},
		{name: "self dependency", modules: []string{"fat"},
			change: set(moddepName, []byte("fat: fat\n")), want: "dependency cycle in moddep.lst: fat -> fat"},
		{name: "bad moddep line", modules: []string{"fat"},
			change: set(moddepName, []byte("fat fshelp\n")), want: "moddep.lst: line 1"},
		{name: "missing moddep.lst", modules: []string{"fat"},
			change: func(m fstest.MapFS) { delete(m, moddepName) }, want: "moddep.lst"},
		{name: "module not ELF", modules: []string{"fat"},
			change: set("fshelp.mod", []byte("#!/bin/sh\n")), want: `module "fshelp" (fshelp.mod): not an ELF file`},
		{name: "module truncated", modules: []string{"fat"},
			change: set("fshelp.mod", base["fshelp.mod"].Data[:len(base["fshelp.mod"].Data)/2]), want: `module "fshelp" (fshelp.mod): ELF section`},
		{name: "module under another name", modules: []string{"fat"},
			change: set("fshelp.mod", base["part_gpt.mod"].Data), want: `.modname is "part_gpt"`},
		{name: "module for another machine", modules: []string{"fat"},
			change: func(m fstest.MapFS) {
				b := bytes.Clone(base["fshelp.mod"].Data)
				le.PutUint16(b[18:], 62) // EM_X86_64
				m["fshelp.mod"] = &fstest.MapFile{Data: b}
			}, want: "machine 62"},
		{name: "missing kernel.img", modules: []string{"fat"},
			change: func(m fstest.MapFS) { delete(m, kernelName) }, want: "kernel.img"},
		{name: "kernel.img truncated", modules: []string{"fat"},
			change: set(kernelName, kernel[:30]), want: "kernel.img: not an ELF file: 30 bytes"},
		{name: "kernel.img section headers past the end", modules: []string{"fat"},
			change: set(kernelName, patched(kernel, 32, uint32(len(kernel)-10))), want: "kernel.img: ELF section headers"},
		{name: "kernel.img section data past the end", modules: []string{"fat"},
			change: set(kernelName, patched(kernel, shoff+elfSectionLen+16, 0xfffffff0)), want: "runs past the end"},
		{name: "kernel.img 64-bit", modules: []string{"fat"},
			change: func(m fstest.MapFS) {
				b := bytes.Clone(kernel)
				b[4] = 2
				m[kernelName] = &fstest.MapFile{Data: b}
			}, want: "ELF class 2"},
		{name: "kernel.img text not at link address", modules: []string{"fat"},
			change: set(kernelName, patched(kernel, shoff+elfSectionLen+12, 0x8000)), want: "not at the link address 0x9000"},
		{name: "kernel.img a module", modules: []string{"fat"},
			change: set(kernelName, base["fat.mod"].Data), want: "want an executable"},
		{name: "kernel.img data beyond kernel limit", modules: []string{"fat"},
			change: set(kernelName, patched(kernel, shoff+3*elfSectionLen+12, 0x70000)), want: "outside 0x9000-0x68000"},
		{name: "missing decompressor", modules: []string{"fat"},
			change: func(m fstest.MapFS) { delete(m, decompName) }, want: decompName},
		{name: "decompressor too big", modules: []string{"fat"},
			change: set(decompName, make([]byte, 0x1000)), want: "lzma_decompress.img: 4096 bytes"},
		{name: "diskboot wrong size", modules: []string{"fat"},
			change: set(diskbootName, make([]byte, 511)), want: "diskboot.img: 511 bytes"},
		{name: "diskboot not GRUB's", modules: []string{"fat"},
			change: set(diskbootName, make([]byte, 512)), want: "block list segment 0x0"},
		{name: "config with NUL", modules: []string{"fat"}, config: "echo a\x00b", want: "NUL byte"},
		{name: "every module is too big", modules: all, want: "core image is too big"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := fstest.MapFS{}
			for k, v := range base {
				m[k] = v
			}
			if tc.change != nil {
				tc.change(m)
			}
			core, err := CoreImage(m, tc.modules, "(,gpt2)/grub", []byte(tc.config))
			if err == nil {
				t.Fatalf("no error (core image %d bytes), want %q", len(core), tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

// memDisk is a disk image in memory.
type memDisk []byte

func (d memDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(d)) {
		return 0, os.ErrInvalid
	}
	return copy(p, d[off:]), nil
}

func (d memDisk) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(d)) {
		return 0, os.ErrInvalid
	}
	return copy(d[off:], p), nil
}

// protectiveMBR returns a 4 MiB disk whose sector 0 has a disk signature,
// a protective 0xEE partition and 0x55AA, as keel's GPT writer leaves it.
func protectiveMBR() memDisk {
	d := make(memDisk, 4<<20)
	copy(d[0x1b8:], []byte{0xde, 0xad, 0xbe, 0xef})
	p := d[0x1be:]
	p[4] = 0xee
	binary.LittleEndian.PutUint32(p[8:], 1)
	binary.LittleEndian.PutUint32(p[12:], uint32(len(d)/512-1))
	d[510], d[511] = 0x55, 0xaa
	return d
}

// TestEmbed checks what Embed writes against grub-bios-setup's rules:
// boot.img's code with the core's LBA, drive 0xff and the drive check
// NOPed; the MBR's disk signature and partition table untouched; core at
// its LBA with one block list entry for the rest of it, then as many
// sectors of Reed-Solomon codes as fit, up to the core's own size.
func TestEmbed(t *testing.T) {
	files := grubFiles(t)
	core, err := CoreImage(files, []string{"biosdisk", "part_gpt", "fat"}, "(,gpt2)/grub", nil)
	if err != nil {
		t.Fatal(err)
	}
	boot, err := os.ReadFile(filepath.Join(grubDir, bootImgName))
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	coreSectors := (len(core) + 511) / 512
	noRS := int(le.Uint16(core[512+decompNoRSLength:]))

	tests := []struct {
		name    string
		sectors uint64
		nsec    int // sectors written
	}{
		{"1 MiB partition", 2014, 2 * coreSectors},
		{"exact fit, no codes", uint64(coreSectors), coreSectors},
		{"three sectors of codes", uint64(coreSectors + 3), coreSectors + 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := protectiveMBR()
			before := bytes.Clone(d)
			const start = 34
			if err := Embed(d, files, core, start, tc.sectors); err != nil {
				t.Fatal(err)
			}
			nsec := tc.nsec

			if !bytes.Equal(d[0x1b8:512], before[0x1b8:512]) {
				t.Error("disk signature, partition table or 0x55AA changed")
			}
			wantCode := bytes.Clone(boot[:0x1b8])
			le.PutUint64(wantCode[0x5c:], start)
			wantCode[0x64] = 0xff
			wantCode[0x66], wantCode[0x67] = 0x90, 0x90
			if !bytes.Equal(d[:0x1b8], wantCode) {
				t.Error("MBR boot code is not boot.img patched for LBA 34")
			}
			if boot[0x66] != 0xeb {
				t.Errorf("boot.img at 0x66 is 0x%x, not the jmp grub-bios-setup replaces", boot[0x66])
			}

			got := d[start*512 : (start+nsec)*512]
			first := got[500:512]
			if s, n, seg := le.Uint64(first), le.Uint16(first[8:]), le.Uint16(first[10:]); s != start+1 || int(n) != nsec-1 || seg != 0x820 {
				t.Errorf("block list {%d, %d, 0x%x}, want {%d, %d, 0x820}", s, n, seg, start+1, nsec-1)
			}
			if !bytes.Equal(got[488:500], make([]byte, 12)) {
				t.Error("no terminator before the block list")
			}
			redundancy := int(le.Uint32(got[512+decompRSRedundancy:]))
			if redundancy != nsec*512-len(core) {
				t.Errorf("redundancy field %d, want %d", redundancy, nsec*512-len(core))
			}
			want := bytes.Clone(core)
			copy(want[500:], first)
			copy(want[488:500], make([]byte, 12))
			le.PutUint32(want[512+decompRSRedundancy:], uint32(redundancy))
			if i := firstDiff(got[:len(core)], want); i >= 0 {
				t.Errorf("core image changed at byte %d, outside its block list and redundancy field", i)
			}
			if err := checkSyndromes(got[512+noRS:len(core)], got[len(core):]); err != nil {
				t.Error(err)
			}
			if !bytes.Equal(d[(start+nsec)*512:], before[(start+nsec)*512:]) || !bytes.Equal(d[512:start*512], before[512:start*512]) {
				t.Error("Embed wrote outside the MBR code and the core's sectors")
			}

			// Embedding again somewhere else moves the MBR pointer and
			// gives one block list entry: the old one is cleared.
			if err := Embed(d, files, got[:len(core)], start+8, tc.sectors); err != nil {
				t.Fatal(err)
			}
			again := d[(start+8)*512:]
			if s, n := le.Uint64(again[500:]), le.Uint16(again[508:]); s != start+9 || int(n) != nsec-1 {
				t.Errorf("re-embedded block list {%d, %d}, want {%d, %d}", s, n, start+9, nsec-1)
			}
			if le.Uint64(d[0x5c:]) != start+8 {
				t.Errorf("MBR points at %d, want %d", le.Uint64(d[0x5c:]), start+8)
			}
		})
	}
}

func TestEmbedErrors(t *testing.T) {
	files := grubMapFS(t)
	core, err := CoreImage(files, []string{"biosdisk", "part_gpt", "fat"}, "(,gpt2)/grub", nil)
	if err != nil {
		t.Fatal(err)
	}
	nsec := uint64(len(core)+511) / 512
	noSig := protectiveMBR()
	noSig[510] = 0

	tests := []struct {
		name           string
		disk           memDisk
		files          fstest.MapFS
		core           []byte
		start, sectors uint64
		want           string
	}{
		{name: "partition too small", sectors: nsec - 1, want: "core image needs"},
		{name: "no MBR signature", disk: noSig, want: "no MBR signature"},
		{name: "start at MBR", start: 0, want: "sector 0"},
		{name: "start past any disk", start: 1 << 62, want: "out of range"},
		{name: "not a core image", core: make([]byte, 4096), want: "does not start with diskboot.img"},
		{name: "too short", core: core[:600], want: "too short"},
		{name: "more than a BIOS loads", core: append(bytes.Clone(core), make([]byte, 900*512)...), sectors: 4000, want: "more than the 888"},
		{name: "missing boot.img", files: func() fstest.MapFS {
			m := fstest.MapFS{}
			for k, v := range files {
				if k != bootImgName {
					m[k] = v
				}
			}
			return m
		}(), want: "boot.img"},
		{name: "short disk", disk: protectiveMBR()[:1024], want: "writing core image"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, f, c := tc.disk, tc.files, tc.core
			if d == nil {
				d = protectiveMBR()
			}
			if f == nil {
				f = files
			}
			if c == nil {
				c = core
			}
			start, sectors := tc.start, tc.sectors
			if start == 0 && tc.name != "start at MBR" {
				start = 34
			}
			if sectors == 0 {
				sectors = 2014
			}
			before := bytes.Clone(d)
			err := Embed(d, f, c, start, sectors)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			if !bytes.Equal(d, before) {
				t.Error("Embed wrote to the disk before refusing")
			}
		})
	}
}
