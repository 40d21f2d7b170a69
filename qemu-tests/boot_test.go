// Package qemutests boots real keel images in QEMU (OVMF + systemd-boot,
// TCG unless KVM is proven to work) and reads the serial console.
package qemutests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"keel/image/build"
	"keel/image/inspect"
	"keel/image/qemu"
	"keel/profiles"
	"keel/rootfs"
	"keel/rootfs/assemble"
)

func TestBuildAndBoot(t *testing.T) {
	// One VM at a time: two such tests share the two cores (go test
	// -parallel defaults to GOMAXPROCS), TCG taking one each.
	t.Parallel()
	h := setUp(t, "unsquashfs", "fsck.fat", "sgdisk", "e2fsck", "cpio", "xz", "mcopy")
	ctx, keel, initPath, initBin, cache := h.ctx, h.keel, h.initPath, h.initBin, h.cache

	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img")
	var sums []string
	for i := range 2 {
		out, err := keelCmd(keel, initPath, cache, "build", "testdata/boot.yaml", "-o", disk).CombinedOutput()
		if err != nil {
			t.Fatalf("keel build: %v\n%s", err, out)
		}
		if i == 0 {
			t.Logf("keel build:\n%s", out)
		}
		sums = append(sums, sha256File(t, disk))
	}
	if sums[0] != sums[1] {
		t.Errorf("two builds differ: %s vs %s", sums[0], sums[1])
	}

	rep, err := inspect.File(disk)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("tools", func(t *testing.T) { checkWithTools(t, disk, rep) })
	t.Run("squashfs matches tree", func(t *testing.T) { checkRootListing(t, disk, rep, initBin, keelctlPath(keel), cache) })

	// Three boots: each must read what the one before wrote to /var. The
	// third is of a disk whose primary GPT header is damaged: the firmware
	// boots from the backup GPT (and rewrites the primary from it).
	for boot := 1; boot <= 3; boot++ {
		if boot == 3 {
			damagePrimaryGPT(t, disk)
			r, err := inspect.File(disk)
			if err != nil {
				t.Fatalf("keel inspect of a disk with a damaged primary GPT: %v", err)
			}
			if !strings.Contains(r.GPTWarning, "primary GPT damaged, read from the backup") {
				t.Errorf("keel inspect of a disk with a damaged primary GPT does not say so: %q", r.GPTWarning)
			}
		}
		var console bytes.Buffer
		vm, err := qemu.Start(ctx, qemu.Config{Disk: disk, Timeout: 4 * time.Minute, Console: &console})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := vm.Expect(ctx, "keel: ready keel-test 1.0.0 slot=a", 3*time.Minute); err != nil {
			vm.Kill()
			t.Fatalf("boot %d: %v", boot, err)
		}
		if err := vm.Wait(); err != nil {
			t.Fatalf("boot %d: the guest did not power itself off: %v\n%s", boot, err, vm.Tail(30))
		}
		// The service's line and the ready line race, so look for the rest
		// in the whole console once the guest is off.
		log := console.String()
		for _, want := range []string{
			"keel-init: data: vda4",
			fmt.Sprintf("keel-test: boot %d, read from /var/lib/keel-test/boots on /dev/vda4 ext4", boot),
			"keel-init: powering off",
		} {
			if !strings.Contains(log, want) {
				t.Fatalf("boot %d: console lacks %q:\n%s", boot, want, vm.Tail(40))
			}
		}
		t.Logf("boot %d (%s): powered off cleanly", boot, vm.Accel())
	}

	out, err := keelCmd(keel, initPath, cache, "inspect", "--json", disk).Output()
	if err != nil {
		t.Fatal(err)
	}
	var r inspect.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Entries) != 1 || r.Entries[0].Slot != "a" || r.Entries[0].State != "good" || r.Entries[0].Generation != 1 {
		t.Errorf("keel inspect entries: %+v", r.Entries)
	}
	// OVMF rewrites a damaged primary GPT from the backup (EDK2's
	// PartitionDxe does), so the third boot left an intact disk.
	if r.GPTWarning != "" {
		t.Errorf("after booting, the GPT is still damaged: %s", r.GPTWarning)
	}
}

// damagePrimaryGPT flips a bit of the disk GUID in the primary GPT header,
// which its CRC32 then does not match.
func damagePrimaryGPT(t *testing.T, disk string) {
	t.Helper()
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, 512+56); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, 512+56); err != nil {
		t.Fatal(err)
	}
}

// extract copies a partition out of the disk into its own file.
func extract(t *testing.T, disk string, p inspect.Partition, limit int64) string {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := filepath.Join(t.TempDir(), p.Label+".img")
	o, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	n := p.Size
	if limit > 0 {
		n = limit
	}
	if _, err := io.Copy(o, io.NewSectionReader(f, p.Start, n)); err != nil {
		t.Fatal(err)
	}
	return out
}

func partition(t *testing.T, r *inspect.Report, label string) inspect.Partition {
	for _, p := range r.Partitions {
		if p.Label == label {
			return p
		}
	}
	t.Fatalf("no partition %s", label)
	return inspect.Partition{}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func checkWithTools(t *testing.T, disk string, r *inspect.Report) {
	if out := run(t, "sgdisk", "-v", disk); !strings.Contains(out, "No problems found") {
		t.Errorf("sgdisk -v:\n%s", out)
	}
	esp := extract(t, disk, partition(t, r, "esp"), 0)
	out := run(t, "fsck.fat", "-n", esp)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 {
		t.Errorf("fsck.fat -n is not clean:\n%s", out)
	}
	data := extract(t, disk, partition(t, r, "data"), 0)
	run(t, "e2fsck", "-fn", data)

	entries := run(t, "mcopy", "-i", esp, "-n", "::/loader/entries/keel-a.conf", "-")
	for _, want := range []string{"title keel-test 1.0.0 (slot a)", "version 1", "linux /keel/a/vmlinuz", "initrd /keel/a/initrd",
		"options root=PARTUUID=" + partition(t, r, "root-a").GUID + " keel.slot=a init=" + assemble.InitPath} {
		if !strings.Contains(entries, want) {
			t.Errorf("entry lacks %q:\n%s", want, entries)
		}
	}
	for _, f := range []string{"::/EFI/BOOT/BOOTX64.EFI", "::/loader/loader.conf", "::/keel/a/vmlinuz"} {
		run(t, "mcopy", "-i", esp, "-n", f, filepath.Join(t.TempDir(), "x"))
	}
	initrd := filepath.Join(t.TempDir(), "initrd")
	run(t, "mcopy", "-i", esp, "-n", "::/keel/a/initrd", initrd)
	xz := exec.Command("xz", "-dc", initrd)
	cpio := exec.Command("cpio", "-itv")
	pipe, _ := xz.StdoutPipe()
	cpio.Stdin = pipe
	var listing bytes.Buffer
	cpio.Stdout = &listing
	cpio.Stderr = &listing
	if err := cpio.Start(); err != nil {
		t.Fatal(err)
	}
	if err := xz.Run(); err != nil {
		t.Fatalf("xz -dc initrd: %v", err)
	}
	if err := cpio.Wait(); err != nil {
		t.Fatalf("cpio -itv: %v\n%s", err, listing.String())
	}
	for _, want := range []string{" init\n", "etc/keel/modules\n", "virtio_blk.ko\n", "ext4.ko\n", "squashfs.ko\n"} {
		if !strings.Contains(listing.String(), want) {
			t.Errorf("initrd lacks %q:\n%s", want, listing.String())
		}
	}
}

// checkRootListing compares `unsquashfs -lln` of slot A with the tree the
// profile assembles to (packages included, from the cache the build
// filled).
func checkRootListing(t *testing.T, disk string, r *inspect.Report, initBin []byte, keelctl, cache string) {
	ctl, err := os.ReadFile(keelctl)
	if err != nil {
		t.Fatal(err)
	}
	p, err := profiles.Load("testdata/boot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tree, err := build.Tree(context.Background(), p, build.Options{
		KeelInit: initBin, Keelctl: ctl, Epoch: 1700000000,
		Debian: build.Debian{CacheDir: filepath.Join(cache, "deb"), IndexMaxAge: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	var slot inspect.Slot
	for _, s := range r.Slots {
		if s.Name == "a" {
			slot = s
		}
	}
	img := extract(t, disk, partition(t, r, "root-a"), (slot.Bytes+4095)/4096*4096)
	out := run(t, "unsquashfs", "-lln", "-d", "", img)
	got := map[string]string{}
	line := regexp.MustCompile(`^(\S+) (\d+)/(\d+) +(\d+|\d+, *\d+) \S+ \S+ (.*)$`)
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		name, _, _ := strings.Cut(m[5], " -> ")
		if name == "" {
			name = "/"
		}
		got[name] = fmt.Sprintf("%s %s/%s %s", m[1], m[2], m[3], sizeField(m[1], m[4]))
	}
	want := map[string]string{}
	_ = tree.Walk(func(path string, e *rootfs.Entry) error {
		want[path] = fmt.Sprintf("%s %d/%d %s", modeString(e), e.UID, e.GID, sizeField(modeString(e), fmt.Sprint(e.Size)))
		return nil
	})
	for path, w := range want {
		if got[path] != w {
			t.Errorf("%s: unsquashfs says %q, tree says %q", path, got[path], w)
		}
	}
	for path := range got {
		if _, ok := want[path]; !ok {
			t.Errorf("%s: in the image, not in the tree", path)
		}
	}
	if len(want) < 100 {
		t.Errorf("only %d entries in the tree: is busybox missing?", len(want))
	}
}

// sizeField keeps the size only for regular files: unsquashfs prints
// directory listing sizes and symlink target lengths that the tree does not
// model.
func sizeField(mode, size string) string {
	if strings.HasPrefix(mode, "-") {
		return size
	}
	return ""
}

func modeString(e *rootfs.Entry) string {
	types := map[rootfs.Type]byte{rootfs.TypeDir: 'd', rootfs.TypeFile: '-', rootfs.TypeSymlink: 'l',
		rootfs.TypeCharDev: 'c', rootfs.TypeBlockDev: 'b', rootfs.TypeFifo: 'p', rootfs.TypeSocket: 's'}
	b := []byte{types[e.Type]}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if e.Mode&(1<<(8-i)) != 0 {
			b = append(b, rwx[i])
		} else {
			b = append(b, '-')
		}
	}
	special := []struct {
		bit  uint32
		pos  int
		x, n byte
	}{{0o4000, 3, 's', 'S'}, {0o2000, 6, 's', 'S'}, {0o1000, 9, 't', 'T'}}
	for _, s := range special {
		if e.Mode&s.bit != 0 {
			if b[s.pos] == 'x' {
				b[s.pos] = s.x
			} else {
				b[s.pos] = s.n
			}
		}
	}
	return string(b)
}
