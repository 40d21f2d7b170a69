package main

import (
	"strings"
	"testing"

	"keel/bootloader/espdir"
	"keel/image/install"
	"keel/image/verdict"
)

func TestReadVerdicts(t *testing.T) {
	bad := verdict.Record{Slot: "b", Generation: 3, Entry: "keel-b+0-2.conf", Boot: 2, Result: verdict.Bad, Stage: verdict.StageInitrd,
		Reason: "root PARTUUID=x did not appear within 10s; block devices seen:\n  vda (254:0)"}
	good := verdict.Record{Slot: "b", Generation: 3, Entry: "keel-b+1-1.conf", Boot: 1, TriesLeft: 1, Result: verdict.Good, Stage: verdict.StageHealth,
		Reason: "app up for 5s"}
	for _, tc := range []struct {
		name        string
		slot        install.SlotStatus
		record      *verdict.Record
		raw         string // written instead of record, if set
		wantRecords int
		wantNote    string // "" for none
	}{
		{"bad, with the verdict of its generation", install.SlotStatus{Slot: "b", State: "bad", Generation: 3, TriesDone: 2}, &bad, "", 1,
			"slot b (bad): trial boot 2 of 2 (generation 3) judged bad in the initrd: root PARTUUID=x did not appear within 10s; block devices seen:\n      vda (254:0)"},
		{"bad, the record is an older generation's", install.SlotStatus{Slot: "b", State: "bad", Generation: 4, TriesDone: 2}, &bad, "", 0,
			"slot b (bad): no verdict recorded for generation 4: 2 trial boot(s) ended before keel-init recorded one"},
		{"bad, no record", install.SlotStatus{Slot: "b", State: "bad", Generation: 4, TriesDone: 3}, nil, "", 0,
			"no verdict recorded for generation 4: 3 trial boot(s)"},
		{"bad without a trial", install.SlotStatus{Slot: "b", State: "bad", Generation: 4}, nil, "", 0,
			"slot b (bad): marked bad with keelctl mark-bad, not by a counted trial boot"},
		{"judged good, then marked bad", install.SlotStatus{Slot: "b", State: "bad", Generation: 3}, &good, "", 1,
			"slot b (bad): trial boot 1 of 2 (generation 3) judged good by its health check: app up for 5s\n    and marked bad since (keelctl mark-bad)"},
		{"bad, damaged record", install.SlotStatus{Slot: "b", State: "bad", Generation: 3, TriesDone: 2}, nil, `{"slot":"b",`, 0,
			"slot b (bad): its verdict record is unreadable"},
		{"trial with a bad first boot", install.SlotStatus{Slot: "b", State: "trial", Generation: 3, TriesLeft: 1, TriesDone: 1}, &bad, "", 1,
			"slot b (trial): trial boot 2 of 2"},
		{"trial, nothing known", install.SlotStatus{Slot: "b", State: "trial", Generation: 3, TriesLeft: 1, TriesDone: 1}, nil, "", 0, ""},
		{"good: no note, the record is kept", install.SlotStatus{Slot: "b", State: "good", Generation: 3}, &bad, "", 1, ""},
		{"empty slot", install.SlotStatus{Slot: "b", State: "none"}, nil, "", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			esp := espdir.Dir{Root: t.TempDir()}
			if err := esp.Mkdir("/keel/b"); err != nil {
				t.Fatal(err)
			}
			if tc.record != nil {
				if err := verdict.Write(esp, *tc.record); err != nil {
					t.Fatal(err)
				}
			}
			if tc.raw != "" {
				if err := esp.WriteFile(verdict.Path("b"), strings.NewReader(tc.raw), int64(len(tc.raw))); err != nil {
					t.Fatal(err)
				}
			}
			v := readVerdicts(esp, []install.SlotStatus{tc.slot})
			if len(v.Records) != tc.wantRecords {
				t.Errorf("records %+v, want %d", v.Records, tc.wantRecords)
			}
			note := strings.Join(v.Notes, "\n")
			if (tc.wantNote == "") != (note == "") || !strings.Contains(note, tc.wantNote) {
				t.Errorf("note %q, want %q", note, tc.wantNote)
			}
		})
	}
}
