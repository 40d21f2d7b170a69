package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"keel/image/disk"
	"keel/image/disk/disktest"
	"keel/image/format"
)

// TestRunArch: keel run boots a disk on the machine its root slots'
// partition type names, unless --arch says otherwise; in a qcow2, vmdk or
// vhdx image too, read through qemu-img.
func TestRunArch(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img not installed (.ci/run installs it: qemu-utils)")
	}
	dir := t.TempDir()
	image := func(arch string) string {
		name, _ := disktest.GPT(t, dir, arch, disk.Sizes{ESP: disk.MinESP, Slot: 1 << 20, Data: disk.MinData, Arch: arch}, "run")
		return name
	}
	// convert writes raw as f with keel build's converter.
	convert := func(raw string, f format.Format) string {
		src, err := os.Open(raw)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		st, err := src.Stat()
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(raw, ".img") + f.Ext()
		dst, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		defer dst.Close()
		if err := format.Write(t.Context(), dst, src, st.Size(), f); err != nil {
			t.Fatal(err)
		}
		return name
	}
	x86, arm := image("x86_64"), image("aarch64")
	notDisk := filepath.Join(dir, "zeros.img")
	if err := os.WriteFile(notDisk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	// A qcow2 header and nothing else: qemu-img cannot read it.
	broken := filepath.Join(dir, "broken.qcow2")
	if err := os.WriteFile(broken, []byte("QFI\xfb\x00\x00\x00\x03"), 0o644); err != nil {
		t.Fatal(err)
	}
	type runCase struct {
		flag, disk string
		format     format.Format
		want       string // or the error's text, with wantErr
		wantErr    bool
	}
	tests := []runCase{
		{"", x86, format.Raw, "x86_64", false},
		{"", arm, format.Raw, "aarch64", false},
		{"", notDisk, format.Raw, "x86_64", false},
		{"x86_64", arm, format.Raw, "x86_64", false},
		{"aarch64", x86, format.Raw, "aarch64", false},
		{"arm64", arm, format.Raw, `--arch "arm64": want x86_64 or aarch64`, true},
		{"", broken, format.QCOW2, "qemu-img info " + broken, true},
	}
	for _, f := range []format.Format{format.QCOW2, format.VMDK, format.VHDX} {
		armF := convert(arm, f)
		tests = append(tests,
			runCase{"", convert(x86, f), f, "x86_64", false},
			runCase{"", armF, f, "aarch64", false},
			runCase{"", convert(notDisk, f), f, "x86_64", false},
			runCase{"x86_64", armF, f, "x86_64", false},
		)
	}
	check := func(c runCase) {
		t.Helper()
		got, err := runArch(t.Context(), c.flag, c.disk, c.format)
		if c.wantErr {
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("runArch(%q, %s) error %v, want %q", c.flag, filepath.Base(c.disk), err, c.want)
			}
			return
		}
		if err != nil || got != c.want {
			t.Errorf("runArch(%q, %s) = %q, %v; want %q", c.flag, filepath.Base(c.disk), got, err, c.want)
		}
	}
	for _, c := range tests {
		check(c)
	}

	// A qcow2 image over a backing file is not keel's: keel run refuses
	// it rather than let QEMU open the file it names.
	armQ := strings.TrimSuffix(arm, ".img") + ".qcow2"
	st, err := os.Stat(arm)
	if err != nil {
		t.Fatal(err)
	}
	if size, err := imageInfo(t.Context(), armQ, format.QCOW2); err != nil || size != st.Size() {
		t.Errorf("imageInfo(%s) = %d, %v; want %d", filepath.Base(armQ), size, err, st.Size())
	}
	overlay := filepath.Join(dir, "overlay.qcow2")
	if b, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", arm, "-F", "raw", overlay).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v\n%s", err, b)
	}
	wantBacking := "overlay.qcow2 is a qcow2 image over the backing file " + arm + ": keel run boots self-contained images only"
	if _, err := imageInfo(t.Context(), overlay, format.QCOW2); err == nil || !strings.Contains(err.Error(), wantBacking) {
		t.Errorf("imageInfo(overlay.qcow2) error %v, want %q", err, wantBacking)
	}

	// Without qemu-img, keel run cannot read a qcow2 image: it says what
	// to install. Raw images need no qemu-img.
	t.Setenv("PATH", t.TempDir())
	const wantInstall = "is a qcow2 image: keel run reads it with qemu-img first, which is not installed (apt-get install qemu-utils)"
	check(runCase{"", armQ, format.QCOW2, wantInstall, true})
	if _, err := imageInfo(t.Context(), armQ, format.QCOW2); err == nil || !strings.Contains(err.Error(), wantInstall) {
		t.Errorf("imageInfo without qemu-img: %v, want %q", err, wantInstall)
	}
	check(runCase{"", arm, format.Raw, "aarch64", false})
}
