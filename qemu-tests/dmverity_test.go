package qemutests

import (
	"bytes"
	"context"
	"crypto/sha256"
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

	"keel/image/qemu"
	"keel/rootfs"
	"keel/rootfs/deb/source"
	"keel/rootfs/initrd"
	"keel/rootfs/kmod"
	"keel/rootfs/squashfs"
)

// TestDmVerity checks package cmd/keel-init/dmverity against a real kernel:
// Debian's, as keel's images boot it, started directly (-kernel, -initrd)
// with an initrd of the guest program in cmd/keel-init/dmverity/testdata
// and the modules dm-verity needs. The host has no device-mapper, so this
// is where Create, Status and Remove meet the kernel.
//
// Two virtio disks hold the same squashfs followed by its hash tree, made
// by veritysetup (not by keel), the second with one data byte flipped. The
// guest:
//   - before devtmpfs is mounted (so package dmverity must make the control
//     node and /dev/dm-N itself), creates a device on the good disk, reads
//     every block, mounts the squashfs and reads a file;
//   - with devtmpfs, creates one on the damaged disk: only the damaged block
//     fails (EIO) and the status turns from "V" to "C";
//   - creates one with a wrong root hash length: the table load fails with
//     EINVAL and no device is left behind.
func TestDmVerity(t *testing.T) {
	t.Parallel()
	if err := qemu.Available(); err != nil {
		t.Skipf("QEMU: %v (apt-get install qemu-system-x86 ovmf)", err)
	}
	need(t, "veritysetup")
	ctx := context.Background()
	dir := t.TempDir()

	vmlinuz, modules := debianKernel(t, ctx, dir, "virtio_pci", "virtio_blk", "dm_verity", "squashfs")
	guest := filepath.Join(dir, "init")
	build := exec.Command("go", "build", "-o", guest, "./cmd/keel-init/dmverity/testdata/guest")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build guest: %v\n%s", err, out)
	}

	// The data: a squashfs with a small file and 256 KiB that does not
	// compress, so the image has some 70 blocks of 4 KiB.
	const hello = "hello through dm-verity\n"
	fsTree := rootfs.New()
	noise := make([]byte, 0, 256<<10)
	for s := sha256.Sum256([]byte("keel")); len(noise) < cap(noise); s = sha256.Sum256(s[:]) {
		noise = append(noise, s[:]...)
	}
	for name, content := range map[string][]byte{"/hello.txt": []byte(hello), "/noise": noise} {
		if err := fsTree.Add(name, rootfs.NewFile(0o644, content)); err != nil {
			t.Fatal(err)
		}
	}
	good := filepath.Join(dir, "good.img")
	if _, err := squashfs.WriteFile(ctx, good, fsTree, squashfs.Options{}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, make([]byte, (4096-len(data)%4096)%4096)...)
	if err := os.WriteFile(good, data, 0o644); err != nil {
		t.Fatal(err)
	}
	blocks := len(data) / 4096
	v := veritysetupFormat(t, good, blocks)
	dataSum := fmt.Sprintf("%x", sha256.Sum256(data))

	// The damaged copy: one byte of data block 5 flipped. veritysetup
	// must see it too, or the test would prove nothing.
	const badBlock = 5
	corrupt := filepath.Join(dir, "corrupt.img")
	img, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	img[badBlock*4096+100] ^= 0x01
	if err := os.WriteFile(corrupt, img, 0o644); err != nil {
		t.Fatal(err)
	}
	// What the guest reads of it: the damaged block fails and counts as
	// zeros, every other block is as written.
	readable := bytes.Clone(data)
	clear(readable[badBlock*4096 : (badBlock+1)*4096])
	readableSum := fmt.Sprintf("%x", sha256.Sum256(readable))
	if out, err := exec.Command("veritysetup", "verify", corrupt, corrupt, v.root, "--hash-offset", fmt.Sprint(len(data))).CombinedOutput(); err == nil {
		t.Fatalf("veritysetup verify accepts the damaged image:\n%s", out)
	}

	// The table veritysetup's output implies: version 1, the data and
	// the hash tree on one disk, the tree's root one block after the hash
	// offset (veritysetup writes its superblock there first).
	sectors := uint64(blocks * 4096 / 512)
	table := func(disk, root string) string {
		return fmt.Sprintf("1 /dev/%s /dev/%s 4096 4096 %d %d sha256 %s %s", disk, disk, blocks, blocks+1, root, v.salt)
	}
	cfg := map[string]any{
		"disks": []string{"vda", "vdb"},
		"cases": []map[string]any{
			{"name": "keel-good", "sectors": sectors, "table": table("vda", v.root), "mount": "hello.txt"},
			{"name": "keel-corrupt", "sectors": sectors, "table": table("vdb", v.root), "devtmpfs": true},
			{"name": "keel-badtable", "sectors": sectors, "table": table("vda", v.root[:62]), "devtmpfs": true},
		},
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}

	rd := rootfs.New()
	initBin, err := os.ReadFile(guest)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct {
		path string
		e    *rootfs.Entry
	}{
		{"/init", rootfs.NewFile(0o755, initBin)},
		{"/dev", &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755}},
		// The kernel opens /dev/console for /init's standard streams.
		{"/dev/console", &rootfs.Entry{Type: rootfs.TypeCharDev, Mode: 0o600, Major: 5, Minor: 1}},
		{"/etc", &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755}},
		{"/etc/dmverity.json", rootfs.NewFile(0o644, cfgJSON)},
	} {
		if err := rd.Add(e.path, e.e); err != nil {
			t.Fatal(err)
		}
	}
	if err := modules.AddToTree(rd, 0); err != nil {
		t.Fatal(err)
	}
	initrdPath := filepath.Join(dir, "initrd")
	if err := initrd.WriteFile(ctx, initrdPath, rd, initrd.Options{Compression: initrd.None}); err != nil {
		t.Fatal(err)
	}

	var console bytes.Buffer
	vm, err := qemu.Start(ctx, qemu.Config{
		ExtraDisks: []string{good, corrupt},
		Accel:      "tcg",
		Timeout:    5 * time.Minute,
		Console:    &console,
		ExtraArgs:  []string{"-kernel", vmlinuz, "-initrd", initrdPath, "-append", "console=ttyS0 panic=-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	expect := func(line string, timeout time.Duration) {
		t.Helper()
		if _, err := vm.Expect(ctx, line, timeout); err != nil {
			t.Fatalf("%v\n%s", err, strings.Join(vm.Tail(60), "\n"))
		}
	}
	expect("dmverity-guest: loaded", 3*time.Minute)
	noFailure := "failed=[]"
	for _, want := range []string{
		"case keel-good: devtmpfs=false",
		"case keel-good: created /dev/dm-0 ",
		"case keel-good: status before read: V",
		"case keel-good: read sha256=" + dataSum + " " + noFailure,
		"case keel-good: status after read: V",
		fmt.Sprintf("case keel-good: mounted, hello.txt=%q", hello),
		"case keel-good: remove while mounted: dm remove keel-good: device or resource busy (the device is open",
		"case keel-good: removed",
		"case keel-corrupt: devtmpfs=true",
		"case keel-corrupt: created /dev/dm-",
		"case keel-corrupt: status before read: V",
		fmt.Sprintf("case keel-corrupt: read sha256=%s failed=[%d(input/output error)]", readableSum, badBlock),
		"case keel-corrupt: status after read: C",
		"case keel-corrupt: removed",
		"case keel-badtable: create error: dm table load keel-badtable: invalid argument (the kernel refused the table",
		"case keel-badtable: status after failed create: dm table status keel-badtable: no such device or address",
		"dmverity-guest: done",
	} {
		expect(want, 2*time.Minute)
	}
	if err := vm.Wait(); err != nil {
		t.Fatalf("the guest did not power itself off: %v\n%s", err, strings.Join(vm.Tail(30), "\n"))
	}
	log := vm.Log()
	if strings.Contains(log, "FAILED") {
		t.Errorf("the guest failed:\n%s", log)
	}
	// The kernel's own word on both failures (verity names the data
	// disk, the table the dm device).
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(fmt.Sprintf(`device-mapper: verity: 25\d:\d+: data block %d is corrupted`, badBlock)),
		regexp.MustCompile(`device-mapper: table: 25\d:\d+: verity: `),
	} {
		if !re.MatchString(log) {
			t.Errorf("no kernel message matching %s on the console", re)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("console:\n%s", console.String())
	}
}

// verityInfo is what `veritysetup format` says of an image.
type verityInfo struct{ root, salt string }

// veritysetupFormat has veritysetup append a hash tree (superblock first)
// to the image, after its blocks data blocks, and checks it with
// `veritysetup verify`.
func veritysetupFormat(t *testing.T, img string, blocks int) verityInfo {
	t.Helper()
	offset := fmt.Sprint(blocks * 4096)
	out, err := exec.Command("veritysetup", "format", img, img, "--hash-offset", offset, "--data-blocks", fmt.Sprint(blocks)).CombinedOutput()
	if err != nil {
		t.Fatalf("veritysetup format: %v\n%s", err, out)
	}
	field := func(name string) string {
		m := regexp.MustCompile(`(?m)^` + name + `:\s*([0-9a-f]{64})\s*$`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("veritysetup format: no %s in\n%s", name, out)
		}
		return string(m[1])
	}
	v := verityInfo{root: field("Root hash"), salt: field("Salt")}
	if out, err := exec.Command("veritysetup", "verify", img, img, v.root, "--hash-offset", offset).CombinedOutput(); err != nil {
		t.Fatalf("veritysetup verify: %v\n%s", err, out)
	}
	return v
}

// debianKernel takes the kernel keel's images boot (bookworm's
// linux-image-amd64, from keel's cache; downloaded if the cache lacks it)
// and resolves the named modules with their dependencies. It writes the
// kernel to dir and returns its path.
func debianKernel(t *testing.T, ctx context.Context, dir string, modules ...string) (string, *kmod.Set) {
	t.Helper()
	prep, err := source.Prepare(ctx, source.Config{
		Suite: "bookworm", Kernel: "linux-image-amd64",
		CacheDir: filepath.Join(cacheDir(t), "deb"),
		// A cached index of any age will do: the kernel need not be the
		// newest.
		IndexMaxAge: 365 * 24 * time.Hour,
	})
	if err != nil {
		t.Fatalf("the Debian kernel: %v", err)
	}
	if prep.ModulesDir == "" {
		t.Fatalf("%s has no modules directory", prep.Vmlinuz)
	}
	set, err := kmod.ResolveFS(prep.Kernel.FS(), strings.TrimPrefix(prep.ModulesDir, "/"), modules)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Builtin) > 0 {
		t.Logf("built into %s: %v", prep.Vmlinuz, set.Builtin)
	}
	var names []string
	for _, m := range set.Load {
		names = append(names, m.Name)
	}
	t.Logf("kernel %s, modules %v", prep.Vmlinuz, names)

	r, err := prep.Kernel.FS().Open(strings.TrimPrefix(prep.Vmlinuz, "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	vmlinuz := filepath.Join(dir, "vmlinuz")
	f, err := os.Create(vmlinuz)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, r); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return vmlinuz, set
}
