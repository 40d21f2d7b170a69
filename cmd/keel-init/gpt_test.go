package main

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"keel/image/disk"
	"keel/image/disk/disktest"
	"keel/image/gpt"
)

// TestReadGPTGUIDs reads the partition GUIDs back from a GPT written the
// way keel build writes it (Debian's 6.1 has no PARTUUID in uevent).
func TestReadGPTGUIDs(t *testing.T) {
	name, l := disktest.GPT(t, t.TempDir(), "disk", disk.Sizes{ESP: 34 << 20, Slot: 1 << 20, Data: 8 << 20}, "gpt test")
	got, err := readGPTGUIDs(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(l.Partitions) {
		t.Fatalf("found %d partitions, want %d: %v", len(got), len(l.Partitions), got)
	}
	for _, p := range l.Partitions {
		if got[p.Number] != strings.ToLower(p.GUID) {
			t.Errorf("partition %d: %q, want %q", p.Number, got[p.Number], strings.ToLower(p.GUID))
		}
	}
	// fillPartUUIDs stays quiet on ErrNoGPT (an MBR disk is no fault).
	if _, err := readGPTGUIDs(filepath.Join("testdata", "README.md")); !errors.Is(err, gpt.ErrNoGPT) {
		t.Errorf("a file without a GPT: %v, want gpt.ErrNoGPT", err)
	}
}
