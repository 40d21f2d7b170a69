package qemutests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"keel/image/disk"
	"keel/image/inspect"
	"keel/image/qemu"
)

// TestAarch64Boot builds two versions of an arch: aarch64 image (Debian's
// arm64 kernel and busybox, keel-init and keelctl built for arm64) and
// boots them on QEMU's virt machine with AAVMF and systemd-boot, under
// TCG: v1 must reach keel-init's ready line, run keelctl status and power
// off; then v2, installed offline with keel update, boots as a trial from
// slot b (systemd-boot counting it in its entry's name on AAVMF's ESP) and
// is blessed by keel-init.
func TestAarch64Boot(t *testing.T) {
	// One VM at a time: two such tests share the two cores (go test
	// -parallel defaults to GOMAXPROCS), TCG taking one each.
	t.Parallel()
	h := setUp(t, "mdir")
	h.useArm64(t)

	dir := t.TempDir()
	h.runKeel(t, "key", "generate", "--dir", dir, "release")
	base, err := filepath.Abs("testdata/arm64.yaml")
	if err != nil {
		t.Fatal(err)
	}
	img, bundle := map[string]string{}, map[string]string{}
	for _, v := range []string{"1.0.0", "2.0.0"} {
		src := filepath.Join(dir, "v"+v+".yaml")
		profile := fmt.Sprintf("include: [%q]\nversion: %s\nupdate: {keys: [%q]}\n", base, v, filepath.Join(dir, "release.pub"))
		if err := os.WriteFile(src, []byte(profile), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "out-"+v)
		img[v], bundle[v] = filepath.Join(out, "disk.img"), filepath.Join(out, "keel-arm64-"+v+".keel")
		build := h.keelCmd("build", src, "-o", img[v], "--sign-key", filepath.Join(dir, "release.key"))
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("keel build %s: %v\n%s", v, err, out)
		}
	}
	disk1 := img["1.0.0"]

	// The root slots carry arm64's partition type (what keel run goes
	// by), and the ESP the loader the firmware boots on arm64.
	rep, err := inspect.File(disk1)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Partitions {
		if strings.HasPrefix(p.Label, "root-") && !strings.EqualFold(p.Type, disk.TypeRootArm64) {
			t.Errorf("%s has type %s, want %s", p.Label, p.Type, disk.TypeRootArm64)
		}
	}
	esp := rep.Partitions[0]
	out, err := exec.Command("mdir", "-b", "-i", disk1+"@@"+strconv.FormatInt(esp.Start, 10), "::/EFI/BOOT").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "::/EFI/BOOT/BOOTAA64.EFI" {
		t.Fatalf("ESP /EFI/BOOT holds %q (%v), want only BOOTAA64.EFI", out, err)
	}

	// One variable store for both boots, as on a machine.
	vars := filepath.Join(dir, "vars.fd")
	bootAarch64(t, h, disk1, vars, "1.0.0", "a",
		"try counter: none",
		"[check] a *   keel-arm64 1.0.0  1           good",
		"[check] b     -                 -           none")

	if out := h.runKeel(t, "update", disk1, bundle["2.0.0"], "--key", filepath.Join(dir, "release.pub")); !strings.Contains(out, "installed keel-arm64 2.0.0 into slot b") {
		t.Fatalf("keel update:\n%s", out)
	}
	bootAarch64(t, h, disk1, vars, "2.0.0", "b",
		"health: entry blessed",
		"[check] a     keel-arm64 1.0.0  1           good",
		"[check] b *   keel-arm64 2.0.0  2           good")
}

// bootAarch64 boots an aarch64 disk to keel-init's ready line for version and
// slot, logs how long that took, waits for the guest to power itself off
// and checks the console for want.
func bootAarch64(t *testing.T, h *harness, img, vars, version, slot string, want ...string) {
	t.Helper()
	var console bytes.Buffer
	start := time.Now()
	vm, err := qemu.Start(h.ctx, qemu.Config{Arch: "aarch64", Disk: img, VarsCopy: vars, Timeout: 12 * time.Minute, Console: &console})
	if err != nil {
		t.Fatal(err)
	}
	ready := fmt.Sprintf("keel: ready keel-arm64 %s slot=%s", version, slot)
	if _, err := vm.Expect(h.ctx, ready, 10*time.Minute); err != nil {
		vm.Kill()
		t.Fatalf("%s: %v\n%s", version, err, vm.Tail(40))
	}
	t.Logf("aarch64 %s (%s): %q %.1fs after QEMU started", version, vm.Accel(), ready, time.Since(start).Seconds())
	if err := vm.Wait(); err != nil {
		t.Fatalf("%s: the guest did not power itself off: %v\n%s", version, err, vm.Tail(30))
	}
	// The service's lines and keel-init's race: look in the whole
	// console once the guest is off.
	log := strings.ReplaceAll(console.String(), "\r", "")
	for _, w := range append([]string{
		"keel-arm64: machine aarch64",
		"[check] booted: slot " + slot,
		"keel-arm64: keelctl status exit 0",
		"keel-init: powering off",
	}, want...) {
		if !strings.Contains(log, w) {
			t.Errorf("%s: console lacks %q:\n%s", version, w, vm.Tail(40))
		}
	}
}

// buildArm64 builds keel-init and keelctl for arm64, static as the
// Makefile builds them, for $KEEL_INIT_ARM64 and $KEEL_CTL_ARM64.
func buildArm64(t *testing.T) (keelInit, keelctl string) {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"keel-init", "keelctl"} {
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, name), "./cmd/"+name)
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH=arm64")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("GOARCH=arm64 go build ./cmd/%s: %v\n%s", name, err, out)
		}
	}
	return filepath.Join(dir, "keel-init"), filepath.Join(dir, "keelctl")
}
