package main

import (
	"fmt"
	"sync"
	"time"

	"keel/bootloader"
	"keel/bootloader/espdir"
	"keel/image/verdict"
	"keel/rootfs/services"
)

// efivarsDir is where efivarfs shows the EFI variables.
const efivarsDir = bootloader.EFIVarsDir

// blesser records the verdict where the boot loader and keelctl see it.
type blesser interface {
	// markGood blesses the entry that counted the trial boot t.
	markGood(t bootloader.Trial) error
	// record writes the verdict on the trial boot t (image/verdict) and
	// says where.
	record(t bootloader.Trial, result, stage, reason string) (string, error)
}

// espBlesser changes the booted entry through its boot loader (DESIGN §4):
// good drops the counter (for systemd-boot keel-b+2-1.conf → keel-b.conf,
// as systemd-bless-boot does). A bad boot is not marked: the try counter,
// decremented by the loader before each trial boot, decides when it falls
// back, so update.tries means the same for a boot judged bad and for one
// that hangs.
type espBlesser struct{ loader bootloader.Manager }

func (b espBlesser) markGood(t bootloader.Trial) error {
	esp, err := mountESP()
	if err != nil {
		return err
	}
	return bootloader.BlessTrial(b.loader, esp, t)
}

func (b espBlesser) record(t bootloader.Trial, result, stage, reason string) (string, error) {
	esp, err := mountESP()
	if err != nil {
		return "", err
	}
	r, err := recordVerdictOn(esp, b.loader, t, result, stage, reason)
	return verdict.Path(r.Slot), err
}

// recordVerdictOn writes the verdict on the trial boot t as its slot's
// verdict.json, for the generation of the entry counted.
func recordVerdictOn(esp bootloader.DirESP, loader bootloader.Manager, t bootloader.Trial, result, stage, reason string) (verdict.Record, error) {
	es, err := loader.Entries(esp)
	if err != nil {
		return verdict.Record{}, err
	}
	r := verdict.Record{Slot: t.Slot, Entry: t.Entry, Boot: t.Done, TriesLeft: t.Left, Result: result, Stage: stage, Reason: reason}
	for _, e := range es {
		if e.File == t.Entry && e.Slot == t.Slot {
			r.Generation = e.Generation
		}
	}
	if r.Generation == 0 {
		return r, fmt.Errorf("recording the verdict: the booted entry %s is not on the ESP", t.Entry)
	}
	return r, verdict.Write(esp, r)
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
	loader, err := bootloader.ManagerOn(esp)
	if err != nil {
		con.logf("WARNING: ESP: %v; leftovers of an interrupted update are not cleaned", err)
		return
	}
	done, err := loader.Cleanup(esp)
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
	mu      sync.Mutex
	tracker *healthTracker
	timer   *time.Timer
	trial   *bootloader.Trial // nil unless this is a trial boot
	blesser blesser
	logf    func(string, ...any)
	reboot  func() // asks PID 1 for a reboot
	acted   bool
}

// newHealthJudge starts judging now: the deadline runs from here.
func newHealthJudge(h services.Health, trial *bootloader.Trial, b blesser, logf func(string, ...any), reboot func()) *healthJudge {
	j := &healthJudge{
		tracker: newHealthTracker(h, time.Now()),
		trial:   trial,
		blesser: b,
		logf:    logf,
		reboot:  reboot,
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
	if !j.acted && j.trial != nil {
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
	entry := "none (no try counter: not a trial boot)"
	if j.trial != nil {
		entry = j.trial.Entry
	}
	switch v {
	case healthy:
		j.logf("health: boot is good: %s; entry %s", j.tracker.reason, entry)
		if j.trial == nil {
			return
		}
		j.recordLocked(verdict.Good)
		if err := j.blesser.markGood(*j.trial); err != nil {
			j.logf("health: marking the boot good: %v", err)
		} else {
			j.logf("health: entry blessed: the loader keeps booting this slot")
		}
	case unhealthy:
		j.logf("health: boot is BAD: %s; entry %s", j.tracker.reason, entry)
		if j.trial == nil {
			j.logf("health: not a trial boot: staying up")
			return
		}
		j.recordLocked(verdict.Bad)
		j.logf("health: rebooting: %s", fallbackNote(*j.trial))
		j.reboot()
	}
}

func (j *healthJudge) recordLocked(result string) {
	where, err := j.blesser.record(*j.trial, result, verdict.StageHealth, j.tracker.reason)
	if err != nil {
		j.logf("health: recording the verdict: %v", err)
		return
	}
	j.logf("health: verdict recorded in %s", where)
}

// fallbackNote says what the loader does after a failed trial boot.
func fallbackNote(t bootloader.Trial) string {
	switch t.Left {
	case 0:
		return "no tries left: the boot loader falls back to the other slot"
	case 1:
		return "1 try left for this entry before the boot loader falls back"
	}
	return fmt.Sprintf("%d tries left for this entry before the boot loader falls back", t.Left)
}
