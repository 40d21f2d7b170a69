package install_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"os/exec"
	"strings"
	"testing"

	"keel/image/bundle"
	"keel/image/install"
)

// TestInstallBlockDevice: OpenFile takes a block device holding a keel disk
// (keel update /dev/sdX, keelctl --disk /dev/loopN), sized by seeking to
// its end, and an install through it lands on the disk behind it.
func TestInstallBlockDevice(t *testing.T) {
	// Failures, not skips: CI runs as root with util-linux's losetup.
	if os.Geteuid() != 0 {
		t.Fatal("needs root for a loop device (CI runs as root)")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Fatal("losetup not installed (apt-get install mount)")
	}
	f := getFixture(t)
	name := f.copyDisk(t)
	out, err := exec.Command("losetup", "-f", "--show", name).CombinedOutput()
	if err != nil {
		t.Fatalf("no loop device: %v %s", err, out)
	}
	loop := strings.TrimSpace(string(out))
	detached := false
	detach := func() {
		if !detached {
			detached = true
			if out, err := exec.Command("losetup", "-d", loop).CombinedOutput(); err != nil {
				t.Errorf("losetup -d %s: %v %s", loop, err, out)
			}
		}
	}
	t.Cleanup(detach)

	fromFile := open(t, name)
	d, err := install.OpenFile(loop, epoch)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, label := range []string{"root-a", "root-b"} {
		p, _ := fromFile.Layout.Find(label)
		q, ok := d.Layout.Find(label)
		if !ok || p != q {
			t.Errorf("%s on %s: %+v, in the file %+v", label, loop, q, p)
		}
	}
	if d.Booted != "a" || d.Running != fromFile.Running {
		t.Fatalf("%s: booted %s running %+v; the file says %s %+v", loop, d.Booted, d.Running, fromFile.Booted, fromFile.Running)
	}
	fromFile.Close()

	b, err := bundle.Open(bytes.NewReader(f.bundleBytes(t, f.key, nil)), []ed25519.PublicKey{f.pub})
	if err != nil {
		t.Fatal(err)
	}
	res, err := install.Install(context.Background(), d.Target, b, install.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	detach()
	after := open(t, name)
	es, err := after.Loader.Entries(after.ESP)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) == 0 || es[0].File != res.Entry || es[0].Slot != "b" {
		t.Errorf("entries in the file after installing through %s: %+v, want %s first", loop, es, res.Entry)
	}
	slot, _ := after.Layout.Slot("b")
	got := make([]byte, len(f.arts[0]))
	if _, err := after.File.ReadAt(got, slot.Start); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, f.arts[0]) {
		t.Errorf("slot b in the file does not hold the bundle's rootfs")
	}
}
