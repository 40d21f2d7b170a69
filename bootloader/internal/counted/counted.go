// Package counted is the entry manager of the boot loaders whose own
// script counts trial boots in a variable store (GRUB's grubenv, a U-Boot
// environment file): per slot an entry file of variables, written whole
// through a temporary name and a rename, so a change of one slot never
// rewrites the other's; and per slot S in the store, S_OK (1: blessed),
// S_TRY (trial boots left when not blessed) and S_DONE (trial boots made).
// The loader's script counts a trial (S_TRY-1, S_DONE+1, saved) before it
// boots it, so a trial that hangs or reboots uses its try as one judged
// bad does; with no tries left and no blessing the slot is not booted, and
// the other slot's entry, never changed meanwhile, boots. The script tells
// the kernel keel.trial=<slot>+<left>-<done>.
package counted

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

// Format is how one loader stores its entries and counters.
type Format struct {
	// StatePath is the variable store's file on the ESP.
	StatePath string
	// EntryPath is slot's entry file.
	EntryPath func(slot string) string
	// ParseState and FormatState read and write the store.
	ParseState  func([]byte) (map[string]string, error)
	FormatState func(map[string]string) ([]byte, error)
	// Set and Quote shape an entry file's lines: Set + "keel_a_gen=" +
	// Quote + value + Quote.
	Set, Quote string
	// MaxTries is the most tries the loader's script counts down from.
	MaxTries int
}

// Slots are the slots' names.
var Slots = []string{"a", "b"}

// Manager implements bootloader.Manager over a Format.
type Manager struct{ F Format }

var _ bootloader.Manager = Manager{}

const (
	tmpSuffix = ".tmp"
	delSuffix = ".old"
)

// OKVar, TryVar and DoneVar name slot s's variables in the store.
func OKVar(s string) string   { return s + "_OK" }
func TryVar(s string) string  { return s + "_TRY" }
func DoneVar(s string) string { return s + "_DONE" }

// ReadState reads the store; a missing or damaged one is ErrDamagedEntry:
// which slot the loader boots then depends on its fallback, not on keel's
// state.
func (m Manager) ReadState(esp bootloader.ESP) (map[string]string, error) {
	b, err := esp.ReadFile(m.F.StatePath)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", bootloader.ErrDamagedEntry, m.F.StatePath, err)
	}
	vars, err := m.F.ParseState(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", bootloader.ErrDamagedEntry, m.F.StatePath, err)
	}
	return vars, nil
}

// WriteState replaces the store through a temporary name and a rename.
func (m Manager) WriteState(esp bootloader.ESP, vars map[string]string) error {
	b, err := m.F.FormatState(vars)
	if err != nil {
		return err
	}
	return bootloader.WriteAtomic(esp, m.F.StatePath, b)
}

// changeEnv applies set to the store's variables and writes them back.
func (m Manager) changeEnv(esp bootloader.ESP, set map[string]string) error {
	vars, err := m.ReadState(esp)
	if err != nil {
		return err
	}
	for k, v := range set {
		vars[k] = v
	}
	if err := m.WriteState(esp, vars); err != nil {
		return err
	}
	if s, ok := esp.(interface{ Sync() error }); ok {
		return s.Sync()
	}
	return nil
}

// InitialState is the store with no slot bootable.
func InitialState() map[string]string {
	vars := map[string]string{}
	for _, s := range Slots {
		vars[OKVar(s)], vars[TryVar(s)], vars[DoneVar(s)] = "0", "0", "0"
	}
	return vars
}

// FormatEntry renders slot e.Slot's entry file: lines that set the slot's
// variables.
func (m Manager) FormatEntry(e bootloader.Entry) ([]byte, error) {
	if e.EFI != "" {
		return nil, fmt.Errorf("this loader's entries boot a kernel and an initrd, not an EFI image (%s)", e.EFI)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# keel: slot %s's entry (its boot counter is in %s)\n", e.Slot, m.F.StatePath)
	for _, kv := range [][2]string{
		{"gen", strconv.Itoa(e.Generation)}, {"title", e.Title}, {"linux", e.Kernel}, {"initrd", e.Initrd}, {"options", e.Options},
	} {
		if strings.ContainsAny(kv[1], "'\"\\\n") {
			return nil, fmt.Errorf("entry for slot %s: %s %q holds a quote, a backslash or a newline", e.Slot, kv[0], kv[1])
		}
		fmt.Fprintf(&b, "%skeel_%s_%s=%s%s%s\n", m.F.Set, e.Slot, kv[0], m.F.Quote, kv[1], m.F.Quote)
	}
	return b.Bytes(), nil
}

// ParseEntry reads slot's entry file.
func (m Manager) ParseEntry(slot string, body []byte) (bootloader.Entry, error) {
	q := m.F.Quote
	e := bootloader.Entry{Slot: slot}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		rest, ok := strings.CutPrefix(line, m.F.Set+"keel_"+slot+"_")
		key, val, ok2 := strings.Cut(rest, "=")
		val, ok3 := strings.CutPrefix(val, q)
		val, ok4 := strings.CutSuffix(val, q)
		if !ok || !ok2 || !ok3 || !ok4 || (q != "" && strings.Contains(val, q)) {
			return e, fmt.Errorf("%s: line %q is not keel's", m.F.EntryPath(slot), line)
		}
		seen[key] = true
		switch key {
		case "gen":
			n, err := strconv.Atoi(val)
			if err != nil || n <= 0 {
				return e, fmt.Errorf("%w: %s: generation %q", bootloader.ErrDamagedEntry, m.F.EntryPath(slot), val)
			}
			e.Generation = n
		case "title":
			e.Title = val
		case "linux":
			e.Kernel = val
		case "initrd":
			e.Initrd = val
		case "options":
			e.Options = val
		}
	}
	if !seen["linux"] {
		return e, fmt.Errorf("%s: no kernel (empty or damaged entry)", m.F.EntryPath(slot))
	}
	if !seen["gen"] {
		return e, fmt.Errorf("%w: %s: no generation", bootloader.ErrDamagedEntry, m.F.EntryPath(slot))
	}
	return e, nil
}

// WriteEntry writes the slot's counter in the store first, then the
// entry: until the entry is in place the slot has none, and the loader
// boots the other.
func (m Manager) WriteEntry(esp bootloader.ESP, e bootloader.Entry) error {
	if e.Slot != "a" && e.Slot != "b" {
		return fmt.Errorf("write entry: unknown slot %q", e.Slot)
	}
	if e.Tries < 0 || e.Tries > m.F.MaxTries {
		return fmt.Errorf("write entry for slot %s: %d tries (the loader counts 0 to %d)", e.Slot, e.Tries, m.F.MaxTries)
	}
	body, err := m.FormatEntry(e)
	if err != nil {
		return err
	}
	ok := "0"
	if e.Tries == 0 {
		ok = "1"
	}
	if err := m.changeEnv(esp, map[string]string{OKVar(e.Slot): ok, TryVar(e.Slot): strconv.Itoa(e.Tries), DoneVar(e.Slot): "0"}); err != nil {
		return fmt.Errorf("write entry for slot %s: %w", e.Slot, err)
	}
	if err := bootloader.WriteAtomic(esp, m.F.EntryPath(e.Slot), body); err != nil {
		return fmt.Errorf("write entry for slot %s: %w", e.Slot, err)
	}
	return nil
}

// Entries lists the slots' entries with their state, newest generation
// first.
func (m Manager) Entries(esp bootloader.DirESP) ([]bootloader.EntryState, error) {
	vars, err := m.ReadState(esp)
	if err != nil {
		return nil, err
	}
	var out []bootloader.EntryState
	for _, s := range Slots {
		body, err := esp.ReadFile(m.F.EntryPath(s))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", m.F.EntryPath(s), err)
		}
		e, err := m.ParseEntry(s, body)
		if errors.Is(err, bootloader.ErrDamagedEntry) {
			return nil, err
		}
		if err != nil {
			continue // a leftover the loader skips too
		}
		st := bootloader.EntryState{Entry: e, File: path.Base(m.F.EntryPath(s))}
		st.Counted = vars[OKVar(s)] != "1"
		if st.Counted {
			st.Tries, _ = strconv.Atoi(vars[TryVar(s)])
		}
		st.TriesDone, _ = strconv.Atoi(vars[DoneVar(s)])
		out = append(out, st)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Generation > out[j].Generation })
	return out, nil
}

func (m Manager) slotEntry(esp bootloader.DirESP, slot string) error {
	es, err := m.Entries(esp)
	if err != nil {
		return err
	}
	for _, e := range es {
		if e.Slot == slot {
			return nil
		}
	}
	return fmt.Errorf("slot %s: %w", slot, bootloader.ErrNoEntry)
}

// MarkGood blesses slot: S_OK=1, and the loader stops counting it.
func (m Manager) MarkGood(esp bootloader.DirESP, slot string) error {
	if err := m.slotEntry(esp, slot); err != nil {
		return err
	}
	return m.changeEnv(esp, map[string]string{OKVar(slot): "1", TryVar(slot): "0"})
}

// MarkBad leaves slot no tries: the loader boots the other slot.
func (m Manager) MarkBad(esp bootloader.DirESP, slot string) error {
	if err := m.slotEntry(esp, slot); err != nil {
		return err
	}
	return m.changeEnv(esp, map[string]string{OKVar(slot): "0", TryVar(slot): "0"})
}

// RemoveEntry makes slot unbootable (its counters zero), then renames
// its entry to a name the loader does not read and deletes it.
func (m Manager) RemoveEntry(esp bootloader.DirESP, slot string) error {
	if slot != "a" && slot != "b" {
		return fmt.Errorf("remove entry: unknown slot %q", slot)
	}
	if err := m.changeEnv(esp, map[string]string{OKVar(slot): "0", TryVar(slot): "0", DoneVar(slot): "0"}); err != nil {
		return fmt.Errorf("remove entry of slot %s: %w", slot, err)
	}
	p := m.F.EntryPath(slot)
	if _, err := esp.ReadFile(p); errors.Is(err, fs.ErrNotExist) {
		return esp.Sync()
	}
	if err := esp.Rename(p, p+delSuffix); err != nil {
		return fmt.Errorf("remove entry of slot %s: %w", slot, err)
	}
	if err := esp.Sync(); err != nil {
		return err
	}
	if err := esp.Remove(p + delSuffix); err != nil {
		return fmt.Errorf("remove entry of slot %s: %w", slot, err)
	}
	return esp.Sync()
}

// Cleanup removes what an interrupted change left beside the store:
// temporary files and entries being removed. The loader reads none of
// them, and a temporary whose rename was lost is never the only copy of a
// state.
func (m Manager) Cleanup(esp bootloader.DirESP) ([]string, error) {
	dir := path.Dir(m.F.StatePath)
	names, err := esp.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cleanup %s: %w", dir, err)
	}
	var done []string
	for _, n := range names {
		if !strings.HasSuffix(n, tmpSuffix) && !strings.HasSuffix(n, delSuffix) {
			continue
		}
		p := path.Join(dir, n)
		if err := esp.Remove(p); err != nil {
			return done, fmt.Errorf("cleanup: %w", err)
		}
		done = append(done, "removed "+p)
	}
	if len(done) > 0 {
		if err := esp.Sync(); err != nil {
			return done, fmt.Errorf("cleanup: %w", err)
		}
	}
	return done, nil
}

// Temporaries are the names WriteEntry writes through.
func (m Manager) Temporaries(slot string, _ int) []string {
	return []string{m.F.EntryPath(slot) + tmpSuffix, m.F.StatePath + tmpSuffix}
}

// Booted reads what the loader's script put on the kernel command line:
// keel.slot= and, on a trial boot, keel.trial=<slot>+<left>-<done> as
// counted.
func (m Manager) Booted(env bootloader.BootEnv) (bootloader.Boot, error) {
	b := bootloader.Boot{Slot: bootloader.CmdlineValue(env.Cmdline, "keel.slot")}
	t := bootloader.CmdlineValue(env.Cmdline, "keel.trial")
	if t == "" {
		return b, nil
	}
	slot, counter, ok := strings.Cut(t, "+")
	l, d, ok2 := strings.Cut(counter, "-")
	left, err1 := strconv.Atoi(l)
	done, err2 := strconv.Atoi(d)
	if !ok || !ok2 || err1 != nil || err2 != nil || (slot != "a" && slot != "b") {
		return b, fmt.Errorf("keel.trial=%s is not <slot>+<left>-<done>", t)
	}
	b.Trial = &bootloader.Trial{Slot: slot, Entry: path.Base(m.F.EntryPath(slot)), Left: left, Done: done}
	return b, nil
}
