package systemdboot_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"keel/bootloader/systemdboot"
)

// The two targets below hold keel's reading of an entry against
// systemd-boot's, transcribed here from src/boot/efi/boot.c
// (config_entry_parse_tries, line_get_key_value, config_entry_add_type1):
// where keel and the loader read a name or a file differently, keel would
// decide which slot boots, or which entry to discard, on a misreading.
// Seeds are in testdata/fuzz/FuzzParseName and FuzzParseEntry.

// sdTries is config_entry_parse_tries for a name ending in ".conf": the
// counter after the last '+', digits only (parse_number16), at most
// INT_MAX, "-DONE" optional, then the suffix and nothing else. ok is false
// for a name the loader does not count.
func sdTries(file string) (left, done int, ok bool) {
	stem, isConf := strings.CutSuffix(file, ".conf")
	plus := strings.LastIndexByte(stem, '+')
	if !isConf || plus < 0 {
		return 0, 0, false
	}
	c := stem[plus+1:]
	number := func() (int, bool) {
		i := 0
		var u uint64
		for i < len(c) && c[i] >= '0' && c[i] <= '9' {
			if u > (math.MaxUint64-9)/10 {
				return 0, false // parse_number16's overflow check
			}
			u = u*10 + uint64(c[i]-'0')
			i++
		}
		if i == 0 || u > math.MaxInt32 {
			return 0, false
		}
		c = c[i:]
		return int(u), true
	}
	if left, ok = number(); !ok {
		return 0, 0, false
	}
	if strings.HasPrefix(c, "-") {
		c = c[1:]
		if done, ok = number(); !ok {
			return 0, 0, false
		}
	}
	return left, done, c == ""
}

// FuzzParseName: a name keel takes as one of its entries is read with the
// loader's counters, and writing it back gives the same reading.
func FuzzParseName(f *testing.F) {
	f.Fuzz(func(t *testing.T, file string) {
		slot, left, done, counted, ok := systemdboot.ParseName(file)
		if !ok {
			if slot != "" || left != 0 || done != 0 || counted {
				t.Fatalf("ParseName(%q) refused but returned %q %d %d %v", file, slot, left, done, counted)
			}
			return
		}
		if slot == "" || strings.ContainsFunc(slot, func(r rune) bool { return (r < 'a' || r > 'z') && (r < '0' || r > '9') }) {
			t.Fatalf("ParseName(%q): slot %q is not [a-z0-9]+", file, slot)
		}
		sdLeft, sdDone, sdCounted := sdTries(file)
		if counted != sdCounted || counted && (left != sdLeft || done != sdDone) {
			t.Fatalf("ParseName(%q) = %d-%d counted %v; systemd-boot reads %d-%d counted %v", file, left, done, counted, sdLeft, sdDone, sdCounted)
		}
		if !counted && (left != 0 || done != 0) {
			t.Fatalf("ParseName(%q): uncounted with counters %d-%d", file, left, done)
		}
		again := systemdboot.EntryName(slot, 0)
		if counted {
			again = fmt.Sprintf("keel-%s+%d-%d.conf", slot, left, done)
		}
		s2, l2, d2, c2, ok2 := systemdboot.ParseName(again)
		if !ok2 || s2 != slot || l2 != left || d2 != done || c2 != counted {
			t.Fatalf("ParseName(%q) = %q %d-%d %v, but its canonical name %q reads %q %d-%d %v (ok %v)", file, slot, left, done, counted, again, s2, l2, d2, c2, ok2)
		}
	})
}

// sdEntry is what systemd-boot reads from an entry file for the keys keel
// uses: line_get_key_value's tokens (lines end at \n or \r, the file at
// NUL; blanks are spaces and tabs; # starts a comment; a value in double
// quotes loses them) and config_entry_add_type1's use of them (the last
// linux, efi and version win, options lines are joined with a space).
type sdEntry struct {
	title, linux, efi, version, options  string
	hasLinux, hasEFI, hasVersion, hasOpt bool
	initrds                              []string
}

func sdRead(b []byte) sdEntry {
	var e sdEntry
	blank := func(c byte) bool { return c == ' ' || c == '\t' }
	content := string(b)
	if i := strings.IndexByte(content, 0); i >= 0 {
		content = content[:i]
	}
	pos := 0
	for pos < len(content) {
		n := 0
		for pos+n < len(content) && content[pos+n] != '\n' && content[pos+n] != '\r' {
			n++
		}
		line := content[pos : pos+n]
		pos += n
		if pos < len(content) {
			pos++
		}
		for len(line) > 0 && blank(line[0]) {
			line = line[1:]
		}
		for len(line) > 0 && blank(line[len(line)-1]) {
			line = line[:len(line)-1]
		}
		if line == "" || line[0] == '#' {
			continue
		}
		k := 0
		for k < len(line) && !blank(line[k]) {
			k++
		}
		if k == len(line) {
			continue // a key without a value
		}
		key, value := line[:k], line[k+1:]
		for len(value) > 0 && blank(value[0]) {
			value = value[1:]
		}
		if len(value) > 0 && value[0] == '"' && line[len(line)-1] == '"' {
			value = value[1:]
			value = value[:max(len(value)-1, 0)]
		}
		switch key {
		case "title":
			e.title = value
		case "linux":
			e.linux, e.hasLinux = value, true
		case "efi":
			e.efi, e.hasEFI = value, true
		case "version":
			e.version, e.hasVersion = value, true
		case "initrd":
			e.initrds = append(e.initrds, value)
		case "options":
			if e.hasOpt {
				e.options += " " + value
			} else {
				e.options, e.hasOpt = value, true
			}
		}
	}
	return e
}

// FuzzParseEntry: ParseEntry never panics; an entry it accepts has the
// title, kernel or EFI image (never both), version, last initrd and
// options the loader reads; one it discards as a leftover (no kernel, no
// EFI image) is one the loader skips too, as Cleanup deletes it; a damaged
// one is an entry the loader boots whose version is not a generation, or
// that has both a linux and an efi line; and FormatEntry of what it read
// reads back the same.
func FuzzParseEntry(f *testing.F) {
	f.Fuzz(func(t *testing.T, file string, body []byte) {
		st, err := systemdboot.ParseEntry(file, body)
		if _, _, _, _, ok := systemdboot.ParseName(file); !ok {
			if err == nil {
				t.Fatalf("ParseEntry(%q) accepted a name ParseName refuses", file)
			}
			return
		}
		sd := sdRead(body)
		switch {
		case errors.Is(err, systemdboot.ErrDamagedEntry):
			if !sd.hasLinux && !sd.hasEFI {
				t.Fatalf("%q: damaged (%v), but systemd-boot sees no linux or efi line", body, err)
			}
			if !(sd.hasLinux && sd.hasEFI) && sd.hasVersion && generation(sd.version) > 0 {
				t.Fatalf("%q: damaged (%v), but systemd-boot reads version %q and one of linux and efi", body, err, sd.version)
			}
			return
		case err != nil: // a leftover: Cleanup discards it
			if sd.hasLinux && sd.linux != "" || sd.hasEFI && sd.efi != "" {
				t.Fatalf("%q: %v, but systemd-boot boots linux %q or efi %q", body, err, sd.linux, sd.efi)
			}
			return
		}
		if sd.hasLinux && sd.hasEFI {
			t.Fatalf("%q: accepted %+v, but it has both a linux and an efi line", body, st)
		}
		lastInitrd := ""
		if len(sd.initrds) > 0 {
			lastInitrd = sd.initrds[len(sd.initrds)-1]
		}
		if !sd.hasLinux && !sd.hasEFI || st.Title != sd.title || st.Kernel != sd.linux || st.EFI != sd.efi || st.Generation != generation(sd.version) || st.Initrd != lastInitrd || st.Options != sd.options {
			t.Fatalf("%q: keel reads title %q linux %q efi %q generation %d initrd %q options %q; systemd-boot: title %q linux %q (%v) efi %q (%v) version %q initrd %q options %q",
				body, st.Title, st.Kernel, st.EFI, st.Generation, st.Initrd, st.Options, sd.title, sd.linux, sd.hasLinux, sd.efi, sd.hasEFI, sd.version, sd.initrds, sd.options)
		}
		if st.Generation <= 0 || st.Kernel == "" && st.EFI == "" {
			t.Fatalf("%q: accepted with generation %d, kernel %q, efi %q", body, st.Generation, st.Kernel, st.EFI)
		}
		// What keel writes for this state reads back the same, unless a
		// field holds what a key/value line cannot: line ends, NUL, quotes
		// (they would be taken off), blanks at either end (trimmed).
		for _, v := range []string{st.Title, st.Kernel, st.EFI, st.Initrd, st.Options} {
			if strings.ContainsAny(v, "\n\r\x00\"") || v != strings.Trim(v, " \t") {
				return
			}
		}
		want := st
		if st.EFI != "" {
			// An EFI image's entry is written without initrd and options
			// lines (FormatEntry): they are not carried over.
			want.Initrd, want.Options = "", ""
		}
		again, err := systemdboot.ParseEntry(file, []byte(systemdboot.FormatEntry(st.Entry)))
		if err != nil || again != want {
			t.Fatalf("%q: read %+v, written back and read %+v (%v)", body, st, again, err)
		}
	})
}

// generation is the loader-side reading of a version line that keel takes
// as a generation: digits only, positive, fits an int; 0 otherwise.
func generation(v string) int {
	if v == "" || strings.ContainsFunc(v, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0
	}
	n := 0
	for _, c := range v {
		if n > (math.MaxInt-9)/10 {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}
