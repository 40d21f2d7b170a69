package main

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf16"

	"keel/bootloader"
	"keel/bootloader/espdir"
	"keel/bootloader/systemdboot"
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

// blesser records the verdict where the boot loader sees it.
type blesser interface {
	markGood(countPath string) error
	markBad(countPath string) error
}

// espBlesser renames the booted entry on the ESP (DESIGN §4): good drops
// the counter (keel-b+2-1.conf → keel-b.conf), bad leaves no tries
// (keel-b+0-1.conf), as systemd-bless-boot does.
type espBlesser struct{}

func (espBlesser) markGood(countPath string) error {
	return markEntry(countPath, systemdboot.Entries{}.MarkGood)
}

func (espBlesser) markBad(countPath string) error {
	return markEntry(countPath, systemdboot.Entries{}.MarkBad)
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
			} else {
				j.logf("health: entry blessed: the loader keeps booting this slot")
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
		} else {
			j.logf("health: entry marked bad: no tries left")
		}
		j.logf("health: rebooting so the boot loader falls back")
		j.reboot()
	}
}
