package qemutests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"keel/image/gpt"
)

// TestGrowDisk puts a 400 MiB image on a 4 GiB disk (issue 12, "How it is
// checked", 3). A first boot on a disk of the image's own size writes a
// file to /var and grows nothing; then the disk becomes 4 GiB, and the
// next two boots are killed in the grow; the boot after them must come up
// with the filesystem grown and the file intact. On the host
// then: sgdisk -v finds no problem, the data partition ends at the disk's
// end (its last 4 KiB boundary before the backup GPT), and e2fsck -fn finds
// the filesystem clean and as large as the partition.
func TestGrowDisk(t *testing.T) {
	t.Parallel()
	h := setUp(t, "sgdisk", "e2fsck", "dumpe2fs")
	f := buildVersionsOf(t, h, "ab.yaml", []builtVersion{{version: "1.0.0", extra: "disk: {esp: 64MiB, slot: 64MiB, data: 206MiB, squashfs: {compression: xz}}\n"}})
	dev := copyDisk(t, f.disk["1.0.0"], filepath.Join(f.dir, "device.img"))
	fi, err := os.Stat(dev)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 400<<20 {
		t.Fatalf("the image is %d bytes, want 400 MiB", fi.Size())
	}
	vars := filepath.Join(f.dir, "device.vars")

	g := f.boot(t, dev, vars, "boot 1 (400 MiB disk)")
	g.expect("keel-ab: console ready")
	if strings.Contains(g.vm.Log(), "grow") {
		g.fatalf("keel-init grew something on a disk of the image's size")
	}
	sum := g.mustSh("head -c 4194304 /dev/urandom >/var/before-grow && sync && sha256sum /var/before-grow")
	g.poweroff()

	const diskSize = 4 << 30
	if err := os.Truncate(dev, diskSize); err != nil {
		t.Fatal(err)
	}
	// Two boots are killed: one as soon as keel-init says it grows the
	// ext4, one just after it says the grow is done (in memory: the
	// journal commits it within seconds). Each leaves the filesystem at a
	// size dumpe2fs reports; the boot after must come up and end grown.
	hash := regexp.MustCompile(`[0-9a-f]{64}`)
	for i, kill := range []string{"data: growing ext4 on vda4 from", "data: ext4 on vda4 grown to"} {
		name := fmt.Sprintf("boot %d (4 GiB disk, killed at %q)", i+2, kill)
		g = f.boot(t, dev, vars, name)
		if i == 0 {
			g.expect("data: partition vda4 grown from 206.0 MiB to")
		}
		g.expect(kill)
		g.vm.Kill()
		g.vm.Wait()
		p := dataPartition(t, dev)
		t.Logf("%s: on disk, the ext4 is %d of the partition's %d bytes", name, fsBlocks(t, dev, p), p.Size())
	}

	g = f.boot(t, dev, vars, "boot 4 (4 GiB disk)")
	g.expect("keel-ab: console ready")
	if m := regexp.MustCompile(`data: ext4 on vda4 grown to .* in (.*)`).FindStringSubmatch(g.vm.Log()); m != nil {
		t.Logf("boot 4 grew the ext4 in %s", m[1])
	}
	if got := hash.FindString(g.mustSh("sha256sum /var/before-grow")); got == "" || got != hash.FindString(sum) {
		t.Errorf("the file written before the grow has sha256 %q, had %q", got, hash.FindString(sum))
	}
	df := g.mustSh("df -k /var | tail -1")
	t.Logf("df /var: %s", df)
	var total int64
	fmt.Sscanf(strings.Fields(df + " x x")[1], "%d", &total)
	if total < 3500<<10 {
		t.Errorf("/var has %d KiB, want about 3.6 GiB", total)
	}
	g.poweroff()

	// The host's tools.
	p := dataPartition(t, dev)
	if out, err := exec.Command("sgdisk", "-v", dev).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
	if want := (uint64(diskSize/512)-34)/8*8 - 1; p.LastLBA != want {
		t.Errorf("the data partition ends at LBA %d, want %d (the disk's last LBA is %d)", p.LastLBA, want, diskSize/512-1)
	}
	spec := fmt.Sprintf("%s?offset=%d", dev, p.Offset())
	if out, err := exec.Command("e2fsck", "-fn", spec).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn: %v\n%s", err, out)
	}
	if got := fsBlocks(t, dev, p); got < p.Size()-4<<20 {
		t.Errorf("the ext4 is %d bytes in a partition of %d", got, p.Size())
	}
}

// dataPartition reads the data partition from the disk's GPT.
func dataPartition(t *testing.T, dev string) gpt.Partition {
	t.Helper()
	tb, err := gpt.ReadFile(dev)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := tb.Find("data")
	if !ok {
		t.Fatalf("%s: no data partition", dev)
	}
	return p
}

// fsBlocks is the size dumpe2fs gives the ext4 in p, in bytes.
func fsBlocks(t *testing.T, dev string, p gpt.Partition) int64 {
	t.Helper()
	out, err := exec.Command("dumpe2fs", "-h", fmt.Sprintf("%s?offset=%d", dev, p.Offset())).CombinedOutput()
	if err != nil {
		t.Fatalf("dumpe2fs: %v\n%s", err, out)
	}
	var blocks, bs int64
	if m := regexp.MustCompile(`(?m)^Block count:\s+(\d+)`).FindSubmatch(out); m != nil {
		fmt.Sscan(string(m[1]), &blocks)
	}
	if m := regexp.MustCompile(`(?m)^Block size:\s+(\d+)`).FindSubmatch(out); m != nil {
		fmt.Sscan(string(m[1]), &bs)
	}
	if blocks == 0 || bs == 0 {
		t.Fatalf("dumpe2fs -h: no block count or size:\n%s", out)
	}
	return blocks * bs
}
