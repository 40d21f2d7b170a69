package main

import (
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"keel/bootloader"
	"keel/bootloader/espdir"
	"keel/bootloader/systemdboot"
	"keel/image/verdict"
	"keel/rootfs/services"
)

// efivarsDir is where efivarfs shows the EFI variables.
const efivarsDir = "/sys/firmware/efi/efivars"

// loaderBootCountPathVar is systemd-boot's variable naming the entry file
// that holds this boot's try counter ("\loader\entries\keel-b+2-1.conf");
// it is absent when the booted entry has no counter (DESIGN §4).
const loaderBootCountPathVar = "LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

// blesser records the verdict where the boot loader and keelctl see it.
type blesser interface {
	// markGood blesses the entry LoaderBootCountPath names.
	markGood(countPath string) error
	// record writes the verdict on the trial boot countPath names
	// (image/verdict) and says where.
	record(countPath, result, stage, reason string) (string, error)
}

// espBlesser renames the booted entry on the ESP (DESIGN §4): good drops
// the counter (keel-b+2-1.conf → keel-b.conf), as systemd-bless-boot does.
// A bad boot is not renamed: the try counter, decremented by systemd-boot
// before each boot, decides when the loader falls back, so update.tries
// means the same for a boot judged bad and for one that hangs.
type espBlesser struct{}

func (espBlesser) markGood(countPath string) error {
	return markEntry(countPath, systemdboot.Entries{}.MarkGood)
}

func (espBlesser) record(countPath, result, stage, reason string) (string, error) {
	esp, err := mountESP()
	if err != nil {
		return "", err
	}
	r, err := recordVerdictOn(esp, countPath, result, stage, reason)
	return verdict.Path(r.Slot), err
}

// trialOf reads LoaderBootCountPath ("\loader\entries\keel-b+1-1.conf"):
// the entry's file name, its slot and its counter.
func trialOf(countPath string) (file, slot string, left, done int, err error) {
	file = path.Base(strings.ReplaceAll(countPath, "\\", "/"))
	slot, left, done, counted, ok := systemdboot.ParseName(file)
	if !ok || !counted {
		return "", "", 0, 0, fmt.Errorf("LoaderBootCountPath %q does not name a counted keel entry", countPath)
	}
	return file, slot, left, done, nil
}

// recordVerdictOn writes the verdict on the trial boot countPath names as
// its slot's verdict.json, for the generation of the entry counted.
func recordVerdictOn(esp bootloader.DirESP, countPath, result, stage, reason string) (verdict.Record, error) {
	file, slot, left, done, err := trialOf(countPath)
	if err != nil {
		return verdict.Record{}, err
	}
	es, err := systemdboot.Entries{}.Entries(esp)
	if err != nil {
		return verdict.Record{}, err
	}
	r := verdict.Record{Slot: slot, Entry: file, Boot: done, TriesLeft: left, Result: result, Stage: stage, Reason: reason}
	for _, e := range es {
		if e.File == file {
			r.Generation = e.Generation
		}
	}
	if r.Generation == 0 {
		return r, fmt.Errorf("recording the verdict: the booted entry %s is not on the ESP", file)
	}
	return r, verdict.Write(esp, r)
}

// markEntry renames the entry LoaderBootCountPath names
// ("\loader\entries\keel-b+2-1.conf"). The slot comes from that name, so
// the entry changed is the one systemd-boot counted this boot with.
func markEntry(countPath string, mark func(bootloader.DirESP, string) error) error {
	esp, err := mountESP()
	if err != nil {
		return err
	}
	return markEntryOn(esp, countPath, mark)
}

func markEntryOn(esp bootloader.DirESP, countPath string, mark func(bootloader.DirESP, string) error) error {
	file := path.Base(strings.ReplaceAll(countPath, "\\", "/"))
	slot, _, _, _, ok := systemdboot.ParseName(file)
	if !ok {
		return fmt.Errorf("LoaderBootCountPath %q does not name a keel entry", countPath)
	}
	if _, err := esp.ReadFile(path.Join(systemdboot.EntriesDir, file)); err != nil {
		return fmt.Errorf("the booted entry %s: %w", file, err)
	}
	return mark(esp, slot)
}

// mountESP mounts the ESP of the disk this root runs from at
// /run/keel/esp, with dirsync, as keelctl does.
func mountESP() (bootloader.DirESP, error) {
	dev, err := espdir.FindDevice("/sys", "/")
	if err != nil {
		return nil, fmt.Errorf("finding the ESP: %w", err)
	}
	if err := espdir.Mount(dev.ESP, espdir.MountPoint); err != nil {
		return nil, err
	}
	return espdir.Dir{Root: espdir.MountPoint}, nil
}

// cleanESP removes what an interrupted install, bless or rollback left on
// the ESP (temporary files, empty or duplicate entries), once per boot
// before anything else changes it. A system without a keel ESP is fine.
func cleanESP(con *console) {
	esp, err := mountESP()
	if err != nil {
		con.logf("ESP: %v; leftovers of an interrupted update are not cleaned", err)
		return
	}
	done, err := systemdboot.Entries{}.Cleanup(esp)
	for _, d := range done {
		con.logf("ESP cleanup: %s", d)
	}
	if err != nil {
		con.logf("WARNING: ESP cleanup: %v", err)
	}
}

// healthJudge connects a healthTracker to the supervisor's events and a
// timer, and acts once on the outcome. On a trial boot it records the
// verdict (image/verdict) and then either blesses the entry or asks for a
// reboot, leaving the fallback to the loader's try counter. A boot without
// a try counter is never rebooted for its health: that would loop forever.
type healthJudge struct {
	mu        sync.Mutex
	tracker   *healthTracker
	timer     *time.Timer
	countPath string // "" unless this is a trial boot
	blesser   blesser
	logf      func(string, ...any)
	reboot    func() // asks PID 1 for a reboot
	acted     bool
}

// newHealthJudge starts judging now: the deadline runs from here.
func newHealthJudge(h services.Health, countPath string, b blesser, logf func(string, ...any), reboot func()) *healthJudge {
	j := &healthJudge{
		tracker:   newHealthTracker(h, time.Now()),
		countPath: countPath,
		blesser:   b,
		logf:      logf,
		reboot:    reboot,
	}
	j.decide()
	return j
}

// observe is the supervisor's notify hook (its goroutine); the timer calls
// decide from another, hence the lock.
func (j *healthJudge) observe(e event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.tracker.observe(e, time.Now())
	j.decideLocked()
}

func (j *healthJudge) decide() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.decideLocked()
}

// stop ends judging: the system is going down. A trial boot left without
// a verdict has used one of its tries all the same.
func (j *healthJudge) stop() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.timer != nil {
		j.timer.Stop()
	}
	if !j.acted && j.countPath != "" {
		j.logf("health: shutting down before a verdict; this trial boot counts as one of the entry's tries")
	}
	j.acted = true
}

func (j *healthJudge) decideLocked() {
	if j.acted {
		return
	}
	if j.timer != nil {
		j.timer.Stop()
		j.timer = nil
	}
	v := j.tracker.check(time.Now())
	if v == undecided {
		if at, ok := j.tracker.next(); ok {
			j.timer = time.AfterFunc(time.Until(at), j.decide)
		}
		return
	}
	j.acted = true
	entry := j.countPath
	if entry == "" {
		entry = "none (no try counter: not a trial boot)"
	}
	switch v {
	case healthy:
		j.logf("health: boot is good: %s; entry %s", j.tracker.reason, entry)
		if j.countPath == "" {
			return
		}
		j.recordLocked(verdict.Good)
		if err := j.blesser.markGood(j.countPath); err != nil {
			j.logf("health: marking the boot good: %v", err)
		} else {
			j.logf("health: entry blessed: the loader keeps booting this slot")
		}
	case unhealthy:
		j.logf("health: boot is BAD: %s; entry %s", j.tracker.reason, entry)
		if j.countPath == "" {
			j.logf("health: not a trial boot: staying up")
			return
		}
		j.recordLocked(verdict.Bad)
		j.logf("health: rebooting: %s", fallbackNote(j.countPath))
		j.reboot()
	}
}

func (j *healthJudge) recordLocked(result string) {
	where, err := j.blesser.record(j.countPath, result, verdict.StageHealth, j.tracker.reason)
	if err != nil {
		j.logf("health: recording the verdict: %v", err)
		return
	}
	j.logf("health: verdict recorded in %s", where)
}

// fallbackNote says what the loader does after a failed trial boot.
func fallbackNote(countPath string) string {
	_, _, left, _, err := trialOf(countPath)
	switch {
	case err != nil:
		return "the boot loader's try counter decides what boots next"
	case left == 0:
		return "no tries left: the boot loader falls back to the other slot"
	case left == 1:
		return "1 try left for this entry before the boot loader falls back"
	}
	return fmt.Sprintf("%d tries left for this entry before the boot loader falls back", left)
}
