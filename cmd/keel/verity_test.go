package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"keel/image/install"
	"keel/image/qemu"
	"keel/rootfs/verity"
)

// TestVerifiedImage checks a disk.verity image signed for Secure Boot with
// the tools that read it (issue 9, "How it is checked", 1 and 2):
// veritysetup verifies slot a with the root hash in the UKI's command
// line, and its tree is byte-identical to veritysetup format's with the
// same salt and UUID; sbverify accepts systemd-boot and the UKI with the
// certificate; two builds are byte-identical, disk and bundle.
func TestVerifiedImage(t *testing.T) {
	for _, tool := range []string{"veritysetup", "sbverify", "mcopy", "objcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (.ci/run installs it: cryptsetup-bin, sbsigntool, mtools, binutils)", tool)
		}
	}
	dir, write := buildDir(t)
	keel := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if code := run(context.Background(), args, &out, &out); code != 0 {
			t.Fatalf("keel %s → %d\n%s", strings.Join(args, " "), code, out.String())
		}
		return out.String()
	}
	keel("key", "generate", "--dir", dir, "release")
	// The ovmf package's snakeoil key is encrypted ("snakeoil").
	sbKey := filepath.Join(dir, "snakeoil.key")
	if out, err := exec.Command("openssl", "pkey", "-in", qemu.SnakeoilKey, "-passin", "pass:snakeoil", "-out", sbKey).CombinedOutput(); err != nil {
		t.Fatalf("decrypting %s: %v\n%s", qemu.SnakeoilKey, err, out)
	}
	p := write("v.yaml", []byte("name: t\nversion: 1.0.0\nkernel: {file: vmlinuz, cmdline: console=ttyS0}\n"+
		"disk: {esp: 34MiB, slot: 8MiB, data: 16MiB, verity: true}\n"+
		"sources:\n  - {file: /srv/hello, content: \"hello\\n\"}\n"))
	var disks, bundles []string
	for i := range 2 {
		img := filepath.Join(dir, fmt.Sprintf("build%d", i), "t.img")
		out := keel("build", p, "-o", img, "--sign-key", filepath.Join(dir, "release.key"), "--sb-key", sbKey, "--sb-cert", qemu.SnakeoilCert)
		if !strings.Contains(out, "verity tree") {
			t.Errorf("build summary does not mention the verity tree:\n%s", out)
		}
		disks = append(disks, img)
		bundles = append(bundles, filepath.Join(filepath.Dir(img), "t-1.0.0.keel"))
	}
	for _, pair := range [][]string{disks, bundles} {
		a, _ := os.ReadFile(pair[0])
		b, _ := os.ReadFile(pair[1])
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s and %s differ: the build is not reproducible", pair[0], pair[1])
		}
	}
	img := disks[0]

	// The UKI and the loader, out of the ESP with mtools.
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	l, err := install.ReadLayout(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	esp, _ := l.Find("esp")
	efi := map[string]string{"loader": "::/EFI/BOOT/BOOTX64.EFI", "uki": "::/keel/a/keel.efi"}
	for name, src := range efi {
		dst := filepath.Join(dir, name+".efi")
		if out, err := exec.Command("mcopy", "-n", "-i", fmt.Sprintf("%s@@%d", img, esp.Start), src, dst).CombinedOutput(); err != nil {
			t.Fatalf("mcopy %s: %v\n%s", src, err, out)
		}
		if out, err := exec.Command("sbverify", "--cert", qemu.SnakeoilCert, dst).CombinedOutput(); err != nil {
			t.Errorf("sbverify --cert %s %s (%s): %v\n%s", qemu.SnakeoilCert, src, name, err, out)
		}
		efi[name] = dst
	}
	cmdlineFile := filepath.Join(dir, "cmdline")
	if out, err := exec.Command("objcopy", "-O", "binary", "--only-section=.cmdline", efi["uki"], cmdlineFile).CombinedOutput(); err != nil {
		t.Fatalf("objcopy .cmdline: %v\n%s", err, out)
	}
	cmdline, _ := os.ReadFile(cmdlineFile)
	m := regexp.MustCompile(`roothash=([0-9a-f]{64}) keel\.verity=(\d+)`).FindSubmatch(cmdline)
	if m == nil {
		t.Fatalf("UKI command line %q has no roothash= and keel.verity=", cmdline)
	}
	if bytes.Contains(cmdline, []byte("root=")) || bytes.Contains(cmdline, []byte("keel.slot=")) {
		t.Errorf("UKI command line %q names a partition or a slot: it must serve either slot", cmdline)
	}
	rootHash, offset := string(m[1]), string(m[2])

	// Slot a as veritysetup sees it.
	a, _ := l.Slot("a")
	slot := filepath.Join(dir, "slot-a")
	b := make([]byte, a.Size)
	if _, err := f.ReadAt(b, a.Start); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(slot, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var off int64
	fmt.Sscan(offset, &off)
	blocks := fmt.Sprint(off / verity.BlockSize)
	if out, err := exec.Command("veritysetup", "verify", "--hash-offset", offset, "--data-blocks", blocks, slot, slot, rootHash).CombinedOutput(); err != nil {
		t.Errorf("veritysetup verify slot a with the UKI's root hash: %v\n%s", err, out)
	}
	sb, err := verity.ReadSuperblock(bytes.NewReader(b), off)
	if err != nil {
		t.Fatal(err)
	}
	ref := filepath.Join(dir, "slot-ref")
	if err := os.WriteFile(ref, b[:off], 0o644); err != nil {
		t.Fatal(err)
	}
	uuid := fmt.Sprintf("%x-%x-%x-%x-%x", sb.UUID[0:4], sb.UUID[4:6], sb.UUID[6:8], sb.UUID[8:10], sb.UUID[10:16])
	out, err := exec.Command("veritysetup", "format", "--hash-offset", offset, "--data-blocks", blocks,
		"--salt", hex.EncodeToString(sb.Salt), "--uuid", uuid, ref, ref).CombinedOutput()
	if err != nil {
		t.Fatalf("veritysetup format: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), rootHash) {
		t.Errorf("veritysetup format gives another root hash than the UKI's %s:\n%s", rootHash, out)
	}
	want, _ := os.ReadFile(ref)
	hashSize := verity.HashSize(off)
	if int64(len(want)) < off+hashSize || !bytes.Equal(b[off:off+hashSize], want[off:off+hashSize]) {
		t.Errorf("slot a's hash tree (%d bytes at %d) differs from veritysetup format's", hashSize, off)
	}

	// keel inspect shows what the entry boots and the slot's root hash.
	if out := keel("inspect", img); !strings.Contains(out, "/keel/a/keel.efi") || !strings.Contains(out, rootHash) {
		t.Errorf("keel inspect does not show the UKI and the root hash %s:\n%s", rootHash, out)
	}

	// The bundle carries the same root hash, and shows it.
	if out := keel("bundle", "inspect", bundles[0]); !strings.Contains(out, rootHash) {
		t.Errorf("keel bundle inspect does not show the root hash %s:\n%s", rootHash, out)
	}
}
