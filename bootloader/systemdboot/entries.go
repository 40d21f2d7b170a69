package systemdboot

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"keel/bootloader"
)

// EntriesDir is where systemd-boot reads Type #1 entries.
const EntriesDir = "/loader/entries"

// Entries manages keel's entries on an ESP. It needs no EFI binary, so a
// device (keelctl, keel-init) uses it alone; Loader embeds it.
type Entries struct{}

var _ bootloader.Manager = Entries{}

// ErrNoEntry is bootloader.ErrNoEntry: a slot has no entry to change.
var ErrNoEntry = bootloader.ErrNoEntry

// ParseName reads a keel entry's file name: keel-b+2-1.conf is slot b, 2
// tries left, 1 done, counted. ok is false for any other name.
func ParseName(file string) (slot string, left, done int, counted, ok bool) {
	stem, isConf := strings.CutSuffix(file, ".conf")
	stem, isKeel := strings.CutPrefix(stem, "keel-")
	if !isConf || !isKeel {
		return "", 0, 0, false, false
	}
	slot, counter, counted := strings.Cut(stem, "+")
	if !validSlot(slot) {
		return "", 0, 0, false, false
	}
	if counted {
		l, d, hasDone := strings.Cut(counter, "-")
		var okL, okD bool
		left, okL = tries(l)
		done, okD = tries(d)
		if !okL || hasDone && !okD {
			return "", 0, 0, false, false
		}
	}
	return slot, left, done, counted, true
}

// tries reads a boot counter as systemd-boot does (parse_number16, at most
// INT_MAX): digits only. strconv.Atoi would also take "+1" and "-0", which
// the loader does not count: keel would call bad an entry it boots.
func tries(s string) (int, bool) {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 32)
	return int(n), err == nil
}

func validSlot(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// ErrDamagedEntry is bootloader.ErrDamagedEntry: an entry systemd-boot
// would still boot (it names a kernel or an EFI image) whose generation
// cannot be read, or that names both a kernel and an EFI image (the loader
// boots whichever line comes last; keel writes one or the other, so such a
// file is not one it wrote whole).
var ErrDamagedEntry = bootloader.ErrDamagedEntry

// errLeftover is an entry file without a linux or efi line: an empty or
// half written file left by a cut, which systemd-boot skips too.
var errLeftover = errors.New("no linux or efi line (empty or damaged entry)")

// ParseEntry reads an entry file: one that boots a kernel (linux, initrd,
// options) or an EFI image (efi: a unified kernel image). It fails on a
// name that is not keel's, on a body with neither (an empty file left by a
// power cut: the loader skips it too), and with ErrDamagedEntry on an
// entry whose version line is missing or not a generation number, or that
// has both a linux and an efi line.
func ParseEntry(file string, body []byte) (bootloader.EntryState, error) {
	slot, left, done, counted, ok := ParseName(file)
	if !ok {
		return bootloader.EntryState{}, fmt.Errorf("%s: not a keel entry name", file)
	}
	st := bootloader.EntryState{File: file, TriesDone: done, Counted: counted}
	st.Slot, st.Tries = slot, left
	version, hasVersion, hasKernel, hasEFI, hasOptions := "", false, false, false, false
	for _, kv := range keyValues(body) {
		switch k, v := kv[0], kv[1]; k {
		case "title":
			st.Title = v
		case "version":
			version, hasVersion = v, true
		case "linux":
			st.Kernel, hasKernel = v, true
		case "efi":
			st.EFI, hasEFI = v, true
		case "initrd":
			st.Initrd = v // the loader loads them all; keel writes one
		case "options":
			if hasOptions {
				st.Options += " " + v // the loader joins them
			} else {
				st.Options, hasOptions = v, true
			}
		}
	}
	if st.Kernel == "" && st.EFI == "" {
		return bootloader.EntryState{}, fmt.Errorf("%s: %w", file, errLeftover)
	}
	if hasKernel && hasEFI {
		return bootloader.EntryState{}, fmt.Errorf("%s: %w: both a linux and an efi line", file, ErrDamagedEntry)
	}
	if !hasVersion {
		return bootloader.EntryState{}, fmt.Errorf("%s: %w: no version line", file, ErrDamagedEntry)
	}
	// Digits only: the loader orders "+2" as text, keel by number.
	g, err := strconv.Atoi(version)
	if strings.ContainsFunc(version, func(r rune) bool { return r < '0' || r > '9' }) || err != nil || g <= 0 {
		return bootloader.EntryState{}, fmt.Errorf("%s: %w: version %q is not a generation number", file, ErrDamagedEntry, version)
	}
	st.Generation = g
	return st, nil
}

// keyValues splits an entry file into keys and values as systemd-boot's
// line_get_key_value does, so that keel reads the kernel (or EFI image)
// and version the loader boots (and Cleanup never discards, as without a
// linux or efi line, an entry the loader boots): the file ends at a NUL and lines at \n or \r;
// blanks are spaces and tabs; a line starting with # is a comment; the key
// ends at the first blank, the value loses its leading blanks and a pair
// of enclosing double quotes; a line with no value is skipped.
func keyValues(b []byte) [][2]string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	var out [][2]string
	for _, line := range strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' || r == '\r' }) {
		line = strings.Trim(line, " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.IndexAny(line, " \t")
		if i < 0 {
			continue
		}
		k, v := line[:i], strings.TrimLeft(line[i+1:], " \t")
		if strings.HasPrefix(v, `"`) && strings.HasSuffix(v, `"`) {
			v = strings.TrimSuffix(v[1:], `"`) // a lone " becomes empty, as in the loader
		}
		out = append(out, [2]string{k, v})
	}
	return out
}

// Entries lists every well-formed keel entry, newest generation first;
// on a tie the one Cleanup keeps comes first. Empty or half-written
// entries (no linux or efi line) are skipped, as the loader skips them; a damaged
// one (ErrDamagedEntry) is an error naming it.
func (m Entries) Entries(esp bootloader.DirESP) ([]bootloader.EntryState, error) {
	out, damaged, err := m.entries(esp)
	if err != nil {
		return nil, err
	}
	if len(damaged) > 0 {
		return nil, damaged[0]
	}
	return out, nil
}

// entries reads every keel entry: the well-formed ones, sorted, and the
// damaged ones' errors.
func (Entries) entries(esp bootloader.DirESP) ([]bootloader.EntryState, []error, error) {
	names, err := esp.ReadDir(EntriesDir)
	if err != nil {
		return nil, nil, fmt.Errorf("list boot entries: %w", err)
	}
	var out []bootloader.EntryState
	var damaged []error
	for _, n := range names {
		if _, _, _, _, ok := ParseName(n); !ok {
			continue
		}
		p := path.Join(EntriesDir, n)
		b, err := esp.ReadFile(p)
		if err != nil {
			return nil, nil, fmt.Errorf("read boot entry %s: %w", n, err)
		}
		st, err := ParseEntry(n, b)
		switch {
		case errors.Is(err, ErrDamagedEntry):
			damaged = append(damaged, fmt.Errorf("%s/%w", EntriesDir, err)) // names the path
		case err == nil:
			out = append(out, st)
		}
	}
	sortEntries(out)
	return out, damaged, nil
}

// sortEntries orders by generation, newest first; among equal generations
// a blessed entry, then a bad one, then a trial: an interrupted rename
// (bless or mark bad) is finished rather than undone.
func sortEntries(es []bootloader.EntryState) {
	rank := map[string]int{"good": 0, "bad": 1, "trial": 2}
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Generation != es[j].Generation {
			return es[i].Generation > es[j].Generation
		}
		if ri, rj := rank[es[i].State()], rank[es[j].State()]; ri != rj {
			return ri < rj
		}
		return es[i].File < es[j].File
	})
}

// slotEntry is the entry that boots slot: its newest.
func (m Entries) slotEntry(esp bootloader.DirESP, slot string) (bootloader.EntryState, error) {
	es, err := m.Entries(esp)
	if err != nil {
		return bootloader.EntryState{}, err
	}
	for _, e := range es {
		if e.Slot == slot {
			return e, nil
		}
	}
	return bootloader.EntryState{}, fmt.Errorf("slot %s: %w", slot, ErrNoEntry)
}

// MarkGood renames slot's entry to its name without a counter, which is
// what systemd-bless-boot does: keel-b+2-1.conf → keel-b.conf.
func (m Entries) MarkGood(esp bootloader.DirESP, slot string) error {
	e, err := m.slotEntry(esp, slot)
	if err != nil {
		return fmt.Errorf("mark good: %w", err)
	}
	if !e.Counted {
		return nil
	}
	return m.rename(esp, e.File, EntryName(slot, 0))
}

// MarkBad renames slot's entry to +0-<done>: systemd-boot sorts it last and
// boots the other slot's entry instead.
func (m Entries) MarkBad(esp bootloader.DirESP, slot string) error {
	e, err := m.slotEntry(esp, slot)
	if err != nil {
		return fmt.Errorf("mark bad: %w", err)
	}
	if e.State() == "bad" {
		return nil
	}
	return m.rename(esp, e.File, fmt.Sprintf("keel-%s+0-%d.conf", slot, e.TriesDone))
}

func (Entries) rename(esp bootloader.DirESP, from, to string) error {
	if err := esp.Rename(path.Join(EntriesDir, from), path.Join(EntriesDir, to)); err != nil {
		return fmt.Errorf("rename boot entry %s to %s: %w", from, to, err)
	}
	if err := esp.Sync(); err != nil {
		return fmt.Errorf("rename boot entry %s: %w", from, err)
	}
	return nil
}

// RemoveEntry takes every entry of slot out of the loader's sight by
// renaming it to a name without .conf, syncs, and only then deletes it
// (DESIGN §4 step 1): a cut during the delete leaves at worst lost
// clusters, never a half-removed entry that still boots.
func (Entries) RemoveEntry(esp bootloader.DirESP, slot string) error {
	names, err := esp.ReadDir(EntriesDir)
	if err != nil {
		return fmt.Errorf("remove entry of slot %s: %w", slot, err)
	}
	var gone []string
	for _, n := range names {
		if s, _, _, _, ok := ParseName(n); !ok || s != slot {
			continue
		}
		del := path.Join(EntriesDir, n+delSuffix)
		if err := esp.Rename(path.Join(EntriesDir, n), del); err != nil {
			return fmt.Errorf("remove entry %s: %w", n, err)
		}
		gone = append(gone, del)
	}
	if len(gone) == 0 {
		return nil
	}
	if err := esp.Sync(); err != nil {
		return fmt.Errorf("remove entry of slot %s: %w", slot, err)
	}
	for _, p := range gone {
		if err := esp.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove entry %s: %w", p, err)
		}
	}
	if err := esp.Sync(); err != nil {
		return fmt.Errorf("remove entry of slot %s: %w", slot, err)
	}
	return nil
}

// Suffixes of names that an interrupted change leaves and Cleanup handles.
const (
	tmpSuffix   = ".tmp"   // written, not yet renamed into place
	delSuffix   = ".del"   // taken out of use, not yet deleted
	staleSuffix = ".stale" // kept: it may share clusters with a live file
)
