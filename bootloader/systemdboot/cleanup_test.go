package systemdboot_test

import (
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"keel/bootloader"
	"keel/bootloader/systemdboot"
)

// unreadableESP fails to read some files with EIO, as Linux's vfat does
// for a file whose size runs past its FAT chain (a cut during an fsync,
// seen in qemu-tests' TestKill); removing them works, as it does on an
// ESP mounted with errors=continue.
type unreadableESP struct {
	bootloader.DirESP
	bad map[string]bool
}

func (e unreadableESP) ReadFile(p string) ([]byte, error) {
	if e.bad[p] {
		return nil, &fs.PathError{Op: "read", Path: p, Err: syscall.EIO}
	}
	return e.DirESP.ReadFile(p)
}

func TestCleanupUnreadable(t *testing.T) {
	body := systemdboot.FormatEntry(entry("a", 1, 0))
	tests := []struct {
		name  string
		files map[string]string
		bad   string
		want  string // what is left in /keel/b
		did   string
	}{
		{"kernel cut in its fsync, nothing beside it",
			map[string]string{"/keel/b/vmlinuz.tmp": "kern", "/keel/b/initrd": "initrd"}, "/keel/b/vmlinuz.tmp",
			"initrd", "removed unreadable /keel/b/vmlinuz.tmp"},
		{"beside the file it was renamed to: may share its clusters",
			map[string]string{"/keel/b/vmlinuz.tmp": "kern", "/keel/b/vmlinuz": "kernel"}, "/keel/b/vmlinuz.tmp",
			"vmlinuz vmlinuz.stale", "kept unreadable /keel/b/vmlinuz.tmp as /keel/b/vmlinuz.stale"},
	}
	for _, b := range backends {
		for _, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				esp := unreadableESP{newESP(t, b.new), map[string]bool{tt.bad: true}}
				put(t, esp, "/loader/entries/keel-a.conf", body)
				for p, c := range tt.files {
					put(t, esp, p, c)
				}
				done, err := systemdboot.Entries{}.Cleanup(esp)
				if err != nil {
					t.Fatal(err)
				}
				if got := names(t, esp, "/keel/b"); got != tt.want {
					t.Errorf("/keel/b: %q, want %q", got, tt.want)
				}
				if s := fmt.Sprint(done); !strings.Contains(s, tt.did) {
					t.Errorf("cleanup did %q, want %q", s, tt.did)
				}
				if got := names(t, esp, "/loader/entries"); got != "keel-a.conf" {
					t.Errorf("entries: %q", got)
				}
			})
		}
	}
}
