package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keel/image/format"
)

// needLoop fails a test that needs root and loop devices where it cannot
// have them (CI runs as root), unless KEEL_TEST_NO_LOOP=1 says this
// machine has none, and fails without the tools it runs.
func needLoop(t *testing.T, tools ...string) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root for loop devices"
	} else if _, err := os.Stat("/dev/loop-control"); err != nil {
		why = "needs loop devices: no /dev/loop-control"
	}
	if why != "" {
		if os.Getenv("KEEL_TEST_NO_LOOP") == "1" {
			t.Skip(why + " (KEEL_TEST_NO_LOOP=1)")
		}
		t.Fatal(why + "; set KEEL_TEST_NO_LOOP=1 to skip")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (.ci/run installs it)", tool)
		}
	}
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// attach puts a loop device over file, detached (and its partitions
// dropped) when the test ends.
func attach(t *testing.T, file string, args ...string) string {
	t.Helper()
	loop := sh(t, "losetup", append(append([]string{"-f", "--show"}, args...), file)...)
	t.Cleanup(func() {
		exec.Command("partx", "-d", loop).Run()
		exec.Command("losetup", "-d", loop).Run()
	})
	return loop
}

// flashImage makes a 48 MiB raw GPT disk: random data in partition 1 and
// an ext4 file system in partition 2 (at 10 MiB), the rest holes.
func flashImage(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	p := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 48<<20); err != nil {
		t.Fatal(err)
	}
	sh(t, "sgdisk", "-n1:1MiB:+8MiB", "-n2:10MiB:+30MiB", p)
	sh(t, "mkfs.ext4", "-q", "-F", "-E", fmt.Sprintf("offset=%d", 10<<20), p, "30M")
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3<<20)
	rand.Read(data)
	if _, err := f.WriteAt(data, 2<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, b
}

// fillDevice writes 0xFF over all of a device.
func fillDevice(t *testing.T, dev string, size int64) {
	t.Helper()
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xff}, int(size)), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func readDevice(t *testing.T, dev string, size int64) []byte {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// noTerminal runs f with stdin not a terminal, whatever go test's is.
func noTerminal(t *testing.T, f func()) {
	t.Helper()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	old := os.Stdin
	os.Stdin = null
	defer func() { os.Stdin = old }()
	f()
}

// TestFlashLoop flashes a raw image and its qcow2 (keel's, and
// qemu-img's compressed one) onto a loop device over a file of 0xFF bytes
// larger than the image, and reads the device back: the image's bytes,
// zeros included. A flash without --yes and without a terminal is
// refused with nothing written.
func TestFlashLoop(t *testing.T) {
	needLoop(t, "losetup", "sgdisk", "mkfs.ext4", "qemu-img")
	dir := t.TempDir()
	raw, want := flashImage(t, dir)
	size := int64(len(want))
	qcow := filepath.Join(dir, "disk.qcow2")
	{
		in, _ := os.Open(raw)
		out, err := os.Create(qcow)
		if err != nil {
			t.Fatal(err)
		}
		if err := format.Write(context.Background(), out, in, size, format.QCOW2); err != nil {
			t.Fatal(err)
		}
		in.Close()
		out.Close()
	}
	qcowC := filepath.Join(dir, "disk-c.qcow2")
	sh(t, "qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", raw, qcowC)
	backing := filepath.Join(dir, "device")
	const devSize = 64 << 20
	if err := os.WriteFile(backing, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(backing, devSize); err != nil {
		t.Fatal(err)
	}
	loop := attach(t, backing)
	for _, img := range []string{raw, qcow, qcowC} {
		t.Run(filepath.Base(img), func(t *testing.T) {
			fillDevice(t, loop, devSize)
			var out bytes.Buffer
			code := run(context.Background(), []string{"flash", "--yes", img, loop}, &out, &out)
			if code != exitOK {
				t.Fatalf("keel flash --yes %s %s → %d\n%s", img, loop, code, out.String())
			}
			if !strings.Contains(out.String(), "flashed "+img) || !strings.Contains(out.String(), "verified in") {
				t.Errorf("summary: %s", out.String())
			}
			got := readDevice(t, loop, devSize)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("device differs from the image at %d: %#x, want %#x", i, got[i], want[i])
				}
			}
			if !bytes.Equal(got[devSize-1<<20:], make([]byte, 1<<20)) {
				t.Errorf("the device's last MiB (an old backup GPT's place) is not zeroed")
			}
			if b, err := exec.Command("sgdisk", "-p", loop).CombinedOutput(); err != nil || !strings.Contains(string(b), "30.0 MiB") {
				t.Errorf("sgdisk -p %s: %v\n%s", loop, err, b)
			}
		})
	}

	t.Run("not confirmed", func(t *testing.T) {
		fillDevice(t, loop, devSize)
		var out bytes.Buffer
		var code int
		noTerminal(t, func() { code = run(context.Background(), []string{"flash", raw, loop}, &out, &out) })
		if code != exitRefused || !strings.Contains(out.String(), "pass --yes") {
			t.Errorf("keel flash without --yes or a terminal → %d\n%s", code, out.String())
		}
		if got := readDevice(t, loop, devSize); !bytes.Equal(got, bytes.Repeat([]byte{0xff}, devSize)) {
			t.Error("an unconfirmed flash wrote to the device")
		}
	})

	// The image onto itself, or onto a loop device over it, would zero
	// its own first MiB before reading it.
	t.Run("onto itself", func(t *testing.T) {
		self := attach(t, raw)
		for _, target := range []string{raw, self} {
			var out bytes.Buffer
			code := run(context.Background(), []string{"flash", "--yes", raw, target}, &out, &out)
			if code != exitRefused || !strings.Contains(out.String(), "is the image itself") {
				t.Errorf("keel flash --yes %s %s → %d\n%s", raw, target, code, out.String())
			}
		}
		if got, err := os.ReadFile(raw); err != nil || !bytes.Equal(got, want) {
			t.Errorf("flashing the image onto itself changed it (%v)", err)
		}
	})
}

// TestFlashMounted: keel flash refuses, exit 3 with nothing written, a
// loop device whose partition is mounted (partitions added with partx,
// which works where the kernel has no GPT parser of its own), a loop
// device that shares its file with a mounted one, and the file itself.
func TestFlashMounted(t *testing.T) {
	needLoop(t, "losetup", "partx", "sgdisk", "mkfs.ext4", "mount", "umount")
	dir := t.TempDir()
	_, img := flashImage(t, dir)
	other := filepath.Join(dir, "other.img")
	junk := make([]byte, len(img))
	rand.Read(junk)
	if err := os.WriteFile(other, junk, 0o644); err != nil {
		t.Fatal(err)
	}
	// The device holds the image: its partition 2 is an ext4 to mount.
	backing := filepath.Join(dir, "device")
	if err := os.WriteFile(backing, img, 0o644); err != nil {
		t.Fatal(err)
	}
	mount := func(t *testing.T, dev string) {
		t.Helper()
		mnt := t.TempDir()
		sh(t, "mount", "-t", "ext4", dev, mnt)
		t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	}
	refused := func(t *testing.T, target, why string) {
		t.Helper()
		before, err := os.ReadFile(backing)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		code := run(context.Background(), []string{"flash", "--yes", other, target}, &out, &out)
		if code != exitRefused || !strings.Contains(out.String(), why) || !strings.Contains(out.String(), "nothing written") {
			t.Errorf("keel flash --yes onto %s → %d, want 3 saying %q\n%s", target, code, why, out.String())
		}
		if after, err := os.ReadFile(backing); err != nil || !bytes.Equal(before, after) {
			t.Errorf("a refused flash changed the device (%v)", err)
		}
	}

	t.Run("partition mounted", func(t *testing.T) {
		loop := attach(t, backing)
		sh(t, "partx", "-a", loop)
		part := loop + "p2"
		for i := 0; i < 50; i++ { // the device node appears asynchronously
			if _, err := os.Stat(part); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		mount(t, part)
		refused(t, loop, filepath.Base(part)+" is mounted at ")
	})
	t.Run("same file mounted at an offset", func(t *testing.T) {
		loop := attach(t, backing)
		fs := attach(t, backing, "-o", fmt.Sprint(10<<20), "--sizelimit", fmt.Sprint(30<<20))
		mount(t, fs)
		refused(t, loop, filepath.Base(fs)+" is mounted at ")
		refused(t, backing, filepath.Base(fs)+" is mounted at ")
	})
	t.Run("mounted whole", func(t *testing.T) {
		fs := attach(t, backing, "-o", fmt.Sprint(10<<20), "--sizelimit", fmt.Sprint(30<<20))
		mount(t, fs)
		refused(t, fs, filepath.Base(fs)+" is mounted at ")
	})
}
