package qemutests

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"keel/image/disk"
	"keel/image/install"
	"keel/image/qemu"
)

// TestKill cuts the power in the middle of on-device updates (issue 8,
// "Kill the VM"): it SIGKILLs QEMU at a random moment of a `keelctl
// install`, boots the disk again, and does so KEEL_KILLS times (default
// 10; `make reliability` runs 100) on one disk, each boot going on from
// where the last left it.
//
// Every boot must reach "keel: ready", in one of two ways: the slot that
// was running, with its version, not on trial; or the slot being written,
// with the new version, as the trial of the new entry (which keel-init
// then blesses). Which of the two is decided by what keelctl had printed
// when the power went: a cut before the new entry was being written must
// boot the old slot, a cut after keelctl reported success the new one.
// The two versions alternate: each install writes the version the running
// slot does not hold into the other slot (a downgrade, every other time).
//
// The delays come from a PRNG seeded with KEEL_KILL_SEED (else the
// clock), logged first for a replay, and are spread over 1.2 times an
// install's duration, measured by a first install run to its end and
// again whenever an install ends before its kill: some kills land before
// keelctl has printed anything, some after it has finished. Replaying a
// seed replays the draws; what they cut depends on the machine's speed.
//
// After the kills one install must run to its end and leave nothing
// behind on the ESP but the two slots' files and entries, and its slot
// must boot and be blessed; then fsck.fat finds the ESP clean, but for
// what a cut may leave on vfat (lost clusters, the dirty bit).
func TestKill(t *testing.T) {
	// One VM at a time: two such tests share the two cores (go test
	// -parallel defaults to GOMAXPROCS), TCG taking one each.
	t.Parallel()
	kills, seed := killParams(t)
	t.Logf("%d kills, seed %d; replay: KEEL_KILL_SEED=%d KEEL_KILLS=%d go test -count=1 -timeout %v -run 'TestKill$' -v ./qemu-tests/",
		kills, seed, seed, kills, killTimeout(kills))
	h := setUp(t, "fsck.fat")
	built := time.Now()
	f := buildAB(t, h, systemdBoot, []abVersion{{version: "1.0.0"}, {version: "2.0.0"}})
	t.Logf("built 1.0.0 and 2.0.0 in %v", time.Since(built).Round(time.Second))
	// buildAB attaches the updates only: 2.0.0 is /dev/vdb, 1.0.0 /dev/vdc.
	f.bundles = append(f.bundles, padded(t, f.bundle["1.0.0"]))
	k := &killRun{f: f, kills: kills, seed: seed, start: time.Now(), stages: map[string]int{}}
	k.disk = copyDisk(t, f.disk["1.0.0"], filepath.Join(f.dir, "device.img"))
	k.vars = filepath.Join(f.dir, "device.vars")
	t.Cleanup(func() { k.report(t) })

	cur := k.bootOnce(t, "boot 0")
	if cur.slot != "a" || cur.version != "1.0.0" {
		cur.g.fatalf("first boot: slot %s version %s, want slot a 1.0.0", cur.slot, cur.version)
	}

	// How long an install takes here and now: the window the kills are
	// drawn from. It leaves a complete trial entry for slot b, which the
	// first kill may come too early to remove.
	start := time.Now()
	cur.g.contains(cur.g.mustSh(installCmd("2.0.0")), "installed keel-ab 2.0.0 into slot b")
	window := time.Since(start) * 6 / 5
	t.Logf("boot 0: one install took %v: kills fall within the first %v after it is typed", time.Since(start).Round(time.Millisecond), window.Round(time.Millisecond))
	pending := true

	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	for i := 1; i <= kills; i++ {
		old, oldV := cur.slot, cur.version
		slot, v := otherOf(old, "a", "b"), otherOf(oldV, "1.0.0", "2.0.0")
		g := cur.g
		begin := g.send(installCmd(v))
		typed := time.Now()
		drawn := window
		delay := time.Duration(rng.Int64N(int64(drawn)))
		if took, status := g.watch(delay); status == 0 {
			// The machine's speed changes (other VMs, builds): the
			// window follows the last install seen to succeed.
			window = took * 6 / 5
		}
		time.Sleep(time.Until(typed.Add(delay)))
		g.vm.Kill()
		st := installProgress(g.vm.Log(), begin)
		k.stages[installStages[st.stage+1].name]++
		if st.status > 0 {
			t.Errorf("kill %d: keelctl install failed before the kill (exit status %d):\n%s", i, st.status, st.out)
		}
		t.Logf("kill %d/%d: %v (of %v) after typing the install of %s into slot %s, at: %s",
			i, kills, delay.Round(time.Millisecond), drawn.Round(time.Millisecond), v, slot, st.label)

		cur = k.bootOnce(t, fmt.Sprintf("boot %d", i))
		// What may boot after a cut at this stage: the old slot as long
		// as the new entry may not be complete, the new slot (on trial)
		// once it may be, or if an earlier install's entry is still
		// there (the first kill may come before keelctl removes it).
		oldOK := st.stage < stageDone
		newOK := st.stage >= stageEntry || pending && st.stage <= stageRemove
		outcome := "the old slot"
		switch {
		case cur.slot == old && cur.version == oldV && cur.trial == "" && oldOK:
			k.old++
		case cur.slot == slot && cur.version == v && cur.trial != "" && newOK:
			k.new++
			outcome = "the new slot, blessed"
		default:
			trial := "not a trial"
			if cur.trial != "" {
				trial = "trial " + cur.trial
			}
			cur.g.fatalf("kill %d at %q: booted slot %s %s (%s); want slot %s %s (not a trial) before the new entry is written, slot %s %s (a trial) after",
				i, st.label, cur.slot, cur.version, trial, old, oldV, slot, v)
		}
		t.Logf("boot %d: ready in %v, %s %s: %s", i, cur.ready.Round(time.Second), cur.slot, cur.version, outcome)
		for _, c := range cur.cleanup {
			t.Logf("boot %d: ESP cleanup: %s", i, c)
		}
		k.cleanups += len(cur.cleanup)
		pending = false
	}

	// After all that, an install runs to its end and leaves the ESP tidy.
	old, oldV := cur.slot, cur.version
	slot, v := otherOf(old, "a", "b"), otherOf(oldV, "1.0.0", "2.0.0")
	g := cur.g
	g.contains(g.mustSh(installCmd(v)), fmt.Sprintf("installed keel-ab %s into slot %s: entry keel-%s+2.conf", v, slot, slot))
	k.checkESP(g, old, slot)
	k.checkSlots(g, map[string]slotState{old: {oldV, "good", true}, slot: {v, "trial", false}})
	g.reboot()
	last := k.bootOnce(t, "final boot")
	if last.slot != slot || last.version != v || last.trial == "" {
		last.g.fatalf("after the last install: booted slot %s %s (trial %q), want slot %s %s on trial", last.slot, last.version, last.trial, slot, v)
	}
	k.checkSlots(last.g, map[string]slotState{old: {oldV, "good", false}, slot: {v, "good", true}})
	last.g.poweroff()
	k.fsck(t)
}

// killRun is the kill test's disk and its tally.
type killRun struct {
	f          *abFixture
	disk, vars string
	kills      int
	seed       int64
	start      time.Time
	boots      int
	readyTotal time.Duration  // power on to ready, all boots
	old, new   int            // boots after a kill into the old slot, the new one
	stages     map[string]int // kills by the install stage the console showed
	cleanups   int            // what keel-init's ESP cleanup removed or set aside
	fsckNote   string         // what fsck.fat found at the end
}

// killBoot is one boot of the disk, up to ready (and blessed, if a
// trial: an install is refused while the running slot is on trial).
type killBoot struct {
	g             *guest
	slot, version string
	trial         string // the try counter's entry; "" if not a trial boot
	ready         time.Duration
	cleanup       []string // what keel-init's ESP cleanup did
}

var (
	// The whole ready line: Expect also matches a line being received.
	readyRE   = regexp.MustCompile(`keel: ready keel-ab (\S+) slot=([ab])$`)
	counterRE = regexp.MustCompile(`health: judging the boot: .*; try counter: (\S+)$`)
)

func (k *killRun) bootOnce(t *testing.T, name string) killBoot {
	t.Helper()
	k.boots++
	g := k.f.boot(t, k.disk, k.vars, name)
	line, err := g.vm.ExpectRegexp(k.f.h.ctx, readyRE, bootTimeout)
	if err != nil {
		g.fatalf("%v", err)
	}
	m := readyRE.FindStringSubmatch(line)
	b := killBoot{g: g, version: m[1], slot: m[2], ready: time.Since(g.start)}
	k.readyTotal += b.ready
	// keel-init's lines before the ready line are complete by now (Expect
	// also matches a line still being received).
	counter := ""
	for _, l := range strings.Split(g.vm.Log(), "\n") {
		if m := counterRE.FindStringSubmatch(l); m != nil {
			counter = m[1]
		}
		if _, what, ok := strings.Cut(l, "ESP cleanup: "); ok {
			if strings.Contains(l, "WARNING") {
				t.Errorf("%s: %s", name, l)
			}
			b.cleanup = append(b.cleanup, what)
		}
	}
	switch counter {
	case "":
		g.fatalf("no try counter line before the ready line")
	case "none":
	default:
		b.trial = counter
		g.expect("health: entry blessed")
	}
	return b
}

// installCmd installs the bundle of version v, attached as a disk.
func installCmd(v string) string {
	dev := map[string]string{"2.0.0": "/dev/vdb", "1.0.0": "/dev/vdc"}[v]
	return "keelctl install --allow-downgrade " + dev
}

func otherOf(s, x, y string) string {
	if s == x {
		return y
	}
	return x
}

// send types cmd into the guest's shell as sh does, without waiting for
// it, and returns the marker its output follows on the console.
func (g *guest) send(cmd string) string {
	g.t.Helper()
	g.n++
	begin, end := fmt.Sprintf("@@begin-%d", g.n), fmt.Sprintf("@@end-%d", g.n)
	split := func(s string) string { return s[:3] + `""` + s[3:] }
	if _, err := fmt.Fprintf(g.in, "echo %s; %s; echo %s $? @@\n", split(begin), cmd, split(end)); err != nil {
		g.fatalf("typing %q: %v", cmd, err)
	}
	return begin
}

// watch waits up to d for the command typed last to end, and returns how
// long it took and its exit status; -1 if it had not ended.
func (g *guest) watch(d time.Duration) (time.Duration, int) {
	g.t.Helper()
	if d <= 0 {
		return 0, -1
	}
	start := time.Now()
	end := regexp.MustCompile(fmt.Sprintf(`^@@end-%d (\d+) @@`, g.n))
	line, err := g.vm.ExpectRegexp(g.f.h.ctx, end, d)
	if errors.Is(err, qemu.ErrTimeout) {
		return 0, -1
	}
	if err != nil {
		g.fatalf("%v", err)
	}
	status, _ := strconv.Atoi(end.FindStringSubmatch(line)[1])
	return time.Since(start), status
}

// installStages are what keelctl install prints as it goes, in order,
// after "not started" (nothing printed yet: keelctl starting, reading the
// bundle's manifest and checking its signature).
var installStages = []struct {
	name string
	re   *regexp.Regexp
}{
	{"not started", nil},
	{"bundle verified", regexp.MustCompile(`^bundle `)},
	{"running system read", regexp.MustCompile(`^running `)},
	{"removing the old entry", regexp.MustCompile(`^  removing slot .'s boot entry`)},
	{"writing rootfs", regexp.MustCompile(`^  writing rootfs `)},
	{"writing kernel", regexp.MustCompile(`^  writing kernel `)},
	{"writing initrd", regexp.MustCompile(`^  writing initrd `)},
	{"writing the entry", regexp.MustCompile(`^  writing slot .'s boot entry`)},
	{"done", regexp.MustCompile(`^installed `)},
}

// Stage numbers: installStages[i+1], -1 for "not started".
const (
	stageRemove = 2
	stageEntry  = 6
	stageDone   = 7
)

var percentRE = regexp.MustCompile(`^\s+(\d+)%`)

// progress is what the console showed of an install when QEMU died.
type progress struct {
	stage  int    // the last stage printed, -1 if none
	label  string // the stage, with the last percentage printed
	status int    // keelctl's exit status, -1 if it had not ended
	out    string
}

// installProgress reads the console log from the line begin on.
func installProgress(log, begin string) progress {
	p := progress{stage: -1, status: -1}
	lines := strings.Split(log, "\n")
	var out []string
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.TrimSpace(lines[i]) == begin {
			out = lines[i+1:]
			break
		}
	}
	pct := ""
	endRE := regexp.MustCompile(`^@@end-\d+ (\d+) @@`)
	var kept []string
	for _, l := range out {
		if noise.MatchString(l) {
			continue
		}
		kept = append(kept, l)
		if m := endRE.FindStringSubmatch(l); m != nil {
			p.status, _ = strconv.Atoi(m[1])
			break
		}
		if m := percentRE.FindStringSubmatch(l); m != nil {
			pct = " " + m[1] + "%"
			continue
		}
		for i, s := range installStages[1:] {
			if s.re.MatchString(l) && i >= p.stage {
				p.stage, pct = i, ""
			}
		}
	}
	p.out = strings.Join(kept, "\n")
	p.label = installStages[p.stage+1].name + pct
	if p.status >= 0 {
		p.label += fmt.Sprintf(" (keelctl exited %d)", p.status)
	}
	return p
}

// leftoverRE are names an interrupted install, bless or cleanup leaves.
var leftoverRE = regexp.MustCompile(`\.(tmp|del|stale)(\.\d+)?$`)

// checkESP lists the ESP after a completed install: the boot loader, the
// two slots' files, their two entries (old blessed, new on trial), and
// keel-init's verdict records; nothing left over.
func (k *killRun) checkESP(g *guest, old, slot string) {
	g.t.Helper()
	out := g.mustSh("cd /run/keel/esp && find . -type f | sort")
	var entries []string
	files := map[string]bool{}
	for _, f := range strings.Fields(out) {
		files[f] = true
		if leftoverRE.MatchString(f) {
			g.t.Errorf("%s: leftover on the ESP after a completed install: %s", g.name, f)
		}
		if strings.HasPrefix(f, "./loader/entries/") {
			entries = append(entries, strings.TrimPrefix(f, "./loader/entries/"))
		}
	}
	for _, s := range []string{old, slot} {
		for _, n := range []string{"vmlinuz", "initrd", "image.json"} {
			if !files["./keel/"+s+"/"+n] {
				g.t.Errorf("%s: no /keel/%s/%s on the ESP", g.name, s, n)
			}
		}
	}
	want := []string{"keel-" + old + ".conf", "keel-" + slot + "+2.conf"}
	if old > slot {
		want[0], want[1] = want[1], want[0]
	}
	if strings.Join(entries, " ") != strings.Join(want, " ") {
		g.t.Errorf("%s: entries %v, want %v:\n%s", g.name, entries, want, out)
	}
	g.t.Logf("%s: the ESP after the last install:\n%s", g.name, out)
}

// slotState is what keelctl status must say of a slot, generations aside:
// how many there were depends on where the kills fell.
type slotState struct {
	version, state string
	booted         bool
}

func (k *killRun) checkSlots(g *guest, want map[string]slotState) {
	g.t.Helper()
	out := g.mustSh("keelctl status --json")
	var st struct {
		Slots []install.SlotStatus `json:"slots"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		g.fatalf("keelctl status --json: %v:\n%s", err, out)
	}
	for _, s := range st.Slots {
		w := want[s.Slot]
		if s.Version != w.version || s.State != w.state || s.Booted != w.booted {
			g.t.Errorf("%s: slot %s is %s %s (booted %v), want %s %s (booted %v)", g.name, s.Slot, s.Version, s.State, s.Booted, w.version, w.state, w.booted)
		}
	}
	if len(st.Slots) != len(want) {
		g.t.Errorf("%s: %d slots, want %d:\n%s", g.name, len(st.Slots), len(want), out)
	}
}

// fsck runs fsck.fat -n on the ESP the kills leave. Lost clusters, the
// FAT's free count and copies that go with them, are what a cut in the
// middle of a write leaves on vfat; so is the dirty bit, which Linux sets
// while the ESP is mounted and, once a cut left it set, never clears
// (byte 65 of the boot sector, where the backup has 0). Anything else
// fails.
func (k *killRun) fsck(t *testing.T) {
	t.Helper()
	f, err := os.Open(k.disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	l, err := install.ReadLayout(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	p, ok := l.Find(disk.LabelESP)
	if !ok {
		t.Fatalf("%s: no ESP", k.disk)
	}
	esp := filepath.Join(k.f.dir, "esp.img")
	b := make([]byte, p.Size)
	if _, err := f.ReadAt(b, p.Start); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(esp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("fsck.fat", "-n", esp).CombinedOutput()
	if err == nil {
		k.fsckNote = "clean"
		return
	}
	var bad []string
	for _, line := range strings.Split(string(out), "\n") {
		if !fsckHarmless.MatchString(line) {
			bad = append(bad, line)
		}
	}
	if len(bad) > 0 {
		t.Errorf("fsck.fat -n on the ESP: %v\n%s", err, out)
		return
	}
	var found []string
	if strings.Contains(string(out), "Dirty bit is set") {
		found = append(found, "the dirty bit")
	}
	if m := regexp.MustCompile(`(?m)^(Reclaimed|Found) \d+ unused clusters?.*$`).Find(out); m != nil {
		found = append(found, string(m))
	}
	k.fsckNote = cmp.Or(strings.Join(found, "; "), "only what a cut leaves (see the log)")
	t.Logf("fsck.fat -n on the ESP: only what a cut leaves:\n%s", out)
}

// fsckHarmless are fsck.fat's lines about lost clusters and what goes with
// them (the free count, FAT copies), about the dirty bit, and its chatter.
var fsckHarmless = regexp.MustCompile(strings.Join([]string{
	`^fsck\.fat `, `^Checking we can access the last sector`, `^/.*: \d+ files, \d+/\d+ clusters$`,
	`^Reclaimed \d+ unused clusters? `, `^Free cluster summary wrong`,
	`^\s+\(\d+ != \d+\)`, `^\s+\d+ vs \d+`, `^  Auto-correcting`, `^Leaving filesystem unchanged`,
	`^FATs differ but appear to be intact`, `^\s*Using first FAT`, `^\d+\) Copy FAT`, `^Perform changes`,
	`^There are differences between boot sector and its backup`, `^Found \d+ unused clusters`, `lost cluster`,
	`^Use first FAT`, `^\s*$`,
	`^Dirty bit is set\. Fs was not properly unmounted`, `^ Automatically removing dirty bit\.$`,
	`^This is mostly harmless\. Differences: \(offset:original/backup\)$`, `^  65:01/00$`, `^  Not automatically fixing this\.$`,
}, "|"))

// report sums the run up, also when it failed: the figures for
// docs/RELIABILITY.md.
func (k *killRun) report(t *testing.T) {
	var by []string
	for _, s := range installStages {
		if n := k.stages[s.name]; n > 0 {
			by = append(by, fmt.Sprintf("%s %d", s.name, n))
		}
	}
	verdict := "0 failures"
	if t.Failed() {
		verdict = fmt.Sprintf("FAILED after %d of %d kills", k.old+k.new, k.kills)
		k.keep(t)
	}
	var avg time.Duration
	if k.boots > 0 {
		avg = k.readyTotal / time.Duration(k.boots)
	}
	t.Logf("kill test, seed %d: %d kills, %d boots in %v (ready %v after power-on on average): %d into the old slot, %d into the new one; %s\n"+
		"  kills by install stage: %s\n  ESP cleanup actions at boot: %d; fsck.fat -n on the ESP at the end: %s",
		k.seed, k.kills, k.boots, time.Since(k.start).Round(time.Second), avg.Round(time.Second), k.old, k.new, verdict,
		strings.Join(by, ", "), k.cleanups, cmp.Or(k.fsckNote, "not run"))
}

// keep copies the disk and its EFI variables out of the test's temporary
// directory when the test failed, for a look at what the kill left.
func (k *killRun) keep(t *testing.T) {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("keel-kill-%d", k.seed))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("keeping the disk: %v", err)
		return
	}
	for _, p := range []string{k.disk, k.vars} {
		if out, err := exec.Command("cp", "--sparse=always", p, dir).CombinedOutput(); err != nil {
			t.Logf("keeping %s: %v: %s", p, err, out)
			return
		}
	}
	t.Logf("the disk and its EFI variables are kept in %s", dir)
}

// killParams reads KEEL_KILLS and KEEL_KILL_SEED.
func killParams(t *testing.T) (kills int, seed int64) {
	t.Helper()
	kills = 10
	if s := os.Getenv("KEEL_KILLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("KEEL_KILLS=%q: want a number of kills, 1 or more", s)
		}
		kills = n
	}
	seed = time.Now().UnixNano()
	if s := os.Getenv("KEEL_KILL_SEED"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("KEEL_KILL_SEED=%q: want an integer", s)
		}
		seed = n
	}
	return kills, seed
}

// killTimeout is a go test -timeout for a run of n kills: a minute each
// on a loaded machine, and the builds.
func killTimeout(n int) time.Duration { return time.Duration(n+20) * time.Minute }

// TestInstallProgress reads what keelctl install prints (progressPrinter)
// as TestKill does after a kill.
func TestInstallProgress(t *testing.T) {
	const begin = "@@begin-3"
	out := []string{
		"bundle keel-ab 2.0.0 (build 1a2b), signed by key 0c0ffee, 12.3 MiB",
		"running keel-ab 1.0.0 from slot a",
		"  removing slot b's boot entry",
		"  writing rootfs to slot b",
		"      0%  0 B of 3.1 MiB",
		"[app] keel-ab: app 1.0.0 up",
		"     50%  1.6 MiB of 3.1 MiB",
		"  writing kernel to /keel/b/vmlinuz",
		"    100%  7.9 MiB of 7.9 MiB",
		"  writing initrd to /keel/b/initrd",
		"keel-init: health: boot is good",
		"  writing slot b's boot entry",
		"installed keel-ab 2.0.0 into slot b: entry keel-b+2.conf, generation 2; reboot to try it",
	}
	log := func(n int, end ...string) string {
		return strings.Join(append(append([]string{"@@end-2 0 @@", begin}, out[:n]...), end...), "\n")
	}
	for _, c := range []struct {
		log    string
		stage  int
		label  string
		status int
	}{
		{"@@end-2 0 @@\n@@be", -1, "not started", -1},
		{log(0), -1, "not started", -1},
		{log(1), 0, "bundle verified", -1},
		{log(3), stageRemove, "removing the old entry", -1},
		{log(5), 3, "writing rootfs 0%", -1},
		{log(7), 3, "writing rootfs 50%", -1},
		{log(8), 4, "writing kernel", -1},
		{log(9), 4, "writing kernel 100%", -1},
		{log(11), 5, "writing initrd", -1},
		{log(12), stageEntry, "writing the entry", -1},
		{log(13), stageDone, "done", -1},
		{log(13, "@@end-3 0 @@"), stageDone, "done (keelctl exited 0)", 0},
		{log(2, "keelctl: install /dev/vdb: no space", "@@end-3 1 @@"), 1, "running system read (keelctl exited 1)", 1},
	} {
		p := installProgress(c.log, begin)
		if p.stage != c.stage || p.label != c.label || p.status != c.status {
			t.Errorf("%q:\ngot stage %d %q status %d, want %d %q %d", c.log, p.stage, p.label, p.status, c.stage, c.label, c.status)
		}
	}
}
