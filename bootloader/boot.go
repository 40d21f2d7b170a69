package bootloader

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// ErrNoEntry is returned when a slot has no entry to change.
var ErrNoEntry = errors.New("no boot entry")

// ErrDamagedEntry is an entry the loader would still boot whose
// generation, or what it boots, cannot be read. Which slot boots is then
// unknown, so keel changes nothing rather than guess: install, mark and
// rollback refuse, status fails naming it, and Cleanup leaves it alone for
// a person to look at.
var ErrDamagedEntry = errors.New("damaged boot entry")

// EFIVarsDir is where Linux's efivarfs shows the EFI variables.
const EFIVarsDir = "/sys/firmware/efi/efivars"

// BootEnv is what a running system can read of how it was booted.
type BootEnv struct {
	Cmdline string // the kernel command line (/proc/cmdline)
	EFIVars string // where efivarfs is mounted; "" without UEFI
}

// Trial is a counted boot: the entry that counted it, and its counter
// after this boot was counted.
type Trial struct {
	Slot  string
	Entry string // EntryState.File of the entry counted
	Left  int    // tries left
	Done  int    // tries done, this one included
}

// Boot is what the loader says about the running boot.
type Boot struct {
	Slot  string // "" when the loader does not say
	Trial *Trial // nil: not a trial (a blessed entry), or not known
	// ESPPartUUID is the partition GUID of the ESP the loader started
	// from, "" when it does not say.
	ESPPartUUID string
}

// DefaultName is the loader of images that do not name one.
const DefaultName = "systemd-boot"

// NameFile is where a build records its loader on the ESP, so that keelctl
// and keel-init, which run no profile, use the same one.
const NameFile = "/keel/loader"

// WriteName records the loader's name on the ESP.
func WriteName(esp ESP, name string) error {
	b := []byte(name + "\n")
	if err := esp.WriteFile(NameFile, bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("record boot loader %s: %w", name, err)
	}
	return nil
}

// ReadName returns the loader recorded on the ESP; an ESP without a record
// (built before keel had more than one loader) has systemd-boot.
func ReadName(esp ESP) (string, error) {
	b, err := esp.ReadFile(NameFile)
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultName, nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", NameFile, err)
	}
	name := strings.TrimSpace(string(b))
	if _, err := Lookup(name); err != nil {
		return "", fmt.Errorf("%s: %w", NameFile, err)
	}
	return name, nil
}

// ManagerOn returns the entry manager of the loader recorded on esp.
func ManagerOn(esp ESP) (Manager, error) {
	name, err := ReadName(esp)
	if err != nil {
		return nil, err
	}
	return ManagerFor(name)
}

// NameFromCmdline is the loader named by keel.loader= on a kernel command
// line, which every loader but systemd-boot adds; without it, the boot
// came through systemd-boot (whose unified kernel images carry a signed
// command line that names no loader).
func NameFromCmdline(cmdline string) string {
	if v := CmdlineValue(cmdline, "keel.loader"); v != "" {
		return v
	}
	return DefaultName
}

// CmdlineValue returns the value of the last key= on a kernel command
// line, "" if absent (the kernel and keel-init let the last one win).
func CmdlineValue(cmdline, key string) string {
	v := ""
	for _, f := range strings.Fields(cmdline) {
		if s, ok := strings.CutPrefix(f, key+"="); ok {
			v = s
		}
	}
	return v
}

// BlessTrial marks good the entry that counted this boot, refusing when it
// is no longer on the ESP (an install or rollback replaced it since):
// blessing then would bless something this boot did not test.
func BlessTrial(m Manager, esp DirESP, t Trial) error {
	es, err := m.Entries(esp)
	if err != nil {
		return err
	}
	for _, e := range es {
		if e.File == t.Entry && e.Slot == t.Slot {
			return m.MarkGood(esp, t.Slot)
		}
	}
	return fmt.Errorf("the booted entry %s: %w", path.Base(t.Entry), fs.ErrNotExist)
}

// WriteAtomic writes p through a temporary name (p + ".tmp", which no
// loader reads). On an ESP that can sync, the content is made durable
// before the rename: otherwise a power cut could keep the rename and lose
// the content behind it (DESIGN §4: copy-to-temp, sync, rename, sync).
// The caller syncs after.
func WriteAtomic(esp ESP, p string, data []byte) error {
	tmp := p + ".tmp"
	if err := esp.WriteFile(tmp, bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if s, ok := esp.(interface{ Sync() error }); ok {
		if err := s.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", tmp, err)
		}
	}
	if err := esp.Rename(tmp, p); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, p, err)
	}
	return nil
}
