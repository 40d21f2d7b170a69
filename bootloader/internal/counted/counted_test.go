package counted_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keel/bootloader"
	"keel/bootloader/espdir"
	"keel/bootloader/grub"
	"keel/bootloader/internal/counted"
	"keel/bootloader/uboot"
)

// TestEntries walks a slot through install, trial, blessing, failure and
// removal on an ESP in a directory, as keelctl and keel-init change it.
func TestEntries(t *testing.T) {
	for name, m := range map[string]counted.Manager{"grub": grub.Entries, "u-boot": uboot.Entries} {
		t.Run(name, func(t *testing.T) { testEntries(t, m) })
	}
}

func testEntries(t *testing.T, m counted.Manager) {
	dir := t.TempDir()
	esp := espdir.Dir{Root: dir}
	stateDir := filepath.Join(dir, filepath.Dir(m.F.StatePath))
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteState(esp, counted.InitialState()); err != nil {
		t.Fatal(err)
	}
	state := func() string {
		t.Helper()
		es, err := m.Entries(esp)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, e := range es {
			s = append(s, e.Slot+":"+e.State()+":"+string(rune('0'+e.Generation))+":"+string(rune('0'+e.Tries))+":"+string(rune('0'+e.TriesDone)))
		}
		return strings.Join(s, " ")
	}
	a := bootloader.Entry{Slot: "a", Title: "x 1 (slot a)", Generation: 1, Kernel: "/keel/a/vmlinuz", Initrd: "/keel/a/initrd", Options: "root=PARTUUID=1 keel.slot=a"}
	if err := m.WriteEntry(esp, a); err != nil {
		t.Fatal(err)
	}
	if got := state(); got != "a:good:1:0:0" {
		t.Errorf("after build: %s", got)
	}
	b := a
	b.Slot, b.Generation, b.Tries, b.Kernel = "b", 2, 3, "/keel/b/vmlinuz"
	if err := m.RemoveEntry(esp, "b"); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteEntry(esp, b); err != nil {
		t.Fatal(err)
	}
	if got := state(); got != "b:trial:2:3:0 a:good:1:0:0" {
		t.Errorf("after install: %s", got)
	}
	// GRUB counts a boot: what its save_env writes.
	vars, _ := m.ReadState(esp)
	vars["b_TRY"], vars["b_DONE"] = "2", "1"
	m.WriteState(esp, vars)
	boot, err := m.Booted(bootloader.BootEnv{Cmdline: "root=x keel.slot=b keel.loader=grub keel.trial=b+2-1"})
	if err != nil || boot.Slot != "b" || boot.Trial == nil || *boot.Trial != (bootloader.Trial{Slot: "b", Entry: filepath.Base(m.F.EntryPath("b")), Left: 2, Done: 1}) {
		t.Fatalf("Booted = %+v %+v, %v", boot, boot.Trial, err)
	}
	if err := bootloader.BlessTrial(m, esp, *boot.Trial); err != nil {
		t.Fatal(err)
	}
	if got := state(); got != "b:good:2:0:1 a:good:1:0:0" {
		t.Errorf("after blessing: %s", got)
	}
	if err := m.MarkBad(esp, "b"); err != nil {
		t.Fatal(err)
	}
	if got := state(); got != "b:bad:2:0:1 a:good:1:0:0" {
		t.Errorf("after mark bad: %s", got)
	}
	if err := m.RemoveEntry(esp, "b"); err != nil {
		t.Fatal(err)
	}
	if got := state(); got != "a:good:1:0:0" {
		t.Errorf("after remove: %s", got)
	}
	if err := m.MarkGood(esp, "b"); !errors.Is(err, bootloader.ErrNoEntry) {
		t.Errorf("MarkGood of a removed slot: %v", err)
	}
	// Leftovers of a cut are cleaned; none is left after a clean run.
	os.WriteFile(filepath.Join(dir, m.F.EntryPath("b")+".tmp"), []byte("keel_b_gen=9\n"), 0o644)
	os.WriteFile(filepath.Join(dir, m.F.StatePath+".tmp"), nil, 0o644)
	done, err := m.Cleanup(esp)
	if err != nil || len(done) != 2 {
		t.Errorf("Cleanup = %v, %v", done, err)
	}
	if ls, _ := os.ReadDir(stateDir); len(ls) != 2 {
		t.Errorf("after cleanup: %v", ls)
	}
	// A damaged store: which slot GRUB boots is unknown, nothing changes.
	os.WriteFile(filepath.Join(dir, m.F.StatePath), []byte("junk"), 0o644)
	if _, err := m.Entries(esp); !errors.Is(err, bootloader.ErrDamagedEntry) {
		t.Errorf("Entries with a damaged store: %v", err)
	}
	if err := m.WriteEntry(esp, b); !errors.Is(err, bootloader.ErrDamagedEntry) {
		t.Errorf("WriteEntry with a damaged store: %v", err)
	}
}
