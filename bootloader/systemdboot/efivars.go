package systemdboot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode/utf16"

	"keel/bootloader"
)

// EFIVarsDir is where Linux's efivarfs shows the EFI variables.
const EFIVarsDir = bootloader.EFIVarsDir

// LoaderVendor is the vendor GUID of the variables systemd-boot sets for
// the booted system (the Boot Loader Interface).
const LoaderVendor = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

// LoaderEntrySelectedVar names, in efivarfs, the variable that holds the
// id of the entry systemd-boot booted: its file name as it was when the
// loader read it, lower-cased, e.g. "keel-b+2-1.conf". A unified kernel
// image serves either slot, so its command line names none: this variable
// is how the booted system learns its slot.
const LoaderEntrySelectedVar = "LoaderEntrySelected-" + LoaderVendor

// ReadEFIStringVar reads the UTF-16LE string variable name from an
// efivarfs directory, up to its first NUL. efivarfs puts the variable's
// 4-byte attributes before the value. A variable that does not exist is
// "" with no error: the loader did not set it.
func ReadEFIStringVar(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read EFI variable %s: %w", name, err)
	}
	if len(b) < 4 || len(b)%2 != 0 {
		return "", fmt.Errorf("EFI variable %s: %d bytes is not attributes and a UTF-16 string", name, len(b))
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

// SelectedSlot is the slot of the keel entry systemd-boot booted, read
// from LoaderEntrySelected in the efivarfs directory dir. It is "" with
// no error when the variable is not set (not booted by systemd-boot, or
// efivarfs not mounted), and an error when it names an entry that is not
// keel's.
func SelectedSlot(dir string) (string, error) {
	id, err := ReadEFIStringVar(dir, LoaderEntrySelectedVar)
	if err != nil || id == "" {
		return "", err
	}
	// Some systemd-boot versions put the entry's directory before its name
	// (`\loader\entries\keel-b.conf`): the name is what counts.
	name := id[strings.LastIndexAny(id, `\/`)+1:]
	slot, _, _, _, ok := ParseName(name)
	if !ok {
		return "", fmt.Errorf("LoaderEntrySelected %q is not a keel entry", id)
	}
	return slot, nil
}

// LoaderBootCountPathVar names the variable that holds the path of the
// entry file systemd-boot counted this boot with
// ("\loader\entries\keel-b+2-1.conf"); it is absent when the booted entry
// has no counter (DESIGN §4).
const LoaderBootCountPathVar = "LoaderBootCountPath-" + LoaderVendor

// LoaderDevicePartUUIDVar names the variable that holds the partition
// GUID of the ESP systemd-boot was started from.
const LoaderDevicePartUUIDVar = "LoaderDevicePartUUID-" + LoaderVendor

// Booted reads what systemd-boot told the running system: the slot from
// keel.slot= on the command line (an entry that boots a kernel and an
// initrd names it) or else from LoaderEntrySelected (a unified kernel
// image serves either slot, so its signed command line names none), the
// trial from LoaderBootCountPath, and the ESP from LoaderDevicePartUUID.
func (Entries) Booted(env bootloader.BootEnv) (bootloader.Boot, error) {
	b := bootloader.Boot{Slot: bootloader.CmdlineValue(env.Cmdline, "keel.slot")}
	if env.EFIVars == "" {
		return b, nil
	}
	var errs []error
	if b.Slot == "" {
		s, err := SelectedSlot(env.EFIVars)
		b.Slot = s
		errs = append(errs, err)
	}
	if p, err := ReadEFIStringVar(env.EFIVars, LoaderBootCountPathVar); err != nil {
		errs = append(errs, err)
	} else if p != "" {
		file := path.Base(strings.ReplaceAll(p, `\`, "/"))
		slot, left, done, counted, ok := ParseName(file)
		if !ok || !counted {
			errs = append(errs, fmt.Errorf("LoaderBootCountPath %q does not name a counted keel entry", p))
		} else {
			b.Trial = &bootloader.Trial{Slot: slot, Entry: file, Left: left, Done: done}
		}
	}
	uuid, err := ReadEFIStringVar(env.EFIVars, LoaderDevicePartUUIDVar)
	b.ESPPartUUID = strings.ToLower(uuid)
	errs = append(errs, err)
	return b, errors.Join(errs...)
}
