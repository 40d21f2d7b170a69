package grub

import (
	"bytes"
	"reflect"
	"testing"

	"keel/bootloader/internal/counted"
)

// FuzzParseEnv: any grubenv either is refused or reads as variables that
// FormatEnv writes back to the same variables.
func FuzzParseEnv(f *testing.F) {
	good, _ := FormatEnv(counted.InitialState())
	f.Add(good)
	esc, _ := FormatEnv(map[string]string{"x": "a\\b\nc", "b_TRY": "3"})
	f.Add(esc)
	f.Add([]byte(envHeader + "# WARNING: comment\nk=v\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < EnvSize {
			// Pad as a grubenv is: most inputs then reach the parser.
			b = append(b, bytes.Repeat([]byte{'#'}, EnvSize-len(b))...)
		}
		vars, err := ParseEnv(b[:EnvSize])
		if err != nil {
			return
		}
		out, err := FormatEnv(vars)
		if err != nil {
			return // a name FormatEnv refuses, or too much after escaping
		}
		again, err := ParseEnv(out)
		if err != nil || !reflect.DeepEqual(again, vars) {
			t.Fatalf("%q → %q → %q, %v", b, vars, again, err)
		}
	})
}

// FuzzParseEntry: an entry file either is refused or reads as an entry
// that FormatEntry writes back to the same entry.
func FuzzParseEntry(f *testing.F) {
	f.Add([]byte("set keel_a_gen='2'\nset keel_a_title='x 1 (slot a)'\nset keel_a_linux='/keel/a/vmlinuz'\nset keel_a_initrd='/keel/a/initrd'\nset keel_a_options='root=PARTUUID=1 keel.slot=a'\n"))
	f.Add([]byte("# comment\nset keel_a_gen='0'\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Entries.ParseEntry("a", b)
		if err != nil {
			return
		}
		out, err := Entries.FormatEntry(e)
		if err != nil {
			return // a value GRUB could read that keel never writes
		}
		again, err := Entries.ParseEntry("a", out)
		if err != nil || again != e {
			t.Fatalf("%q → %+v → %+v, %v", b, e, again, err)
		}
	})
}
