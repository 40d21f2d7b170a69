package systemdboot_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf16"

	"keel/bootloader/systemdboot"
)

// efiVar is a variable as efivarfs shows it: the 4-byte attributes
// (non-volatile, boot and runtime access: 7), then the value.
func efiVar(value []byte) []byte {
	return append(binary.LittleEndian.AppendUint32(nil, 7), value...)
}

// utf16z is s as UTF-16LE with a terminating NUL, as systemd-boot stores
// its string variables.
func utf16z(s string) []byte {
	var b []byte
	for _, c := range utf16.Encode([]rune(s + "\x00")) {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return b
}

func TestSelectedSlot(t *testing.T) {
	tests := []struct {
		name  string
		value []byte // nil: the variable is not there
		slot  string
		err   bool
	}{
		{"not set", nil, "", false},
		{"trial entry as first read", efiVar(utf16z("keel-b+3.conf")), "b", false},
		{"trial entry after a boot", efiVar(utf16z("keel-b+2-1.conf")), "b", false},
		{"blessed entry", efiVar(utf16z("keel-a.conf")), "a", false},
		{"no terminating NUL", efiVar(utf16z("keel-a.conf")[:22]), "a", false},
		{"with the entries directory", efiVar(utf16z(`\loader\entries\keel-b.conf`)), "b", false},
		{"another loader's entry", efiVar(utf16z("debian.conf")), "", true},
		{"a type #2 image", efiVar(utf16z("keel-1.0.efi")), "", true},
		{"attributes only", efiVar(nil), "", false},
		{"shorter than the attributes", []byte{7, 0}, "", true},
		{"odd length", efiVar([]byte("k\x00e")), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.value != nil {
				if err := os.WriteFile(filepath.Join(dir, systemdboot.LoaderEntrySelectedVar), tt.value, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			slot, err := systemdboot.SelectedSlot(dir)
			if slot != tt.slot || (err != nil) != tt.err {
				t.Errorf("SelectedSlot = %q, %v; want %q, error %v", slot, err, tt.slot, tt.err)
			}
		})
	}
}

func TestReadEFIStringVar(t *testing.T) {
	dir := t.TempDir()
	name := "LoaderBootCountPath-" + systemdboot.LoaderVendor
	want := `\loader\entries\keel-b+2-1.conf`
	if err := os.WriteFile(filepath.Join(dir, name), efiVar(utf16z(want)), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := systemdboot.ReadEFIStringVar(dir, name); got != want || err != nil {
		t.Errorf("ReadEFIStringVar = %q, %v; want %q", got, err, want)
	}
	if got, err := systemdboot.ReadEFIStringVar(dir, "Absent-"+systemdboot.LoaderVendor); got != "" || err != nil {
		t.Errorf("absent variable: %q, %v", got, err)
	}
}
