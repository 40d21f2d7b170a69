package qemutests

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"keel/image/install"
	"keel/image/qemu"
)

// Per boot: OVMF, systemd-boot and the kernel take 15-40 s under TCG here,
// much more on a loaded machine.
const (
	bootTimeout = 3 * time.Minute // to the ready line (or the verdict)
	vmTimeout   = 5 * time.Minute // the VM's whole life
	cmdTimeout  = 90 * time.Second
)

// abVersion is one build of testdata/ab.yaml.
type abVersion struct {
	version string
	fail    bool // its required service fails: keel-init judges each boot bad
	slow    bool // judged healthy only after an hour: the boot is never judged
}

// abFixture is what the A/B scenarios share: one key, the signed builds.
type abFixture struct {
	t       *testing.T // the top-level test: VMs outlive a scenario's subtest
	h       *harness
	dir     string
	pub     string            // the public key, trusted by every build
	disk    map[string]string // version -> its disk image
	bundle  map[string]string // version -> its bundle
	bundles []string          // padded copies attached to every VM: /dev/vdb (2.0.0), vdc (3.0.0), vdd (4.0.0)
	// firmware, when set, changes the VMs' firmware (Secure Boot).
	firmware func(*qemu.Config)
}

// abLoader is a boot loader the A/B scenario runs with, and how its
// entries are named where the scenario reads them.
type abLoader struct {
	profile string // the profile's boot map; "" for the default (systemd-boot)
	bios    bool   // boot by the machine's other firmware: SeaBIOS, or U-Boot on aarch64
	base    string // the testdata profile; "" for ab.yaml
	arch    string // the VM's (image/qemu Config.Arch); "" for x86_64
	// short runs the upgrade and the fallback from a failing update only.
	short bool
	// entry is the entry keelctl install reports for slot with tries.
	entry func(slot string, tries int) string
	// counter is the entry keel-init reports as a trial's try counter,
	// once the loader counted the done-th boot.
	counter func(slot string, left, done int) string
}

var (
	systemdBoot = abLoader{
		entry:   func(s string, tries int) string { return fmt.Sprintf("keel-%s+%d.conf", s, tries) },
		counter: func(s string, left, done int) string { return fmt.Sprintf("keel-%s+%d-%d.conf", s, left, done) },
	}
	grubUEFI = abLoader{
		profile: "{loader: grub}",
		entry:   func(s string, _ int) string { return "entry-" + s + ".cfg" },
		counter: func(s string, _, _ int) string { return "entry-" + s + ".cfg" },
	}
	grubBIOS = abLoader{profile: grubUEFI.profile, bios: true, entry: grubUEFI.entry, counter: grubUEFI.counter}
	// aarch64: AAVMF and systemd-boot, and U-Boot with keel's script.
	arm64UEFI  = abLoader{base: "ab-arm64.yaml", arch: "aarch64", short: true, entry: systemdBoot.entry, counter: systemdBoot.counter}
	arm64UBoot = abLoader{profile: "{loader: u-boot}", bios: true, base: "ab-arm64.yaml", arch: "aarch64", short: true,
		entry:   func(s string, _ int) string { return "entry-" + s + ".txt" },
		counter: func(s string, _, _ int) string { return "entry-" + s + ".txt" },
	}
)

// TestABUpdate boots A/B updates for real (issue 4, "How it is checked",
// 1-4): keelctl install inside the guest, the boot loader's trial and
// fallback, blessing by keel-init, rollback, and keel update on the host.
// One disk goes v1 → v2 (upgrade, still v2 after another boot) → v3 whose
// required service fails (keel-init records the verdict and reboots, on
// each of its two tries: fallback to v2) → v4 that hangs before its
// verdict (the loader counts its tries down the same way and falls back
// to v2 by itself). A fresh v1 disk is updated offline to v2, then
// rolled back to v1, the other slot being good there.
func TestABUpdate(t *testing.T) {
	// With the other long VM tests, two at a time (go test -parallel
	// defaults to GOMAXPROCS): TCG runs a VM on one core.
	t.Parallel()
	h := setUp(t)
	testABUpdate(t, systemdBoot, buildAB(t, h, systemdBoot, abVersions))
}

// TestABUpdateGRUB is TestABUpdate with GRUB (issue 11): the same images
// boot by UEFI (OVMF) and by BIOS (SeaBIOS), each from its own copy.
func TestABUpdateGRUB(t *testing.T) {
	h := setUp(t)
	f := buildAB(t, h, grubUEFI, abVersions)
	for name, l := range map[string]abLoader{"uefi": grubUEFI, "bios": grubBIOS} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testABUpdate(t, l, f)
		})
	}
}

// TestABUpdateArm64 is TestABUpdate's upgrade and fallback on aarch64
// (issue 11): QEMU's virt machine booting by AAVMF and systemd-boot, and
// by U-Boot (Debian's qemu_arm64 build) running keel's boot script, whose
// try counter is in a U-Boot environment file on the ESP. Boot to ready,
// install v2 (a trial, blessed), then a v3 whose service fails: two
// trials, then v2 again.
func TestABUpdateArm64(t *testing.T) {
	h := setUp(t)
	h.useArm64(t)
	versions := abVersions[:3]
	for name, l := range map[string]abLoader{"uefi": arm64UEFI, "u-boot": arm64UBoot} {
		f := buildAB(t, h, l, versions)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testABUpdate(t, l, f)
		})
	}
}

// abVersions are TestABUpdate's builds.
var abVersions = []abVersion{{version: "1.0.0"}, {version: "2.0.0"}, {version: "3.0.0", fail: true}, {version: "4.0.0", slow: true}}

func testABUpdate(t *testing.T, l abLoader, built *abFixture) {
	h := built.h
	f := &abFixture{}
	*f = *built
	f.t, f.dir = t, t.TempDir()
	// Each run attaches its own copies of the bundles: QEMU locks a disk
	// for writing, and runs sharing one build go in parallel.
	f.bundles = nil
	for i, b := range built.bundles {
		f.bundles = append(f.bundles, copyDisk(t, b, filepath.Join(f.dir, fmt.Sprintf("bundle%d.disk", i))))
	}
	f.firmware = func(c *qemu.Config) { c.BIOS, c.Arch = l.bios, l.arch }

	disk := copyDisk(t, f.disk["1.0.0"], filepath.Join(f.dir, "device.img"))
	vars := filepath.Join(f.dir, "device.vars")
	var g *guest // the running guest, handed from one scenario to the next
	ok := t.Run("upgrade", func(t *testing.T) {
		g = f.boot(t, disk, vars, "boot 1")
		g.expect("keel: ready keel-ab 1.0.0 slot=a")
		out := g.mustSh("keelctl install /dev/vdb")
		g.contains(out, "installed keel-ab 2.0.0 into slot b: entry "+l.entry("b", 2)+", generation 2")
		g.checkStatus("a", map[string]slotWant{
			"a": {"1.0.0", 1, "good"},
			"b": {"2.0.0", 2, "trial"},
		})
		g.reboot()

		// The trial: keel-init judges it from the try counter the
		// loader reports, and blesses it once app has stayed up.
		g = f.boot(t, disk, vars, "boot 2")
		g.expect(`health: judging the boot: [app] must stay up for 5s, within 1m35s; try counter: ` + l.counter("b", 1, 1))
		g.expect("keel: ready keel-ab 2.0.0 slot=b")
		g.expect("health: entry blessed")
		g.contains(g.mustSh("cat /etc/keel-test-version"), "2.0.0")
		g.checkStatus("b", map[string]slotWant{
			"a": {"1.0.0", 1, "good"},
			"b": {"2.0.0", 2, "good"},
		})
		g.reboot()

		// Blessed: the loader keeps booting it, with no counter.
		g = f.boot(t, disk, vars, "boot 3")
		g.expect("try counter: none")
		g.expect("keel: ready keel-ab 2.0.0 slot=b")
	})
	if !ok {
		return
	}
	ok = t.Run("fallback", func(t *testing.T) {
		g.t = t
		out := g.mustSh("keelctl install /dev/vdc")
		g.contains(out, "installed keel-ab 3.0.0 into slot a: entry "+l.entry("a", 2)+", generation 3")
		g.reboot()

		// 3.0.0's app fails every time: keel-init gives up on it,
		// records the verdict and reboots by itself, on each try. It
		// leaves the entry alone: the loader's counter, decremented
		// before each boot, decides, as for a hang below.
		for i, try := range []struct{ counter, next string }{
			{l.counter("a", 1, 1), "1 try left for this entry before the boot loader falls back"},
			{l.counter("a", 0, 2), "no tries left: the boot loader falls back to the other slot"},
		} {
			g = f.boot(t, disk, vars, fmt.Sprintf("boot %d", 4+i))
			g.expect(`try counter: ` + try.counter)
			g.expect("keel-ab: app 3.0.0 fails on purpose")
			g.expect("health: boot is BAD: required service app failed")
			g.expect("health: verdict recorded in /keel/a/verdict.json")
			g.expect("health: rebooting: " + try.next)
			g.waitExit("keel-init: rebooting")
		}

		// The loader skips the entry with no tries left.
		g = f.boot(t, disk, vars, "boot 6")
		g.expect("keel: ready keel-ab 2.0.0 slot=b")
		g.checkStatus("b", map[string]slotWant{
			"a": {"3.0.0", 3, "bad"},
			"b": {"2.0.0", 2, "good"},
		})
		g.contains(g.mustSh("keelctl status"), "slot a (bad): trial boot 2 of 2 (generation 3) judged bad by its health check: required service app failed")
		// Nothing good to go back to.
		out, status := g.sh("keelctl rollback")
		if status == 0 {
			t.Errorf("keelctl rollback to a bad slot succeeded:\n%s", out)
		}
		g.contains(out, "rollback to slot a: slot is not good")
	})
	if !ok {
		return
	}
	if l.short {
		g.poweroff()
		return
	}
	t.Run("fallback by the loader", func(t *testing.T) {
		g.t = t
		out := g.mustSh("keelctl install /dev/vdd")
		g.contains(out, "installed keel-ab 4.0.0 into slot a: entry "+l.entry("a", 2)+", generation 4")
		g.reboot()

		// 4.0.0 comes up but is never judged: the test cuts the power
		// during each trial, as a hang and a watchdog would. Only
		// the loader's counter, decremented before each boot, is left
		// to decide.
		for i, counter := range []string{l.counter("a", 1, 1), l.counter("a", 0, 2)} {
			g = f.boot(t, disk, vars, fmt.Sprintf("boot %d", 7+i))
			g.expect(`try counter: ` + counter)
			g.expect("keel: ready keel-ab 4.0.0 slot=a")
			g.vm.Kill()
			t.Logf("%s (%s): power cut during the trial, %s", g.name, g.vm.Accel(), time.Since(g.start).Round(time.Second))
		}

		g = f.boot(t, disk, vars, "boot 9")
		g.expect("try counter: none")
		g.expect("keel: ready keel-ab 2.0.0 slot=b")
		g.checkStatus("b", map[string]slotWant{
			"a": {"4.0.0", 4, "bad"},
			"b": {"2.0.0", 2, "good"},
		})
		// 3.0.0's record is about generation 3: 4.0.0 has none.
		g.contains(g.mustSh("keelctl status"), "slot a (bad): no verdict recorded for generation 4: 2 trial boot(s) ended before keel-init recorded one")
		g.poweroff()
	})

	t.Run("offline", func(t *testing.T) {
		disk := copyDisk(t, f.disk["1.0.0"], filepath.Join(f.dir, "offline.img"))
		vars := filepath.Join(f.dir, "offline.vars")
		out := h.runKeel(t, "update", disk, f.bundle["2.0.0"], "--key", f.pub)
		if !strings.Contains(out, "installed keel-ab 2.0.0 into slot b") {
			t.Fatalf("keel update:\n%s", out)
		}
		g := f.boot(t, disk, vars, "offline boot 1")
		g.expect(`try counter: ` + l.counter("b", 1, 1))
		g.expect("keel: ready keel-ab 2.0.0 slot=b")
		g.expect("health: entry blessed")
		g.checkStatus("b", map[string]slotWant{
			"a": {"1.0.0", 1, "good"},
			"b": {"2.0.0", 2, "good"},
		})

		// Rollback, on the same disk: slot a is good here.
		t.Run("rollback", func(t *testing.T) {
			g.t = t
			g.contains(g.mustSh("keelctl rollback"), "slot a is the default from the next boot on: keel-ab 1.0.0, generation 3, good")
			g.reboot()
			g = f.boot(t, disk, vars, "offline boot 2")
			g.expect("keel: ready keel-ab 1.0.0 slot=a")
			g.contains(g.mustSh("cat /etc/keel-test-version"), "1.0.0")
			g.checkStatus("a", map[string]slotWant{
				"a": {"1.0.0", 3, "good"},
				"b": {"2.0.0", 2, "good"},
			})
			g.poweroff()
		})
	})
}

// buildAB generates a key and builds each version of testdata/ab.yaml,
// signed with it (buildVersions).
func buildAB(t *testing.T, h *harness, l abLoader, versions []abVersion) *abFixture {
	t.Helper()
	var bv []builtVersion
	for _, v := range versions {
		b := builtVersion{version: v.version}
		if l.profile != "" {
			b.extra += "boot: " + l.profile + "\n"
		}
		if v.fail {
			b.extra = "  - {file: /etc/keel-ab-fail, content: \"\"}\n" + b.extra // continues sources
		}
		if v.slow {
			b.update = ", health: {grace: 1h}"
		}
		bv = append(bv, b)
	}
	base := l.base
	if base == "" {
		base = "ab.yaml"
	}
	return buildVersionsOf(t, h, base, bv)
}

// padded copies a bundle to a file of whole MiB, to be a virtio disk:
// keelctl reads it from /dev/vdX like any file and ignores what follows
// the last artifact.
func padded(t *testing.T, bundle string) string {
	t.Helper()
	b, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	out := bundle + ".disk"
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(out, (int64(len(b))+1<<20-1)/(1<<20)*(1<<20)); err != nil {
		t.Fatal(err)
	}
	return out
}

// copyDisk copies a sparse disk image, keeping it sparse.
func copyDisk(t *testing.T, src, dst string) string {
	t.Helper()
	if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp %s: %v\n%s", src, err, out)
	}
	return dst
}

// guest is a booted VM and the root shell on its serial line.
type guest struct {
	t     *testing.T
	f     *abFixture
	name  string // "boot 2", for messages
	vm    *qemu.VM
	in    *io.PipeWriter
	n     int // commands sent
	start time.Time
}

// boot starts the disk with its own EFI variable store, which persists
// across boots as on a machine: with -no-reboot every guest reboot ends
// QEMU, and the next boot is a new QEMU on the same disk and variables.
// The update bundles are attached from /dev/vdb on, in version order.
func (f *abFixture) boot(t *testing.T, disk, vars, name string) *guest {
	t.Helper()
	pr, pw := io.Pipe()
	start := time.Now()
	cfg := qemu.Config{Disk: disk, ExtraDisks: f.bundles, VarsCopy: vars, Timeout: vmTimeout, Stdin: pr}
	if f.firmware != nil {
		f.firmware(&cfg)
	}
	vm, err := qemu.Start(f.h.ctx, cfg)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	f.t.Cleanup(func() {
		vm.Kill()
		pw.Close()
		pr.Close()
	})
	return &guest{t: t, f: f, name: name, vm: vm, in: pw, start: start}
}

// fatalf stops the test with the console's last lines, and the VM.
func (g *guest) fatalf(format string, args ...any) {
	g.t.Helper()
	g.vm.Kill()
	g.t.Fatalf("%s: %s\nconsole:\n%s", g.name, fmt.Sprintf(format, args...), strings.Join(g.vm.Tail(40), "\n"))
}

// expect waits for a console line containing s (after the last one
// matched), allowing for a whole boot.
func (g *guest) expect(s string) string {
	g.t.Helper()
	line, err := g.vm.Expect(g.f.h.ctx, s, bootTimeout)
	if err != nil {
		g.fatalf("%v", err)
	}
	return line
}

// noise is console output that is not a command's: keel-init's lines, the
// services' prefixed output, kernel messages.
var noise = regexp.MustCompile(`^(keel-init: |\[[a-z][a-z0-9-]*\] |\[ *\d+\.\d+\] )`)

// sh runs a command in the guest's shell and returns its output (stdout
// and stderr, without console noise) and exit status. The markers around
// it are typed with empty quotes inside, so only the shell's echo of them
// matches, never the command line itself.
func (g *guest) sh(cmd string) (string, int) {
	g.t.Helper()
	g.n++
	begin, end := fmt.Sprintf("@@begin-%d", g.n), fmt.Sprintf("@@end-%d", g.n)
	split := func(s string) string { return s[:3] + `""` + s[3:] }
	// The status is followed by "@@": Expect also matches a line still
	// being received, which could stop after "@@end-1 1" of a 127.
	if _, err := fmt.Fprintf(g.in, "echo %s; %s; echo %s $? @@\n", split(begin), cmd, split(end)); err != nil {
		g.fatalf("typing %q: %v", cmd, err)
	}
	endRE := regexp.MustCompile(end + ` (\d+) @@`)
	line, err := g.vm.ExpectRegexp(g.f.h.ctx, endRE, cmdTimeout)
	if err != nil {
		g.fatalf("%s: %v", cmd, err)
	}
	status, _ := strconv.Atoi(endRE.FindStringSubmatch(line)[1])
	lines := strings.Split(g.vm.Log(), "\n")
	var out []string
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.TrimSpace(lines[i]) == begin {
			for _, l := range lines[i+1:] {
				if strings.Contains(l, end+" ") {
					break
				}
				if !noise.MatchString(l) {
					out = append(out, l)
				}
			}
			break
		}
	}
	return strings.Join(out, "\n"), status
}

// mustSh is sh for a command that must succeed.
func (g *guest) mustSh(cmd string) string {
	g.t.Helper()
	out, status := g.sh(cmd)
	if status != 0 {
		g.fatalf("%s: exit status %d:\n%s", cmd, status, out)
	}
	return out
}

func (g *guest) contains(out, want string) {
	g.t.Helper()
	if !strings.Contains(out, want) {
		g.t.Errorf("%s: output lacks %q:\n%s", g.name, want, out)
	}
}

// slotWant is what keelctl status must say of one slot.
type slotWant struct {
	version    string
	generation int
	state      string
}

// checkStatus runs keelctl status --json in the guest.
func (g *guest) checkStatus(booted string, want map[string]slotWant) {
	g.t.Helper()
	out := g.mustSh("keelctl status --json")
	var st struct {
		Booted string               `json:"booted"`
		Slots  []install.SlotStatus `json:"slots"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		g.fatalf("keelctl status --json: %v:\n%s", err, out)
	}
	if st.Booted != booted {
		g.t.Errorf("%s: booted slot %q, want %q", g.name, st.Booted, booted)
	}
	for _, s := range st.Slots {
		w := want[s.Slot]
		if s.Version != w.version || s.Generation != w.generation || s.State != w.state || s.Booted != (s.Slot == booted) {
			g.t.Errorf("%s: slot %s is %s generation %d %s (booted %v), want %s generation %d %s",
				g.name, s.Slot, s.Version, s.Generation, s.State, s.Booted, w.version, w.generation, w.state)
		}
	}
	if len(st.Slots) != len(want) {
		g.t.Errorf("%s: %d slots, want %d:\n%s", g.name, len(st.Slots), len(want), out)
	}
}

// reboot reboots the guest with busybox's reboot (SIGTERM to keel-init).
func (g *guest) reboot() {
	g.t.Helper()
	g.shutdown("reboot", "keel-init: rebooting")
}

// poweroff ends the guest's last boot.
func (g *guest) poweroff() {
	g.t.Helper()
	g.shutdown("poweroff", "keel-init: powering off")
}

func (g *guest) shutdown(cmd, want string) {
	g.t.Helper()
	if _, err := fmt.Fprintf(g.in, "%s\n", cmd); err != nil {
		g.fatalf("typing %s: %v", cmd, err)
	}
	g.waitExit(want)
}

// waitExit waits for QEMU to end (-no-reboot: the guest rebooted or
// powered off) after want appeared on the console.
func (g *guest) waitExit(want string) {
	g.t.Helper()
	g.expect(want)
	if err := g.vm.Wait(); err != nil {
		g.fatalf("QEMU did not end cleanly: %v", err)
	}
	g.t.Logf("%s (%s): %s, %s", g.name, g.vm.Accel(), strings.TrimPrefix(want, "keel-init: "), time.Since(g.start).Round(time.Second))
}
