package qemutests

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"keel/image/install"
	"keel/image/qemu"
)

// TestVerifiedBoot boots verity + UKI images with Secure Boot enforced by
// OVMF's snakeoil keys (issue 9, "How it is checked", 3, 5 and 6): the
// firmware checks systemd-boot and each slot's unified kernel image, the
// kernel checks every block of the root against the root hash signed
// into the image's command line.
//
//   - boot 1, slot a (1.0.0), whose root has one byte of /srv/blob
//     flipped on the disk: Secure Boot is on, reading the file is an I/O
//     error, the rest of the root works. keelctl installs 2.0.0 into b.
//   - One byte of b's squashfs superblock is flipped on the disk: boot 2,
//     the trial, cannot mount its root (I/O error through dm-verity), so
//     keel-init records the verdict and reboots; boot 3 is slot a again.
//   - 3.0.0, whose UKI is signed with a key the firmware does not trust,
//     installs (its bundle is signed with the trusted ed25519 key) into b;
//     the firmware refuses to start it and systemd-boot falls back to a.
//   - 2.0.0 again into b: its trial boots, is blessed, and keelctl status
//     shows both slots' root hashes and Secure Boot on.
func TestVerifiedBoot(t *testing.T) {
	t.Parallel()
	h := setUp(t, "mcopy")
	dir := t.TempDir()
	h.runKeel(t, "secureboot", "keys", "other", "-o", filepath.Join(dir, "other"))
	snakeoil := []string{"--sb-key", snakeoilKey(t, dir), "--sb-cert", qemu.SnakeoilCert}
	other := []string{"--sb-key", filepath.Join(dir, "other", "db.key"), "--sb-cert", filepath.Join(dir, "other", "db.crt")}
	blob := make([]byte, 256<<10) // random: squashfs stores its blocks as they are
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range blob {
		blob[i] = byte(rng.Uint32())
	}
	blobFile := filepath.Join(dir, "blob")
	if err := os.WriteFile(blobFile, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	// Continues the sources list, then sets disk.verity.
	extra := fmt.Sprintf("  - {file: /srv/blob, source: %q}\ndisk: {verity: true}\n", blobFile)
	f := buildVersions(t, h, []builtVersion{
		{version: "1.0.0", extra: extra, args: snakeoil},
		{version: "2.0.0", extra: extra, args: snakeoil},
		{version: "3.0.0", extra: extra, args: other},
	})
	f.firmware = func(c *qemu.Config) {
		c.SecureBoot, c.OVMFCode, c.OVMFVars = true, qemu.SecureBootCode, qemu.SnakeoilVars
	}

	disk := copyDisk(t, f.disk["1.0.0"], filepath.Join(f.dir, "device.img"))
	vars := filepath.Join(f.dir, "device.vars")
	flip(t, disk, "a", func(slot []byte) int {
		i := bytes.Index(slot, blob[:4096])
		if i < 0 {
			t.Fatal("/srv/blob's first block is not in slot a as it is")
		}
		// Inside the file's first (stored, 128 KiB) squashfs block, in a
		// verity block of its own: the squashfs superblock shares the
		// first 4 KiB with the start of the file.
		return i + 64<<10
	})

	g := f.boot(t, disk, vars, "boot 1")
	g.expect("keel-init: verity: ")
	g.expect("keel: ready keel-ab 1.0.0 slot=a")
	if out := g.mustSh("od -An -tx1 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"); !strings.HasSuffix(strings.TrimSpace(out), "01") {
		t.Errorf("SecureBoot variable: %q, want it to end in 01 (enforcing)", out)
	}
	out, status := g.sh("cat /srv/blob >/dev/null")
	if status == 0 || !strings.Contains(out, "Input/output error") {
		t.Errorf("reading the tampered /srv/blob: status %d, %q; want an I/O error", status, out)
	}
	g.contains(g.mustSh("cat /etc/keel-test-version"), "1.0.0")
	g.contains(g.mustSh("keelctl install --tries 1 /dev/vdb"), "installed keel-ab 2.0.0 into slot b")
	g.poweroff()

	// A root that is not the one the UKI names never mounts.
	flip(t, disk, "b", func([]byte) int { return 0x200 })
	g = f.boot(t, disk, vars, "boot 2")
	g.expect("FATAL: ")
	g.expect("verdict recorded in /keel/b/verdict.json")
	g.waitExit("keel-init: rebooting in")
	g = f.boot(t, disk, vars, "boot 3")
	g.expect("keel: ready keel-ab 1.0.0 slot=a")
	g.checkStatus("a", map[string]slotWant{"a": {"1.0.0", 1, "good"}, "b": {"2.0.0", 2, "bad"}})

	// An image signed with another key: the firmware refuses it.
	g.contains(g.mustSh("keelctl install --tries 1 /dev/vdc"), "installed keel-ab 3.0.0 into slot b")
	g.poweroff()
	g = f.boot(t, disk, vars, "boot 4")
	g.expect("keel: ready keel-ab 1.0.0 slot=a")
	refusal := regexp.MustCompile(`(?i).*(security violation|access denied).*`).FindString(g.vm.Log())
	if refusal == "" || strings.Contains(g.vm.Log(), "keel-ab 3.0.0") {
		t.Errorf("boot 4: want the firmware to refuse 3.0.0's image (Security Violation or Access Denied) before slot a booted; console:\n%s", g.vm.Log())
	}
	t.Logf("boot 4: systemd-boot: %s", strings.TrimSpace(refusal))
	g.checkStatus("a", map[string]slotWant{"a": {"1.0.0", 1, "good"}, "b": {"3.0.0", 3, "bad"}})

	// A good update between two verity + UKI builds.
	g.contains(g.mustSh("keelctl install /dev/vdb"), "installed keel-ab 2.0.0 into slot b")
	g.reboot()
	g = f.boot(t, disk, vars, "boot 5")
	g.expect("keel: ready keel-ab 2.0.0 slot=b")
	g.expect("health: entry blessed")
	g.contains(g.mustSh("cat /etc/keel-test-version"), "2.0.0")
	g.mustSh("cat /srv/blob >/dev/null")
	st := g.mustSh("keelctl status")
	g.contains(st, "secure boot: on")
	for _, v := range []string{"1.0.0", "2.0.0"} {
		g.contains(st, rootHash(t, f.bundle[v]))
	}
	g.checkStatus("b", map[string]slotWant{"a": {"1.0.0", 1, "good"}, "b": {"2.0.0", 4, "good"}})
	g.poweroff()
}

// builtVersion is one build of testdata/ab.yaml with more profile lines and
// keel build arguments.
type builtVersion struct {
	version string
	extra   string   // profile lines appended
	update  string   // more of the update map, after its keys: ", health: {...}"
	args    []string // keel build arguments added
}

// buildVersions generates a key and builds each version of
// testdata/ab.yaml, signed with it. Profiles are files, so each version is
// a small profile that includes the common one. Every bundle but the first
// version's is attached to the VMs (/dev/vdb, /dev/vdc, ...).
func buildVersions(t *testing.T, h *harness, versions []builtVersion) *abFixture {
	return buildVersionsOf(t, h, "ab.yaml", versions)
}

// buildVersionsOf is buildVersions of another testdata profile.
func buildVersionsOf(t *testing.T, h *harness, base string, versions []builtVersion) *abFixture {
	t.Helper()
	f := &abFixture{t: t, h: h, dir: t.TempDir(), disk: map[string]string{}, bundle: map[string]string{}}
	h.runKeel(t, "key", "generate", "--dir", f.dir, "release")
	f.pub = filepath.Join(f.dir, "release.pub")
	base, err := filepath.Abs(filepath.Join("testdata", base))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range versions {
		profile := fmt.Sprintf("include: [%q]\nversion: %s\nupdate: {keys: [%q]%s}\nsources:\n"+
			"  - {file: /etc/keel-test-version, content: \"%s\\n\"}\n%s", base, v.version, f.pub, v.update, v.version, v.extra)
		src := filepath.Join(f.dir, "v"+v.version+".yaml")
		if err := os.WriteFile(src, []byte(profile), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(f.dir, "out-"+v.version)
		f.disk[v.version] = filepath.Join(out, "disk.img")
		args := append([]string{"build", src, "-o", f.disk[v.version], "--sign-key", filepath.Join(f.dir, "release.key")}, v.args...)
		h.runKeel(t, args...)
		f.bundle[v.version] = filepath.Join(out, "keel-ab-"+v.version+".keel")
		if v.version != versions[0].version {
			f.bundles = append(f.bundles, padded(t, f.bundle[v.version]))
		}
	}
	return f
}

// flip inverts one byte of a slot of a disk image, at the offset at
// returns given the slot's content.
func flip(t *testing.T, disk, slot string, at func(slot []byte) int) {
	t.Helper()
	fd, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	fi, err := fd.Stat()
	if err != nil {
		t.Fatal(err)
	}
	l, err := install.ReadLayout(fd, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	p, ok := l.Slot(slot)
	if !ok {
		t.Fatalf("%s: no slot %s", disk, slot)
	}
	b := make([]byte, p.Size)
	if _, err := fd.ReadAt(b, p.Start); err != nil {
		t.Fatal(err)
	}
	i := at(b)
	if _, err := fd.WriteAt([]byte{^b[i]}, p.Start+int64(i)); err != nil {
		t.Fatal(err)
	}
	t.Logf("flipped the byte at %d of slot %s", i, slot)
}

// rootHash is what keel bundle inspect says a bundle's root hash is.
func rootHash(t *testing.T, bundle string) string {
	t.Helper()
	out, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`"root_hash": *"([0-9a-f]{64})"`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("%s: no root_hash in its manifest", bundle)
	}
	return string(m[1])
}

// TestSecureBootEnroll starts a machine in setup mode (OVMF's Secure Boot
// firmware with an empty variable store) from an image built with
// --sb-keys (issue 9, "How it is checked", 4): systemd-boot enrolls the
// image's own PK, KEK and db and resets the machine, and the next boot
// enforces Secure Boot with them. The image has a unified kernel image but
// no verity: the slot-independent command line works without it too.
func TestSecureBootEnroll(t *testing.T) {
	t.Parallel()
	h := setUp(t)
	dir := t.TempDir()
	keys := filepath.Join(dir, "device-secureboot")
	h.runKeel(t, "secureboot", "keys", "device", "-o", keys)
	f := buildVersions(t, h, []builtVersion{{version: "1.0.0", args: []string{"--sb-keys", keys}}})
	f.firmware = func(c *qemu.Config) {
		c.SecureBoot, c.OVMFCode, c.OVMFVars = true, qemu.SecureBootCode, qemu.SetupModeVars
	}
	disk := copyDisk(t, f.disk["1.0.0"], filepath.Join(f.dir, "device.img"))
	vars := filepath.Join(f.dir, "device.vars")

	g := f.boot(t, disk, vars, "enroll boot")
	g.expect(`Enrolling secure boot keys from directory: \loader\keys\auto`)
	if err := g.vm.Wait(); err != nil {
		g.fatalf("QEMU did not end with the reset after enrolling: %v", err)
	}
	t.Logf("enroll boot (%s): keys enrolled, reset, %s", g.vm.Accel(), time.Since(g.start).Round(time.Second))

	g = f.boot(t, disk, vars, "boot 2")
	g.expect("keel: ready keel-ab 1.0.0 slot=a")
	if out := g.mustSh("od -An -tx1 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"); !strings.HasSuffix(strings.TrimSpace(out), "01") {
		t.Errorf("SecureBoot variable: %q, want it to end in 01 (enforcing)", out)
	}
	g.contains(g.mustSh("keelctl status"), "secure boot: on")
	g.poweroff()
}

// snakeoilKey decrypts the ovmf package's snakeoil key (its passphrase is
// "snakeoil") into dir: keel build reads only unencrypted keys.
func snakeoilKey(t *testing.T, dir string) string {
	t.Helper()
	plain := filepath.Join(dir, "snakeoil.key")
	if out, err := exec.Command("openssl", "pkey", "-in", qemu.SnakeoilKey, "-passin", "pass:snakeoil", "-out", plain).CombinedOutput(); err != nil {
		t.Fatalf("decrypting %s: %v\n%s", qemu.SnakeoilKey, err, out)
	}
	return plain
}
