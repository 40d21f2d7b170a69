package pcimage

import (
	"bytes"
	"encoding/binary"
	"keel/bootloader/internal/tooltest"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestMatchesGrubMkimage compares CoreImage with grub-mkimage from the
// same files. The two differ in one place by design: the LZMA stream.
// grub-mkimage compresses with GRUB's copy of the LZMA SDK encoder
// (LzmaEnc.c, optimal parsing, level 5), keel with ulikunitz/xz's, so the
// compressed bytes, their length (lzma_decompress.img's compressed-size
// field) and the sector count in diskboot.img's block list differ. What
// the BIOS runs is compared exactly: diskboot.img apart from that count,
// lzma_decompress.img apart from that field, and the decompressed
// payload (kernel at 0x9000, module area, config, prefix) byte for byte.
func TestMatchesGrubMkimage(t *testing.T) {
	files := grubFiles(t)
	mkimage := tooltest.Need(t, "grub-mkimage")
	decomp, err := os.ReadFile(filepath.Join(grubDir, decompName))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		modules []string
		prefix  string
		config  string
	}{
		{"keel", keelModules, "(,gpt2)/grub", "set keel_embedded=yes\nsearch --no-floppy --fs-uuid --set=root 1234-ABCD\n"},
		{"minimal no config", []string{"biosdisk", "part_gpt", "fat"}, "/boot/grub", ""},
		{"overlapping deps and repeats", []string{"linux", "search", "fat", "normal", "fat"}, "(hd0,gpt2)/grub", "echo hi"},
		{"empty prefix", []string{"part_gpt"}, "", "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"-O", "i386-pc", "-d", grubDir, "-p", tc.prefix, "-o", filepath.Join(dir, "core.img")}
			if tc.config != "" {
				cfg := filepath.Join(dir, "embedded.cfg")
				if err := os.WriteFile(cfg, []byte(tc.config), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "-c", cfg)
			}
			tooltest.Run(t, nil, mkimage, append(args, tc.modules...)...)
			want, err := os.ReadFile(filepath.Join(dir, "core.img"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := CoreImage(files, tc.modules, tc.prefix, []byte(tc.config))
			if err != nil {
				t.Fatal(err)
			}
			again, err := CoreImage(files, tc.modules, tc.prefix, []byte(tc.config))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, again) {
				t.Error("two runs gave different core images")
			}
			t.Logf("core.img: keel %d bytes, grub-mkimage %d bytes", len(got), len(want))
			if bytes.Equal(got, want) {
				return // identical, nothing more to compare
			}

			le := binary.LittleEndian
			// diskboot.img: all but the block list's sector count.
			gotBoot, wantBoot := bytes.Clone(got[:sectorSize]), bytes.Clone(want[:sectorSize])
			for _, c := range []struct {
				name string
				img  []byte
				boot []byte
			}{{"keel", got, gotBoot}, {"grub-mkimage", want, wantBoot}} {
				n := le.Uint16(c.boot[sectorSize-4:])
				if wantN := (len(c.img) - sectorSize + sectorSize - 1) / sectorSize; int(n) != wantN {
					t.Errorf("%s: block list length %d sectors, want %d for %d bytes", c.name, n, wantN, len(c.img)-sectorSize)
				}
				le.PutUint16(c.boot[sectorSize-4:], 0)
			}
			if !bytes.Equal(gotBoot, wantBoot) {
				t.Errorf("diskboot.img sectors differ:\nkeel % x\ngrub % x", gotBoot, wantBoot)
			}

			// lzma_decompress.img: all but the compressed size.
			gotDec := bytes.Clone(got[sectorSize : sectorSize+len(decomp)])
			wantDec := bytes.Clone(want[sectorSize : sectorSize+len(decomp)])
			le.PutUint32(gotDec[decompCompressedSize:], 0)
			le.PutUint32(wantDec[decompCompressedSize:], 0)
			if !bytes.Equal(gotDec, wantDec) {
				t.Error("lzma_decompress.img headers differ beyond the compressed size")
			}

			gotPay, _, gotU, err := payload(got, len(decomp))
			if err != nil {
				t.Fatalf("keel: %v", err)
			}
			wantPay, _, wantU, err := payload(want, len(decomp))
			if err != nil {
				t.Fatalf("grub-mkimage: %v", err)
			}
			if gotU != wantU {
				t.Errorf("uncompressed size: keel %d, grub-mkimage %d", gotU, wantU)
			}
			if i := firstDiff(gotPay, wantPay); i >= 0 {
				t.Fatalf("decompressed payloads differ first at byte %d (of %d and %d)", i, len(gotPay), len(wantPay))
			}

			// The payload holds the modules in moddep.lst order, each
			// once, with what they need before them.
			kernel, err := os.ReadFile(filepath.Join(grubDir, kernelName))
			if err != nil {
				t.Fatal(err)
			}
			_, kl, err := layoutKernel(kernel, 0)
			if err != nil {
				t.Fatal(err)
			}
			names, err := moduleNames(gotPay, kl.size)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tc.modules {
				if !slices.Contains(names, m) {
					t.Errorf("module %s missing from %v", m, names)
				}
			}
			t.Logf("modules: %v", names)
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}
