package systemdboot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf16"
)

// EFIVarsDir is where Linux's efivarfs shows the EFI variables.
const EFIVarsDir = "/sys/firmware/efi/efivars"

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
