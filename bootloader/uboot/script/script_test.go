package script_test

import (
	"bytes"
	"fmt"
	"keel/bootloader/internal/tooltest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keel/bootloader/uboot/script"
)

// mkimage runs the real tool with SOURCE_DATE_EPOCH set.
func mkimage(t *testing.T, src []byte, name, arch string, mtime int64) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "boot.cmd"), filepath.Join(dir, "boot.scr")
	if err := os.WriteFile(in, src, 0o644); err != nil {
		t.Fatal(err)
	}
	tooltest.Run(t, []string{fmt.Sprintf("SOURCE_DATE_EPOCH=%d", mtime)}, "mkimage",
		"-A", arch, "-O", "linux", "-T", "script", "-C", "none", "-n", name, "-d", in, out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var cases = []struct {
	name  string
	src   string
	title string
	arch  string
	mtime int64
}{
	{"keel", "echo keel\nload virtio 0:1 ${loadaddr} /keel/uboot.env\n", "keel boot", "arm64", 1700000000},
	{"zero time", "echo 0\n", "zero", "arm64", 0},
	{"odd length, no final newline", "echo a", "a", "arm", 1},
	{"32-byte name", "echo x\n", strings.Repeat("n", 32), "x86_64", 4294967295},
	{"empty name", "echo x\n", "", "riscv", 86400},
	{"binary bytes", "echo \x00\xff\n", "bin", "arm64", 12345},
}

// Compile writes exactly mkimage's bytes, for every architecture too.
func TestMatchesMkimage(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := script.Compile([]byte(c.src), c.title, c.arch, c.mtime)
			if err != nil {
				t.Fatal(err)
			}
			if want := mkimage(t, []byte(c.src), c.title, c.arch, c.mtime); !bytes.Equal(got, want) {
				t.Errorf("Compile differs from mkimage:\n got % x\nwant % x", got, want)
			}
		})
	}
	for _, arch := range script.Archs() {
		t.Run("arch="+arch, func(t *testing.T) {
			src := []byte("echo " + arch + "\n")
			got, err := script.Compile(src, "arch "+arch, arch, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if want := mkimage(t, src, "arch "+arch, arch, 1000); !bytes.Equal(got, want) {
				t.Errorf("Compile differs from mkimage:\n got % x\nwant % x", got, want)
			}
		})
	}
}

// dumpimage -l reads the header back: type, architecture, name, size.
func TestDumpimage(t *testing.T) {
	src := []byte("echo hello\n")
	b, err := script.Compile(src, "keel boot", "arm64", 1700000000)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "boot.scr")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := string(tooltest.Run(t, nil, "dumpimage", "-l", f))
	for _, want := range []string{
		"Image Name:   keel boot",
		"Image Type:   AArch64 Linux Script (uncompressed)",
		fmt.Sprintf("Data Size:    %d Bytes", len(src)+8),
		fmt.Sprintf("Image 0: %d Bytes", len(src)),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dumpimage -l lacks %q:\n%s", want, out)
		}
	}
	// dumpimage -p 0 extracts the whole data of a legacy image: the length
	// list (this script's length, then 0) and the script.
	x := filepath.Join(t.TempDir(), "boot.cmd")
	tooltest.Run(t, nil, "dumpimage", "-T", "script", "-p", "0", "-o", x, f)
	want := append([]byte{0, 0, 0, byte(len(src)), 0, 0, 0, 0}, src...)
	if got, err := os.ReadFile(x); err != nil || !bytes.Equal(got, want) {
		t.Errorf("dumpimage -p 0: %q (%v), want %q", got, err, want)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, c := range []struct {
		name, src, title, arch string
		mtime                  int64
	}{
		{"empty script", "", "x", "arm64", 0}, // mkimage: "is empty, bailing out"
		{"33-byte name", "echo\n", strings.Repeat("n", 33), "arm64", 0},
		{"unknown arch", "echo\n", "x", "aarch64", 0},
		{"empty arch", "echo\n", "x", "", 0},
		{"invalid arch", "echo\n", "x", "invalid", 0},
		{"NUL in name", "echo\n", "a\x00b", "arm64", 0},
		{"negative time", "echo\n", "x", "arm64", -1},
		{"time past 32 bits", "echo\n", "x", "arm64", 1 << 32},
	} {
		t.Run(c.name, func(t *testing.T) {
			if b, err := script.Compile([]byte(c.src), c.title, c.arch, c.mtime); err == nil {
				t.Errorf("Compile: % x, want an error", b)
			}
		})
	}
}
