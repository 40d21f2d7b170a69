package main

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf16"

	"keel/bootloader"
	"keel/bootloader/espdir"
	"keel/bootloader/systemdboot"
	"keel/image/verdict"
)

// trialOf is the trial systemd-boot reports when LoaderBootCountPath is
// countPath, read as keel-init reads it.
func trialOf(t *testing.T, countPath string) (*bootloader.Trial, error) {
	t.Helper()
	dir := t.TempDir()
	var v []byte
	v = binary.LittleEndian.AppendUint32(v, 7)
	for _, c := range utf16.Encode([]rune(countPath + "\x00")) {
		v = binary.LittleEndian.AppendUint16(v, c)
	}
	if err := os.WriteFile(filepath.Join(dir, systemdboot.LoaderBootCountPathVar), v, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := systemdboot.Entries{}.Booted(bootloader.BootEnv{EFIVars: dir})
	if err == nil && b.Trial == nil {
		err = errors.New("not a trial")
	}
	return b.Trial, err
}

// mustTrial is the trial of entry file (nil for "").
func mustTrial(t *testing.T, file string) *bootloader.Trial {
	t.Helper()
	if file == "" {
		return nil
	}
	tr, err := trialOf(t, `\loader\entries\`+file)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestBlessTrial renames the entry LoaderBootCountPath names, as blessing
// does, on an ESP in a directory.
func TestBlessTrial(t *testing.T) {
	tests := []struct {
		name      string
		file      string
		countPath string
		want      string // the entry's name after; "" if an error is expected
	}{
		{"good", "keel-b+2-1.conf", `\loader\entries\keel-b+2-1.conf`, "keel-b.conf"},
		{"first boot of a trial", "keel-b+3.conf", `\loader\entries\keel-b+3.conf`, "keel-b.conf"},
		{"not a keel entry", "keel-b+2-1.conf", `\loader\entries\debian.conf`, ""},
		{"entry gone", "keel-b+2-1.conf", `\loader\entries\keel-b+1-2.conf`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ents := filepath.Join(dir, "loader", "entries")
			os.MkdirAll(ents, 0o755)
			body := systemdboot.FormatEntry(bootloader.Entry{Slot: "b", Title: "t", Generation: 2, Kernel: "/keel/b/vmlinuz", Initrd: "/keel/b/initrd"})
			os.WriteFile(filepath.Join(ents, tt.file), []byte(body), 0o644)
			tr, err := trialOf(t, tt.countPath)
			if err == nil {
				err = bootloader.BlessTrial(systemdboot.Entries{}, espdir.Dir{Root: dir}, *tr)
			}
			if tt.want == "" {
				if err == nil {
					t.Fatal("no error")
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(ents, tt.want)); err != nil {
				ls, _ := os.ReadDir(ents)
				t.Errorf("want %s: %v (%v)", tt.want, err, ls)
			}
		})
	}
}

// TestRecordVerdictOn writes a trial boot's verdict for the generation of
// the entry LoaderBootCountPath names.
func TestRecordVerdictOn(t *testing.T) {
	tests := []struct {
		name      string
		file      string // the entry on the ESP
		countPath string
		want      verdict.Record // zero if an error is expected
	}{
		{"first of two tries", "keel-b+1-1.conf", `\loader\entries\keel-b+1-1.conf`,
			verdict.Record{Slot: "b", Generation: 7, Entry: "keel-b+1-1.conf", Boot: 1, TriesLeft: 1, Result: verdict.Bad, Stage: verdict.StageInitrd, Reason: "no root"}},
		{"last try", "keel-a+0-3.conf", `\loader\entries\keel-a+0-3.conf`,
			verdict.Record{Slot: "a", Generation: 7, Entry: "keel-a+0-3.conf", Boot: 3, TriesLeft: 0, Result: verdict.Bad, Stage: verdict.StageInitrd, Reason: "no root"}},
		{"not counted", "keel-b.conf", `\loader\entries\keel-b.conf`, verdict.Record{}},
		{"entry gone", "keel-b+1-1.conf", `\loader\entries\keel-b+0-2.conf`, verdict.Record{}},
		{"not keel's", "keel-b+1-1.conf", `\loader\entries\debian+1-1.conf`, verdict.Record{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ents := filepath.Join(dir, "loader", "entries")
			slot, _, _, _, _ := systemdboot.ParseName(tt.file)
			for _, d := range []string{ents, filepath.Join(dir, "keel", slot)} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			body := systemdboot.FormatEntry(bootloader.Entry{Slot: slot, Title: "t", Generation: 7, Kernel: "/keel/" + slot + "/vmlinuz", Initrd: "/keel/" + slot + "/initrd"})
			if err := os.WriteFile(filepath.Join(ents, tt.file), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			esp := espdir.Dir{Root: dir}
			tr, err := trialOf(t, tt.countPath)
			if err == nil {
				_, err = recordVerdictOn(esp, systemdboot.Entries{}, *tr, verdict.Bad, verdict.StageInitrd, "no root")
			}
			if tt.want == (verdict.Record{}) {
				if err == nil {
					t.Fatal("no error")
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := verdict.Read(esp, tt.want.Slot)
			if err != nil || got != tt.want {
				t.Errorf("recorded %+v, %v; want %+v", got, err, tt.want)
			}
			// The entry is not renamed: the loader's counter decides.
			if _, err := os.Stat(filepath.Join(ents, tt.file)); err != nil {
				t.Errorf("the entry: %v", err)
			}
		})
	}
}
