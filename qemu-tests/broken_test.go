package qemutests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// brokenVersion is one way a new version of testdata/broken.yaml fails to
// come up, and what the test sees of it.
type brokenVersion struct {
	name    string
	version string
	kernel  string // the version's kernel: mapping
	sources string // more sources: list items
	// trial are the console lines of each failed trial boot, in order,
	// then the line after which the machine resets by itself; %s is the
	// try counter left after the boot (systemd-boot's +N).
	trial []string
	// why is what keelctl status says of the bad slot afterwards.
	why string
}

// allModules is what keel-init needs to mount the root and the data
// partition, read the ESP and the EFI variables.
const allModules = "virtio_blk, virtio_pci, squashfs, ext4, vfat, nls_cp437, nls_ascii, efivarfs"

// TestBroken installs new versions that cannot come up (issue 8, "Broken
// new systems"), each into slot b of its own copy of a v1 disk: one whose
// initrd cannot mount the root (no squashfs module), one whose init exits
// (the kernel panics), one whose required service never stays up for the
// grace period. Each boots as a trial update.tries (2) times, counted down
// by systemd-boot, then the loader falls back to v1, and keelctl status
// there says that the slot is bad and, where keel could record it, why.
// The install is keel update on the host, which writes the ESP as keelctl
// install does on a device (ab_test.go boots that one): it spares a boot
// per version.
func TestBroken(t *testing.T) {
	// With the other long VM tests, two at a time (go test -parallel
	// defaults to GOMAXPROCS): TCG runs a VM on one core.
	t.Parallel()
	h := setUp(t)
	versions := []brokenVersion{
		{
			name: "root cannot be mounted", version: "2.1.0",
			kernel: "{modules: [virtio_blk, virtio_pci, ext4, vfat, nls_cp437, nls_ascii, efivarfs]}",
			trial: []string{
				"keel-init: FATAL: mounting root",
				"keel-init: verdict recorded in /keel/b/verdict.json",
				"keel-init: rebooting in 5s, a trial boot: %s",
			},
			why: "slot b (bad): trial boot 2 of 2 (generation 2) judged bad in the initrd: mounting root /dev/vda3 (squashfs, read-only) on /sysroot: no such device",
		},
		{
			name: "init exits", version: "2.2.0",
			kernel:  "{modules: [" + allModules + "]}",
			sources: "  - {file: /etc/keel-broken-exit, content: \"\"}\n",
			trial: []string{
				"keel-init: switching to the rootfs, exec /usr/sbin/keel-broken-init",
				"keel-broken: init 2.2.0 exits",
				"Kernel panic - not syncing: Attempted to kill init",
			},
			// Nothing was left to record it: the kernel panicked.
			why: "slot b (bad): no verdict recorded for generation 2: 2 trial boot(s) ended before keel-init recorded one",
		},
		{
			name: "health never passes", version: "2.3.0",
			kernel:  "{modules: [" + allModules + "]}",
			sources: "  - {file: /etc/keel-broken-flap, content: \"\"}\n",
			trial: []string{
				"keel-broken: app 2.3.0 up for a moment",
				"health: boot is BAD: required service app failed",
				"health: verdict recorded in /keel/b/verdict.json",
				"health: rebooting: %s",
				"keel-init: rebooting",
			},
			why: "slot b (bad): trial boot 2 of 2 (generation 2) judged bad by its health check: required service app failed: " +
				"exited with status 1; restarted 5 times within 30s, given up",
		},
	}
	dir := t.TempDir()
	h.runKeel(t, "key", "generate", "--dir", dir, "release")
	v1 := buildBroken(t, h, dir, brokenVersion{version: "1.0.0", kernel: "{modules: [" + allModules + "]}"})
	for _, v := range versions {
		buildBroken(t, h, dir, v)
	}

	start := time.Now()
	t.Cleanup(func() { t.Logf("the three fallbacks: %v", time.Since(start).Round(time.Second)) })
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			// As many VMs at once as go test -parallel allows (GOMAXPROCS):
			// slower boots, the same sequence, less wall time than one
			// after the other.
			t.Parallel()
			// Each on its own disk and EFI variables.
			f := &abFixture{t: t, h: h, dir: dir}
			disk := copyDisk(t, v1, filepath.Join(dir, v.version+".img"))
			vars := filepath.Join(dir, v.version+".vars")
			bundle := filepath.Join(dir, "out-"+v.version, "keel-broken-"+v.version+".keel")
			if out := h.runKeel(t, "update", disk, bundle, "--key", filepath.Join(dir, "release.pub")); !strings.Contains(out,
				fmt.Sprintf("installed keel-broken %s into slot b", v.version)) {
				t.Fatalf("keel update:\n%s", out)
			}

			for i, left := range []string{
				"1 try left for this entry before the boot loader falls back",
				"no tries left: the boot loader falls back to the other slot",
			} {
				g := f.boot(t, disk, vars, fmt.Sprintf("%s trial %d", v.version, i+1))
				for j, want := range v.trial {
					if strings.Contains(want, "%s") {
						want = fmt.Sprintf(want, left)
					}
					if j < len(v.trial)-1 {
						g.expect(want)
					} else {
						g.waitExit(want)
					}
				}
			}

			// The third boot: the loader skips the entry with no tries
			// left.
			g := f.boot(t, disk, vars, "fallback")
			g.expect("try counter: none")
			g.expect("keel: ready keel-broken 1.0.0 slot=a")
			g.checkStatus("a", map[string]slotWant{
				"a": {"1.0.0", 1, "good"},
				"b": {v.version, 2, "bad"},
			})
			out := g.mustSh("keelctl status")
			t.Logf("keelctl status:\n%s", out)
			g.contains(out, v.why)
			g.poweroff()
		})
	}
}

// buildBroken builds one version of testdata/broken.yaml, signed with the
// key in dir, and returns its disk image.
func buildBroken(t *testing.T, h *harness, dir string, v brokenVersion) string {
	t.Helper()
	base, err := filepath.Abs("testdata/broken.yaml")
	if err != nil {
		t.Fatal(err)
	}
	profile := fmt.Sprintf("include: [%q]\nversion: %s\nupdate: {keys: [%q]}\nkernel: %s\nsources:\n  - {file: /etc/keel-test-version, content: \"%s\\n\"}\n%s",
		base, v.version, filepath.Join(dir, "release.pub"), v.kernel, v.version, v.sources)
	src := filepath.Join(dir, "v"+v.version+".yaml")
	if err := os.WriteFile(src, []byte(profile), 0o644); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "out-"+v.version, "disk.img")
	h.runKeel(t, "build", src, "-o", disk, "--sign-key", filepath.Join(dir, "release.key"))
	return disk
}
