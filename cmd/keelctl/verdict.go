package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"keel/bootloader"
	"keel/image/install"
	"keel/image/verdict"
)

// slotVerdicts is what keelctl status says of the trial verdicts
// keel-init records on the ESP (image/verdict).
type slotVerdicts struct {
	// Records are the slots' records that judge the generation of the
	// slot's current entry; an older one judged what the slot held before.
	Records []verdict.Record
	// Notes say, one per slot that is bad or on trial, what is known of
	// why: the last verdict, or that none was recorded.
	Notes []string
}

// readVerdicts reads each slot's record. It never fails: a missing or
// damaged record is a note, not a reason to show no status.
func readVerdicts(esp bootloader.ESP, st []install.SlotStatus) slotVerdicts {
	var out slotVerdicts
	for _, s := range st {
		if s.State == "none" {
			continue
		}
		r, err := verdict.Read(esp, s.Slot)
		current := err == nil && r.Matches(s.Slot, s.Generation)
		if current {
			out.Records = append(out.Records, r)
		}
		if note := verdictNote(s, r, current, err); note != "" {
			out.Notes = append(out.Notes, note)
		}
	}
	return out
}

// verdictNote is the line for one slot, "" for a good one.
func verdictNote(s install.SlotStatus, r verdict.Record, current bool, err error) string {
	if s.State != "bad" && s.State != "trial" {
		return ""
	}
	head := fmt.Sprintf("slot %s (%s): ", s.Slot, s.State)
	switch {
	case current:
		// A reason may run over lines (the block devices an initrd saw).
		note := head + strings.ReplaceAll(r.String(), "\n", "\n    ")
		if s.State == "bad" && r.Result == verdict.Good {
			// Only keelctl mark-bad condemns a boot judged good.
			note += "\n    and marked bad since (keelctl mark-bad)"
		}
		return note
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return head + "its verdict record is unreadable: " + err.Error()
	case s.State == "trial":
		return ""
	case s.TriesDone == 0:
		// +0-0: no boot of this entry was counted as a try; a blessed
		// entry marked bad has no count either.
		return head + "marked bad with keelctl mark-bad, not by a counted trial boot"
	}
	// keel-init records what it judges; under systemd only the journal
	// has keel-health's verdict.
	return head + fmt.Sprintf("no verdict recorded for generation %d: %d trial boot(s) ended before keel-init recorded one "+
		"(a hang, a kernel panic, an init that exited, a power cut, keelctl mark-bad, or, under systemd, "+
		"a failed keel-health.service: see its journal)", s.Generation, s.TriesDone)
}
