// Package updatetest runs keel test: it boots a copy of a device's disk in
// QEMU, takes it through a plan's updates, faults, fallbacks and
// rollbacks, and reports every step with its timing and, where an
// expectation did not hold, what was expected, what was seen and the
// console around it. The guest side is keel-init's test agent (package
// wire): nothing in the image under test is changed but the copy's boot
// entries, which get keel.test= on their command line.
package updatetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"keel/image/install"
	"keel/image/updatetest/wire"
)

// Image is one of a plan's images, made ready by the caller (keel test
// builds profiles): a disk image to boot, or an update bundle to install.
type Image struct {
	Disk   string // a raw disk image (the plan's boot image)
	Bundle string // a signed update bundle
	// Product and Version are the bundle's (manifest name and version).
	Product, Version string
	// Files is the number of the bundle's artifacts written to the ESP.
	Files int
}

// Options are how Run runs.
type Options struct {
	// Dir is where the disk's copy and the consoles go; it is created.
	Dir string
	// Accel is QEMU's accelerator: tcg (the default here), kvm or auto.
	Accel string
	// BootTimeout bounds each boot's power-on to its hello, and each wait
	// for an event (default 3 minutes: TCG on a busy machine).
	BootTimeout time.Duration
	// Seed drives cut@install:random when the plan has none.
	Seed int64
	// Progress, if set, hears each step as it ends.
	Progress func(StepResult)
}

// ControlPort is the guest's serial port keel test talks on: the second
// one, QEMU's second -serial.
const ControlPort = "ttyS1"

// watchdog is how long a hung boot is left before keel test resets it, as
// a device's watchdog would.
const watchdog = 2 * time.Second

// Run runs plan on images. The error is for what kept it from running at
// all (a disk that cannot be copied); a failed expectation is in the
// report.
func Run(ctx context.Context, plan *Plan, images map[string]*Image, o Options) (*Report, error) {
	if o.BootTimeout <= 0 {
		o.BootTimeout = 3 * time.Minute
	}
	if o.Accel == "" {
		o.Accel = "tcg"
	}
	start := time.Now()
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	// Leftovers of an earlier run in the same directory would mix in.
	_ = os.RemoveAll(filepath.Join(o.Dir, "console"))
	bootImg, ok := images[plan.Boot]
	if !ok || bootImg.Disk == "" {
		return nil, fmt.Errorf("boot: %q is not a disk image", plan.Boot)
	}
	m := &machine{disk: filepath.Join(o.Dir, "disk.img"), vars: filepath.Join(o.Dir, "vars.fd"), dir: o.Dir, accel: o.Accel}
	// A unix socket's path has room for 107 bytes: not under any Dir.
	var err error
	if m.sockDir, err = os.MkdirTemp("", "keel-test-"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(m.sockDir)
	if err := prepareDisk(bootImg.Disk, m.disk); err != nil {
		return nil, err
	}
	_ = os.Remove(m.vars)
	devs := map[string]string{}
	names := make([]string, 0, len(images))
	for n := range images {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		img := images[n]
		if img.Bundle == "" {
			continue
		}
		d := filepath.Join(o.Dir, "bundle-"+Slug(n)+".img")
		if err := copyPadded(img.Bundle, d); err != nil {
			return nil, err
		}
		devs[n] = "/dev/vd" + string(rune('b'+len(m.bundles)))
		m.bundles = append(m.bundles, d)
	}
	seed := o.Seed
	if plan.Seed != nil {
		seed = *plan.Seed
	}
	r := &runner{ctx: ctx, plan: plan, images: images, devs: devs, o: o, m: m, seed: seed,
		rep: &Report{Passed: true, Dir: o.Dir}}
	r.run()
	r.rep.Seconds = time.Since(start).Seconds()
	return r.rep, nil
}

type runner struct {
	ctx    context.Context
	plan   *Plan
	images map[string]*Image
	devs   map[string]string // image name → the guest's device of its bundle
	o      Options
	m      *machine
	rep    *Report
	seed   int64
	cur    *boot  // the running boot; nil while the machine is off
	group  string // the plan step being run
	failed bool
}

// failure is an expectation that did not hold.
type failure struct {
	msg, expected, seen string
}

func (f *failure) Error() string { return f.msg }

func expected(msg, want, seen string) error { return &failure{msg, want, seen} }

func (r *runner) run() {
	r.group = "start: boot " + r.plan.Boot
	r.step("power on", func() (string, error) {
		if err := r.powerOn("boot "+r.plan.Boot, nil); err != nil {
			return "", err
		}
		return r.ready()
	})
	for i, s := range r.plan.Steps {
		r.group = s.title(i)
		if r.failed {
			r.rep.Steps = append(r.rep.Steps, StepResult{Plan: r.group, Name: "not run", Status: Skipped, Detail: "an earlier step failed"})
			continue
		}
		switch {
		case s.Install != "":
			r.install(i, s)
		case s.Rollback:
			r.rollback()
		case s.Reboot:
			r.step("reboot", func() (string, error) {
				if err := r.reboot("reboot", nil); err != nil {
					return "", err
				}
				return r.ready()
			})
		case s.Run != "":
			r.runCmd(s)
		}
		if !r.failed && !s.Expect.empty() {
			r.step("expectations", func() (string, error) { return r.check(s.Expect) })
		}
	}
	if r.cur != nil {
		if err := r.cur.down(r.ctx, wire.OpPoweroff, time.Minute); err != nil {
			r.cur.kill()
		}
		r.cur = nil
	}
}

func (e Expect) empty() bool {
	return e.Slot == "" && e.Version == "" && e.Entry == "" && len(e.Entries) == 0
}

// step runs one reported step; after a failure nothing more runs.
func (r *runner) step(name string, f func() (string, error)) bool {
	if r.failed {
		return false
	}
	start := time.Now()
	detail, err := f()
	s := StepResult{Plan: r.group, Name: name, Status: Passed, Seconds: time.Since(start).Seconds(), Detail: detail}
	if r.cur != nil {
		s.Console = r.cur.console
	}
	if err != nil {
		s.Status = Failed
		f := &Failure{Message: err.Error()}
		var fe *failure
		if errors.As(err, &fe) {
			f.Expected, f.Seen = fe.expected, fe.seen
		}
		f.ConsoleLines = r.cur.tail(20)
		s.Failure = f
		r.failed, r.rep.Passed = true, false
		if r.cur != nil {
			r.cur.kill()
			r.cur = nil
		}
	}
	r.rep.Steps = append(r.rep.Steps, s)
	if r.o.Progress != nil {
		r.o.Progress(s)
	}
	return err == nil
}

func (r *runner) powerOn(name string, fault func(wire.Hello) string) error {
	b, err := r.m.powerOn(r.ctx, name, fault, r.o.BootTimeout)
	r.cur = b
	return err
}

// reboot reboots the running machine cleanly and powers it on again.
func (r *runner) reboot(name string, fault func(wire.Hello) string) error {
	if r.cur != nil {
		if err := r.cur.down(r.ctx, wire.OpReboot, r.o.BootTimeout); err != nil {
			return err
		}
		r.cur = nil
	}
	return r.powerOn(name, fault)
}

func (r *runner) ready() (string, error) {
	if _, err := r.cur.event(r.ctx, wire.EventReady, r.o.BootTimeout); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s, ready %.1fs after power-on", describe(r.cur.hello), time.Since(r.cur.start).Seconds()), nil
}

func describe(h wire.Hello) string {
	s := fmt.Sprintf("slot %s: %s %s", h.Slot, h.Name, h.Version)
	if h.Trial != "" {
		s += ", trial " + h.Trial
	}
	return s
}

func other(slot string) string {
	if slot == "a" {
		return "b"
	}
	return "a"
}

// expectBoot checks the running boot is slot's, of version, and a trial
// or not.
func (r *runner) expectBoot(slot, version string, trial bool) error {
	h := r.cur.hello
	want := fmt.Sprintf("slot %s, version %s, %s", slot, version, map[bool]string{true: "a trial boot", false: "not a trial boot"}[trial])
	seen := fmt.Sprintf("slot %s, version %s, %s", h.Slot, h.Version, map[bool]string{true: "a trial boot (" + h.Trial + ")", false: "not a trial boot"}[h.Trial != ""])
	if h.Slot != slot || h.Version != version || (h.Trial != "") != trial {
		return expected("booted the wrong slot", want, seen)
	}
	return nil
}

var installedRE = regexp.MustCompile(`^installed .* into slot ([ab]): `)

func (r *runner) install(i int, s Step) {
	img := r.images[s.Install]
	if img == nil || img.Bundle == "" {
		r.step("install", func() (string, error) {
			return "", fmt.Errorf("%s is not an update bundle", s.Install)
		})
		return
	}
	prev := r.cur.hello
	target := other(prev.Slot)
	argv := []string{"keelctl", "install", r.devs[s.Install]}

	if cut, isCut, _ := parseCut(s.Fault); isCut {
		points := CutPoints(img.Files)
		at := cut.At
		how := fmt.Sprintf("write %d", at)
		if at == 0 {
			at = drawCut(r.seed, i, points)
			how = fmt.Sprintf("write %d (drawn from seed %d)", at, r.seed)
			r.rep.Seed = r.seed
		}
		r.step(fmt.Sprintf("install, cut at write %d of %d", at, points), func() (string, error) {
			if at > points {
				return "", fmt.Errorf("cut@install:%d: an install of %s has %d cut points", at, s.Install, points)
			}
			n, where := 0, ""
			out, code, err := r.cur.exec(r.ctx, argv, r.o.BootTimeout, func(l string) bool {
				if isCutPoint(l) {
					n++
					if n == at {
						where = strings.TrimSpace(l)
						r.cur.kill()
						return true
					}
				}
				return false
			})
			if where == "" {
				if err == nil {
					err = fmt.Errorf("the install ended (exit status %d) after %d of %d cut points:\n%s", code, n, points, strings.Join(out, "\n"))
				}
				return "", err
			}
			r.cur = nil
			return fmt.Sprintf("power cut at %s: after %q", how, where), nil
		})
		r.step("boot after the cut", func() (string, error) {
			if err := r.powerOn("after the cut", nil); err != nil {
				return "", err
			}
			if err := r.expectBoot(prev.Slot, prev.Version, false); err != nil {
				return "", err
			}
			return r.ready()
		})
	}

	var tries int
	ok := r.step("installed", func() (string, error) {
		out, code, err := r.cur.exec(r.ctx, argv, r.o.BootTimeout, nil)
		if err != nil {
			return "", err
		}
		last := ""
		if len(out) > 0 {
			last = out[len(out)-1]
		}
		if code != 0 {
			return "", expected(fmt.Sprintf("keelctl install failed (exit status %d)", code), "exit status 0", strings.Join(out, "\n"))
		}
		m := installedRE.FindStringSubmatch(last)
		if m == nil || m[1] != target {
			return "", expected("keelctl install did not say it installed into the other slot", "installed … into slot "+target, last)
		}
		// cut@install counts on these lines: a keelctl that prints
		// others would make its cut points mean other places.
		n := 0
		for _, l := range out {
			if isCutPoint(l) {
				n++
			}
		}
		if want := CutPoints(img.Files); n != want {
			return "", expected("keelctl install printed other progress lines than keel test counts as cut points", fmt.Sprintf("%d cut points", want), fmt.Sprintf("%d:\n%s", n, strings.Join(out, "\n")))
		}
		// The tries the loader will give it, as the loader's entry
		// says (systemd-boot's name, GRUB's and U-Boot's counter file).
		st, err := r.status()
		if err != nil {
			return "", err
		}
		if e := st[target]; e.State != "trial" || e.TriesLeft < 1 {
			return "", expected("the installed slot's entry is not a trial", "slot "+target+" trial", fmt.Sprintf("slot %s %s, %d tries left", target, e.State, e.TriesLeft))
		}
		tries = st[target].TriesLeft
		return last, nil
	})
	if !ok {
		return
	}
	switch s.Fault {
	case FaultFail, FaultHang:
		r.trials(s.Fault, img, prev, tries)
		return
	}
	r.step("trial boot", func() (string, error) {
		if err := r.reboot("trial "+s.Install, nil); err != nil {
			return "", err
		}
		if err := r.expectBoot(target, img.Version, true); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s, %.1fs after power-on", describe(r.cur.hello), r.cur.greeted.Seconds()), nil
	})
	r.step("health verdict", func() (string, error) {
		v, err := r.cur.event(r.ctx, wire.EventVerdict, r.o.BootTimeout)
		if err != nil {
			return "", err
		}
		if v.Result != "good" {
			return "", expected("the trial boot was judged bad", "good", v.Result+": "+v.Detail)
		}
		return fmt.Sprintf("good (%s), %.1fs after power-on", v.Detail, time.Since(r.cur.start).Seconds()), nil
	})
	r.step("blessed", func() (string, error) {
		if _, err := r.cur.event(r.ctx, wire.EventBlessed, r.o.BootTimeout); err != nil {
			return "", err
		}
		st, err := r.status()
		if err != nil {
			return "", err
		}
		if got := st[target]; got.State != "good" {
			return "", expected("the trial entry was not blessed", "slot "+target+" good", "slot "+target+" "+got.State)
		}
		return fmt.Sprintf("slot %s's entry %s is good", target, st[target].Entry), nil
	})
	r.step("still booted after a reboot", func() (string, error) {
		if err := r.reboot("after "+s.Install, nil); err != nil {
			return "", err
		}
		if err := r.expectBoot(target, img.Version, false); err != nil {
			return "", err
		}
		return r.ready()
	})
}

// trials follows an install whose trial boots fail or hang until the
// loader falls back: it must, within the entry's tries.
func (r *runner) trials(fault string, img *Image, prev wire.Hello, tries int) {
	target := other(prev.Slot)
	for k := 1; !r.failed; k++ {
		trial := false
		choose := func(h wire.Hello) string {
			if h.Slot == target && h.Trial != "" {
				trial = true
				return fault
			}
			return ""
		}
		fellBack := false
		name := fmt.Sprintf("boot %d after the install", k)
		r.step(name, func() (string, error) {
			var err error
			if r.cur != nil {
				err = r.reboot(name, choose)
			} else {
				err = r.powerOn(name, choose)
			}
			if err != nil {
				return "", err
			}
			if !trial {
				fellBack = true
				return describe(r.cur.hello) + ": not a trial, the fallback", nil
			}
			if k > tries {
				return "", expected("still on trial after the entry's tries", fmt.Sprintf("a fallback to slot %s after %d trial boots", prev.Slot, tries), describe(r.cur.hello))
			}
			if fault == FaultHang {
				if _, err := r.cur.event(r.ctx, wire.EventHung, r.o.BootTimeout); err != nil {
					return "", err
				}
				time.Sleep(watchdog)
				r.cur.kill()
				r.cur = nil
				return fmt.Sprintf("trial %d of %d hung, reset after %v as a watchdog would", k, tries, watchdog), nil
			}
			v, err := r.cur.event(r.ctx, wire.EventVerdict, r.o.BootTimeout)
			if err != nil {
				return "", err
			}
			if v.Result != "bad" {
				return "", expected("a boot whose required services fail was not judged bad", "bad", v.Result+": "+v.Detail)
			}
			if err := r.cur.exited(r.ctx, r.o.BootTimeout); err != nil {
				return "", err
			}
			r.cur = nil
			return fmt.Sprintf("trial %d of %d judged bad (%s), rebooted", k, tries, v.Detail), nil
		})
		if fellBack || r.failed {
			break
		}
	}
	r.step("fell back", func() (string, error) {
		if err := r.expectBoot(prev.Slot, prev.Version, false); err != nil {
			return "", err
		}
		detail, err := r.ready()
		if err != nil {
			return "", err
		}
		st, err := r.status()
		if err != nil {
			return "", err
		}
		if got := st[target].State; got != "bad" {
			return "", expected("the failed slot's entry is not bad", "slot "+target+" bad", "slot "+target+" "+got)
		}
		return detail + "; slot " + target + "'s entry is bad", nil
	})
}

func (r *runner) rollback() {
	prev := r.cur.hello
	var want install.SlotStatus
	r.step("rolled back", func() (string, error) {
		st, err := r.status()
		if err != nil {
			return "", err
		}
		want = st[other(prev.Slot)]
		out, code, err := r.cur.exec(r.ctx, []string{"keelctl", "rollback"}, r.o.BootTimeout, nil)
		if err != nil {
			return "", err
		}
		if code != 0 {
			return "", expected(fmt.Sprintf("keelctl rollback failed (exit status %d)", code), "exit status 0", strings.Join(out, "\n"))
		}
		return oneLine(strings.Join(out, "\n"), 160), nil
	})
	r.step("booted the other slot", func() (string, error) {
		if err := r.reboot("after rollback", nil); err != nil {
			return "", err
		}
		if err := r.expectBoot(want.Slot, want.Version, false); err != nil {
			return "", err
		}
		return r.ready()
	})
}

func (r *runner) runCmd(s Step) {
	r.step("ran", func() (string, error) {
		out, code, err := r.cur.exec(r.ctx, []string{"/bin/sh", "-c", s.Run}, r.o.BootTimeout, nil)
		if err != nil {
			return "", err
		}
		text := strings.Join(out, "\n")
		want := 0
		if s.Expect.Exit != nil {
			want = *s.Expect.Exit
		}
		if code != want {
			return "", expected(fmt.Sprintf("%q exited with status %d", s.Run, code), fmt.Sprintf("exit status %d", want), fmt.Sprintf("exit status %d: %s", code, text))
		}
		if s.Expect.Output != "" && !strings.Contains(text, s.Expect.Output) {
			return "", expected(fmt.Sprintf("%q did not print what was expected", s.Run), "output containing "+strconv.Quote(s.Expect.Output), strconv.Quote(text))
		}
		return fmt.Sprintf("exit status %d: %s", code, oneLine(text, 160)), nil
	})
}

// status is keelctl status --json, by slot.
func (r *runner) status() (map[string]install.SlotStatus, error) {
	out, code, err := r.cur.execQuiet(r.ctx, []string{"keelctl", "status", "--json"}, true, r.o.BootTimeout, nil)
	if err != nil {
		return nil, err
	}
	if code != 0 {
		return nil, fmt.Errorf("keelctl status: exit status %d: %s", code, strings.Join(out, "\n"))
	}
	var st struct {
		Slots []install.SlotStatus `json:"slots"`
	}
	if err := json.Unmarshal([]byte(strings.Join(out, "\n")), &st); err != nil {
		return nil, fmt.Errorf("keelctl status --json: %w", err)
	}
	m := map[string]install.SlotStatus{}
	for _, s := range st.Slots {
		m[s.Slot] = s
	}
	return m, nil
}

// check holds the running system to e.
func (r *runner) check(e Expect) (string, error) {
	h := r.cur.hello
	var want, seen []string
	mismatch := false
	add := func(what, w, s string) {
		if w == "" {
			return
		}
		want, seen = append(want, what+" "+w), append(seen, what+" "+s)
		if w != s {
			mismatch = true
		}
	}
	add("slot", e.Slot, h.Slot)
	add("version", e.Version, h.Version)
	if e.Entry != "" || len(e.Entries) > 0 {
		st, err := r.status()
		if err != nil {
			return "", err
		}
		add("entry", e.Entry, st[h.Slot].State)
		slots := make([]string, 0, len(e.Entries))
		for s := range e.Entries {
			slots = append(slots, s)
		}
		sort.Strings(slots)
		for _, s := range slots {
			state := st[s].State
			if state == "" {
				state = "none"
			}
			add("slot "+s, e.Entries[s], state)
		}
	}
	if mismatch {
		return "", expected("an expectation did not hold", strings.Join(want, ", "), strings.Join(seen, ", "))
	}
	return strings.Join(seen, ", "), nil
}

// oneLine is s on one line ("; " between its lines), cut at max bytes.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(s), "\n", " ; ")), " ")
	s = strings.ReplaceAll(s, " ; ", "; ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}
