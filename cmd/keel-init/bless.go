package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unicode/utf16"

	"keel/rootfs/services"
)

// efivarsDir is where efivarfs shows the EFI variables.
const efivarsDir = "/sys/firmware/efi/efivars"

// loaderBootCountPathVar is systemd-boot's variable naming the entry file
// that holds this boot's try counter ("\loader\entries\keel-b+2-1.conf");
// it is absent when the booted entry has no counter (DESIGN §4).
const loaderBootCountPathVar = "LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

// readEFIStringVar reads a UTF-16LE string variable from an efivarfs dir
// ("" and no error if it does not exist). efivarfs prefixes the value with
// the 4-byte attributes.
func readEFIStringVar(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading EFI variable %s: %w", name, err)
	}
	if len(b) < 4 || len(b)%2 != 0 {
		return "", fmt.Errorf("EFI variable %s: %d bytes is not attributes + UTF-16", name, len(b))
	}
	u := make([]uint16, 0, (len(b)-4)/2)
	for i := 4; i+1 < len(b); i += 2 {
		c := uint16(b[i]) | uint16(b[i+1])<<8
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u)), nil
}

// blesser records the verdict where the boot loader sees it. Marking
// needs the ESP and the boot loader's entry naming (bootloader package,
// issue 4); until that lands, logBlesser only reports.
type blesser interface {
	markGood(countPath string) error
	markBad(countPath string) error
}

var errBlessingNotImplemented = errors.New("not implemented yet (needs the bootloader package)")

type logBlesser struct{}

func (logBlesser) markGood(string) error { return errBlessingNotImplemented }
func (logBlesser) markBad(string) error  { return errBlessingNotImplemented }

// healthJudge connects a healthTracker to the supervisor's events and a
// timer, and acts once on the verdict: mark good; or mark bad and, on a
// trial boot only, reboot so the boot loader falls back. A boot without a
// try counter is never rebooted for its health: that would loop forever.
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

func newHealthJudge(h services.Health, countPath string, b blesser, logf func(string, ...any), reboot func()) *healthJudge {
	return &healthJudge{
		tracker:   newHealthTracker(h, time.Now()),
		countPath: countPath,
		blesser:   b,
		logf:      logf,
		reboot:    reboot,
	}
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
		if at, ok := j.tracker.due(); ok {
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
		if j.countPath != "" {
			if err := j.blesser.markGood(j.countPath); err != nil {
				j.logf("health: marking the boot good: %v", err)
			}
		}
	case unhealthy:
		j.logf("health: boot is BAD: %s; entry %s", j.tracker.reason, entry)
		if j.countPath == "" {
			j.logf("health: not a trial boot: staying up")
			return
		}
		if err := j.blesser.markBad(j.countPath); err != nil {
			j.logf("health: marking the boot bad: %v", err)
		}
		j.logf("health: rebooting so the boot loader falls back")
		j.reboot()
	}
}
