// Package verdict is the record of a trial boot's judgement that keel keeps
// on the ESP, at /keel/<slot>/verdict.json beside the slot's image.json:
// which trial boot of which generation was judged, good or bad, at which
// stage of the boot, and why. keel-init writes it (the health judge, and the
// fatal path of a trial boot); keelctl status reads it, so that a slot the
// boot loader gave up on can say why.
//
// The record only explains; it decides nothing. The boot loader's try
// counter alone decides which slot boots (DESIGN §4). A slot's record is
// about one generation of its entry: a later install or rollback writes a
// new generation, which makes an older record stale (Matches).
package verdict

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"keel/bootloader"
)

// Results of a judgement.
const (
	Good = "good"
	Bad  = "bad"
)

// Stages of the boot a verdict comes from.
const (
	// StageInitrd is keel-init in the initrd: the root, the modules, the
	// switch to the rootfs's init.
	StageInitrd = "initrd"
	// StageInit is keel-init as the rootfs's PID 1, failing before its
	// services could be judged.
	StageInit = "init"
	// StageHealth is the health judge: the required services stayed up for
	// the grace period, or did not.
	StageHealth = "health"
)

// MaxReason bounds the reason kept: enough for an error with the list of
// block devices seen, small enough for a FAT cluster or two.
const MaxReason = 2048

// maxFile bounds what Read accepts.
const maxFile = 64 << 10

// Record is one trial boot's verdict. In JSON:
//
//	{"slot": "b", "generation": 3, "entry": "keel-b+0-2.conf", "boot": 2,
//	 "tries_left": 0, "result": "bad", "stage": "initrd",
//	 "reason": "mounting root vda3 (squashfs, read-only) on /sysroot: no such device"}
type Record struct {
	Slot       string `json:"slot"`
	Generation int    `json:"generation"`
	// Entry is the entry file the boot loader counted this boot with.
	Entry string `json:"entry"`
	// Boot is the trial boot judged, from 1; TriesLeft the loader's tries
	// left after it (0: if this boot failed, the next one falls back).
	Boot      int    `json:"boot"`
	TriesLeft int    `json:"tries_left"`
	Result    string `json:"result"`
	Stage     string `json:"stage"`
	Reason    string `json:"reason"`
}

// Path is where slot's record lives on the ESP.
func Path(slot string) string { return path.Join("/keel", slot, "verdict.json") }

// Matches reports whether r judges the given generation of slot's entry.
func (r Record) Matches(slot string, generation int) bool {
	return r.Slot == slot && r.Generation == generation && generation > 0
}

// String is the record for people: "trial boot 2 of 2 (generation 3)
// judged bad in the initrd: mounting root ...".
func (r Record) String() string {
	by := map[string]string{StageInitrd: "in the initrd", StageInit: "by init", StageHealth: "by its health check"}[r.Stage]
	if by == "" {
		by = "at stage " + r.Stage
	}
	return fmt.Sprintf("trial boot %d of %d (generation %d) judged %s %s: %s",
		r.Boot, r.Boot+r.TriesLeft, r.Generation, r.Result, by, r.Reason)
}

func (r Record) check() error {
	switch {
	case r.Slot != "a" && r.Slot != "b":
		return fmt.Errorf("slot %q: want a or b", r.Slot)
	case r.Result != Good && r.Result != Bad:
		return fmt.Errorf("result %q: want %s or %s", r.Result, Good, Bad)
	case r.Generation < 1 || r.Boot < 0 || r.TriesLeft < 0:
		return fmt.Errorf("generation %d, boot %d, tries left %d: want a generation from 1 and no negative count", r.Generation, r.Boot, r.TriesLeft)
	}
	return nil
}

// Marshal is the file's content: indented JSON, fields in a fixed order.
// A reason longer than MaxReason is cut.
func (r Record) Marshal() []byte {
	if len(r.Reason) > MaxReason {
		r.Reason = strings.ToValidUTF8(r.Reason[:MaxReason], "") + "..."
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	return append(b, '\n')
}

// Write stores r as its slot's record: a temporary name, a rename over
// the old record, and a sync, so that a cut leaves the old record, the new
// one, or a *.tmp leftover that the boot's ESP cleanup removes; never a
// touched entry.
func Write(esp bootloader.DirESP, r Record) error {
	if err := r.check(); err != nil {
		return fmt.Errorf("verdict: %w", err)
	}
	b := r.Marshal()
	p := Path(r.Slot)
	if err := esp.WriteFile(p+".tmp", bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := esp.Rename(p+".tmp", p); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := esp.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// Read returns slot's record. A missing record is an error that
// errors.Is(err, fs.ErrNotExist); a damaged one (a cut, another tool) is an
// error saying so.
func Read(esp bootloader.ESP, slot string) (Record, error) {
	b, err := esp.ReadFile(Path(slot))
	if err != nil {
		return Record{}, fmt.Errorf("reading %s: %w", Path(slot), err)
	}
	r, err := Parse(b)
	if err != nil {
		return Record{}, fmt.Errorf("%s: %w", Path(slot), err)
	}
	if r.Slot != slot {
		return Record{}, fmt.Errorf("%s: the record of slot %q", Path(slot), r.Slot)
	}
	return r, nil
}

// Parse reads a record. Fields it does not know are ignored: the record
// is written by the keel-init of whichever slot booted, read by the
// keelctl of another.
func Parse(b []byte) (Record, error) {
	if len(b) > maxFile {
		return Record{}, fmt.Errorf("%d bytes: not a verdict record (at most %d)", len(b), maxFile)
	}
	var r Record
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("not a verdict record: %w", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return Record{}, errors.New("not a verdict record: data after the JSON object")
	}
	if err := r.check(); err != nil {
		return Record{}, fmt.Errorf("not a verdict record: %w", err)
	}
	return r, nil
}
