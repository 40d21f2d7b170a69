package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"keel/image/format"
	"keel/image/gpt"
)

// TestBuildFormats builds a 1GiB disk as qcow2 (and vmdk and vhdx) and
// has qemu-img read them: the format and virtual size it reports, a
// clean check, each converted back to raw is byte for byte the disk keel
// build --format raw writes, and that has a sound GPT with its backup at
// the end of the 1GiB and free space after the data partition. Nothing
// but the image is left beside it.
func TestBuildFormats(t *testing.T) {
	for _, tool := range []string{"qemu-img", "sgdisk"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (.ci/run installs it: qemu-utils, gdisk)", tool)
		}
	}
	dir, write := buildDir(t)
	keel := func(args ...string) (int, string) {
		t.Helper()
		var out bytes.Buffer
		code := run(context.Background(), args, &out, &out)
		return code, out.String()
	}
	p := write("f.yaml", []byte("name: f\nversion: 1.0.0\nkernel: {file: vmlinuz, cmdline: console=ttyS0}\n"+
		"disk: {esp: 34MiB, slot: 8MiB, data: 16MiB}\n"))
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	// Without -o, the name follows the format: run from out/.
	t.Chdir(out)
	const gib = 1 << 30
	for _, f := range []string{"qcow2", "vmdk", "vhdx"} {
		if code, msg := keel("build", p, "--format", f, "--size", "1GiB"); code != 0 {
			t.Fatalf("keel build --format %s → %d\n%s", f, code, msg)
		} else if !strings.Contains(msg, "written as "+f) {
			t.Errorf("build summary does not name the format:\n%s", msg)
		}
		img := filepath.Join(out, "f."+f)
		if b, err := exec.Command("qemu-img", "check", "-f", f, img).CombinedOutput(); err != nil {
			t.Errorf("qemu-img check -f %s: %v\n%s", f, err, b)
		}
		b, err := exec.Command("qemu-img", "info", "--output", "json", img).Output()
		if err != nil {
			t.Fatalf("qemu-img info: %v", err)
		}
		var info struct {
			Format      string `json:"format"`
			VirtualSize int64  `json:"virtual-size"`
		}
		if err := json.Unmarshal(b, &info); err != nil {
			t.Fatal(err)
		}
		if info.Format != f || info.VirtualSize != gib {
			t.Errorf("qemu-img info: %s of %d bytes, want %s of 1GiB", info.Format, info.VirtualSize, f)
		}
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "f.qcow2 f.vhdx f.vmdk" {
		t.Errorf("output directory holds %s, want the three images only", got)
	}

	// The same build, raw: what every format must convert back to.
	raw := filepath.Join(dir, "f.img")
	if code, msg := keel("build", p, "--format", "raw", "--size", "1GiB", "-o", raw); code != 0 {
		t.Fatalf("keel build --format raw → %d\n%s", code, msg)
	}
	for _, f := range []string{"qcow2", "vmdk", "vhdx"} {
		back := filepath.Join(dir, "back-"+f+".img")
		if b, err := exec.Command("qemu-img", "convert", "-f", f, "-O", "raw", filepath.Join(out, "f."+f), back).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img convert -f %s: %v\n%s", f, err, b)
		}
		if err := sameFile(raw, back); err != nil {
			t.Errorf("f.%s converted back to raw differs from keel build --format raw: %v", f, err)
		}
		os.Remove(back)
	}
	if b, err := exec.Command("sgdisk", "-v", raw).CombinedOutput(); err != nil || !strings.Contains(string(b), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, b)
	}
	tab, err := gpt.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	if tab.FromBackup || tab.BackupErr != nil {
		t.Errorf("backup GPT: from backup %v, %v", tab.FromBackup, tab.BackupErr)
	}
	var end int64
	for _, part := range tab.Partitions {
		end = max(end, part.Offset()+part.Size())
	}
	// The partitions end well before the backup GPT's 33 sectors at the
	// end of the 1GiB: the space between is free.
	if end > 128<<20 || end > gib-33*512 {
		t.Errorf("the last partition ends at %d, want the free space of a 1GiB disk after it", end)
	}
	fd, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	hdr := make([]byte, 8)
	if _, err := fd.ReadAt(hdr, gib-512); err != nil || string(hdr) != "EFI PART" {
		t.Errorf("last sector of the disk is not the backup GPT header: %q, %v", hdr, err)
	}

	// keel inspect says it takes raw images (keel update:
	// image/install's TestOpenFileFormats). keel run boots them all:
	// qemu-tests' TestFormats.
	if code, msg := keel("inspect", filepath.Join(out, "f.qcow2")); code == 0 || !strings.Contains(msg, "a qcow2 image, and keel inspect reads raw images only") {
		t.Errorf("keel inspect f.qcow2 → %d\n%s", code, msg)
	}
}

// sameFile says where the files a and b first differ, if they do.
func sameFile(a, b string) error {
	fa, err := os.Open(a)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return err
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); ; off += int64(len(ba)) {
		na, erra := io.ReadFull(fa, ba)
		nb, errb := io.ReadFull(fb, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			i := 0
			for i < min(na, nb) && ba[i] == bb[i] {
				i++
			}
			return fmt.Errorf("they differ at byte %d", off+int64(i))
		}
		if erra != nil || errb != nil {
			if (erra == io.EOF || erra == io.ErrUnexpectedEOF) && (errb == io.EOF || errb == io.ErrUnexpectedEOF) {
				return nil
			}
			return errors.Join(erra, errb)
		}
	}
}

// TestBuildFormatUsage: bad --format and --size values are usage errors
// (exit 2) naming the flag, before anything is built or left behind.
func TestBuildFormatUsage(t *testing.T) {
	dir, write := buildDir(t)
	p := write("f.yaml", []byte("name: f\nversion: 1.0.0\nkernel: {file: vmlinuz, cmdline: console=ttyS0}\n"+
		"disk: {esp: 34MiB, slot: 8MiB, data: 16MiB}\n"))
	img := filepath.Join(dir, "f.img")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown format", []string{"--format", "vhd"}, `--format: unknown image format "vhd" (want raw, qcow2, vmdk, vhdx)`},
		{"size too small", []string{"--size", "64MiB"}, "--size 64MiB: 64MiB is too small"},
		{"size not sectors", []string{"--size", "1073741000"}, "--size 1073741000: 1073741000B is not a whole number of 512-byte sectors"},
		{"not a size", []string{"--size", "big"}, `--size big: "big" is not a size`},
		{"zero size", []string{"--size", "0"}, `--size 0: "0": a size must be greater than zero`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			args := append([]string{"build", p, "-o", img}, c.args...)
			if code := run(context.Background(), args, &out, &out); code != 2 || !strings.Contains(out.String(), c.want) {
				t.Errorf("keel %s → %d, want 2 and %q\n%s", strings.Join(args, " "), code, c.want, out.String())
			}
			if _, err := os.Stat(img); !os.IsNotExist(err) {
				t.Errorf("%s written: %v", img, err)
			}
		})
	}
}

// TestConvertImageFailure: a conversion that fails (here: cancelled)
// leaves what was at the output before, and no temporary file.
func TestConvertImageFailure(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "a.img")
	if err := os.WriteFile(raw, bytes.Repeat([]byte{1}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "a.qcow2")
	if err := os.WriteFile(out, []byte("the previous image"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := convertImage(ctx, raw, out, format.QCOW2, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("convertImage with a cancelled context: %v", err)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "the previous image" {
		t.Errorf("output after a failed conversion: %q, %v", b, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("%d files in the directory, want the raw image and the previous output", len(entries))
	}
	// And one that succeeds replaces it.
	if err := convertImage(t.Context(), raw, out, format.QCOW2, nil); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if ft, err := format.Detect(f); err != nil || ft != format.QCOW2 {
		t.Errorf("output is %v (%v), want qcow2", ft, err)
	}
}
