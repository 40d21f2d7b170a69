package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keel/image/disk"
)

// TestRunArch: keel run boots a disk on the machine its root slots'
// partition type names, unless --arch says otherwise.
func TestRunArch(t *testing.T) {
	dir := t.TempDir()
	image := func(arch string) string {
		l, err := disk.Plan(disk.Sizes{ESP: disk.MinESP, Slot: 1 << 20, Data: disk.MinData, Arch: arch}, []byte("run"))
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(dir, arch+".img")
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(l.Size); err != nil {
			t.Fatal(err)
		}
		if err := disk.WriteGPT(f, l); err != nil {
			t.Fatal(err)
		}
		return name
	}
	x86, arm := image("x86_64"), image("aarch64")
	notDisk := filepath.Join(dir, "zeros.img")
	if err := os.WriteFile(notDisk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		flag, disk, want, wantErr string
	}{
		{"", x86, "x86_64", ""},
		{"", arm, "aarch64", ""},
		{"", notDisk, "x86_64", ""},
		{"x86_64", arm, "x86_64", ""},
		{"aarch64", x86, "aarch64", ""},
		{"arm64", arm, "", `--arch "arm64": want x86_64 or aarch64`},
	} {
		got, err := runArch(c.flag, c.disk)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("runArch(%q, %s) error %v, want %q", c.flag, filepath.Base(c.disk), err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("runArch(%q, %s) = %q, %v; want %q", c.flag, filepath.Base(c.disk), got, err, c.want)
		}
	}
}
