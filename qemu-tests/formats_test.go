package qemutests

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFormats is issue #12's first check on a real image: keel build
// --format qcow2, vmdk and vhdx of the boot test's profile each pass
// qemu-img check, convert back by qemu-img to the bytes of keel build
// --format raw, and boot with keel run (which hands QEMU the format) to
// keel-init's ready line and the service that writes to the data
// partition; after which QEMU's writes into the image leave it clean by
// qemu-img check.
func TestFormats(t *testing.T) {
	h := setUp(t, "qemu-img")
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.img")
	start := time.Now()
	h.runKeel(t, "build", "testdata/boot.yaml", "-o", raw)
	t.Logf("keel build --format raw: %.1fs", time.Since(start).Seconds())
	rawSum := sha256File(t, raw)

	formats := []string{"qcow2", "vmdk", "vhdx"}
	images := map[string]string{}
	for _, f := range formats {
		img := filepath.Join(dir, "disk."+f)
		start := time.Now()
		out := h.runKeel(t, "build", "testdata/boot.yaml", "--format", f, "-o", img)
		t.Logf("keel build --format %s: %.1fs", f, time.Since(start).Seconds())
		if !strings.Contains(out, "written as "+f) {
			t.Errorf("keel build --format %s does not say so:\n%s", f, out)
		}
		qemuImg(t, "check", "-f", f, img)
		back := filepath.Join(dir, "back-"+f+".img")
		qemuImg(t, "convert", "-f", f, "-O", "raw", img, back)
		if sum := sha256File(t, back); sum != rawSum {
			t.Errorf("disk.%s converted back to raw is %s, keel's raw disk %s", f, sum, rawSum)
		}
		images[f] = img
	}

	// Two boots at a time: TCG takes a core each.
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for _, f := range formats {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			bootFormat(t, h, f, images[f])
		}()
	}
	wg.Wait()
}

// bootFormat boots img, of format f, with keel run until the guest
// powers itself off, and checks what the console says on the way.
func bootFormat(t *testing.T, h *harness, f, img string) {
	var out bytes.Buffer
	cmd := h.keelCmd("run", "--timeout", "4m", img)
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	log := out.String()
	if err != nil {
		t.Errorf("keel run disk.%s: %v\n%s", f, err, tail(log, 40))
		return
	}
	for _, want := range []string{
		"keel: booting " + img,
		"keel: ready keel-test 1.0.0 slot=a",
		"keel-test: boot 1, read from /var/lib/keel-test/boots on /dev/vda4 ext4",
		"keel-init: powering off",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("keel run disk.%s: the console lacks %q:\n%s", f, want, tail(log, 40))
			return
		}
	}
	t.Logf("disk.%s booted and powered off in %.1fs", f, time.Since(start).Seconds())
	if b, err := exec.Command("qemu-img", "check", "-f", f, img).CombinedOutput(); err != nil {
		t.Errorf("qemu-img check -f %s after the boot: %v\n%s", f, err, b)
	}
}

func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	if b, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, b)
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
