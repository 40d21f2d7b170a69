package install

import (
	"errors"
	"fmt"

	"keel/bootloader"
)

// SlotStatus is what keelctl status shows for one slot.
type SlotStatus struct {
	Slot       string `json:"slot"`
	Booted     bool   `json:"booted"`
	Name       string `json:"name,omitempty"`
	Version    string `json:"version,omitempty"`
	BuildID    string `json:"build_id,omitempty"`
	Generation int    `json:"generation,omitempty"`
	// State is good, trial, bad, or none (no entry: empty, or being
	// written).
	State     string `json:"state"`
	TriesLeft int    `json:"tries_left,omitempty"`
	TriesDone int    `json:"tries_done,omitempty"`
	Entry     string `json:"entry,omitempty"`
	// EFI is set when the slot's entry boots a unified kernel image.
	EFI string `json:"efi,omitempty"`
	// RootHash is the slot's dm-verity root hash from its image.json, if
	// any.
	RootHash string `json:"root_hash,omitempty"`
}

// Slots are the slots of a keel disk, in order.
var Slots = []string{"a", "b"}

// Status reads each slot's entry and image.json.
func Status(esp bootloader.DirESP, m bootloader.Manager, booted string) ([]SlotStatus, error) {
	es, err := m.Entries(esp)
	if err != nil {
		return nil, err
	}
	var out []SlotStatus
	for _, s := range Slots {
		st := SlotStatus{Slot: s, Booted: s == booted, State: "none"}
		for _, e := range es { // newest first: the entry that counts
			if e.Slot != s {
				continue
			}
			st.Generation, st.State, st.Entry, st.EFI = e.Generation, e.State(), e.File, e.EFI
			if e.Counted {
				st.TriesLeft, st.TriesDone = e.Tries, e.TriesDone
			}
			if im, err := ReadImage(esp, s, e); err == nil {
				st.Name, st.Version, st.BuildID, st.RootHash = im.Name, im.Version, im.BuildID, im.RootHash
			}
			break
		}
		out = append(out, st)
	}
	return out, nil
}

// ErrNotGood is returned when rolling back to a slot that is not blessed.
var ErrNotGood = errors.New("slot is not good")

// Rollback makes the slot that is not booted the default: a new, blessed
// generation of its entry (DESIGN §4: "newest generation wins" stays the
// only rule). The other slot must be good: a trial or bad slot, or one
// being written, is refused. The booted slot's entry is not touched, so a
// cut leaves a system that boots one of the two.
func Rollback(esp bootloader.DirESP, m bootloader.Manager, booted string) (bootloader.EntryState, error) {
	other, err := otherSlot(booted)
	if err != nil {
		return bootloader.EntryState{}, err
	}
	es, err := m.Entries(esp)
	if err != nil {
		return bootloader.EntryState{}, err
	}
	gen := 0
	var target *bootloader.EntryState
	for i, e := range es {
		gen = max(gen, e.Generation)
		if e.Slot == other && target == nil {
			target = &es[i]
		}
	}
	if target == nil {
		return bootloader.EntryState{}, fmt.Errorf("rollback to slot %s: %w: it has no boot entry", other, ErrNotGood)
	}
	if target.State() != "good" {
		return bootloader.EntryState{}, fmt.Errorf("rollback to slot %s: %w: its entry %s is %s", other, ErrNotGood, target.File, target.State())
	}
	e := target.Entry
	e.Generation, e.Tries = gen+1, 0
	if err := m.WriteEntry(esp, e); err != nil {
		return bootloader.EntryState{}, fmt.Errorf("rollback to slot %s: %w", other, err)
	}
	if err := esp.Sync(); err != nil {
		return bootloader.EntryState{}, fmt.Errorf("rollback to slot %s: %w", other, err)
	}
	return bootloader.EntryState{Entry: e, File: target.File}, nil
}
