package main

import (
	"os"
	"path/filepath"
	"testing"

	"keel/bootloader"
	"keel/bootloader/espdir"
	"keel/bootloader/systemdboot"
)

// TestMarkEntry renames the entry LoaderBootCountPath names, as blessing
// does, on an ESP in a directory.
func TestMarkEntry(t *testing.T) {
	m := systemdboot.Entries{}
	tests := []struct {
		name      string
		file      string
		countPath string
		mark      func(bootloader.DirESP, string) error
		want      string // the entry's name after; "" if an error is expected
	}{
		{"good", "keel-b+2-1.conf", `\loader\entries\keel-b+2-1.conf`, m.MarkGood, "keel-b.conf"},
		{"bad", "keel-b+2-1.conf", `\loader\entries\keel-b+2-1.conf`, m.MarkBad, "keel-b+0-1.conf"},
		{"first boot of a trial", "keel-a+3.conf", `\loader\entries\keel-a+3.conf`, m.MarkGood, "keel-a.conf"},
		{"not a keel entry", "keel-b+2-1.conf", `\loader\entries\debian.conf`, m.MarkGood, ""},
		{"entry gone", "keel-b+2-1.conf", `\loader\entries\keel-b+1-2.conf`, m.MarkGood, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ents := filepath.Join(dir, "loader", "entries")
			os.MkdirAll(ents, 0o755)
			body := systemdboot.FormatEntry(bootloader.Entry{Slot: "b", Title: "t", Generation: 2, Kernel: "/keel/b/vmlinuz", Initrd: "/keel/b/initrd"})
			os.WriteFile(filepath.Join(ents, tt.file), []byte(body), 0o644)
			err := markEntryOn(espdir.Dir{Root: dir}, tt.countPath, tt.mark)
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
