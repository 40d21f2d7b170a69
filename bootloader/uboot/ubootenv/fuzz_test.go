package ubootenv_test

import (
	"bytes"
	"errors"
	"maps"
	"testing"

	"keel/bootloader/uboot/ubootenv"
)

// FuzzParse reads b as one single-copy block and, when it splits evenly,
// as two redundant copies. Whatever Parse accepts, Marshal must write back
// (unless it no longer fits: a value's lone trailing backslash, literal on
// import, is escaped on export) so that Parse reads the same variables and
// a second Marshal gives the same bytes. Seeds in testdata/fuzz/FuzzParse
// are mkenvimage outputs; testdata/README.md says how they were made.
func FuzzParse(f *testing.F) {
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(size int, redundant bool, b []byte) {
			env, err := ubootenv.Parse(b, size, redundant)
			if err != nil {
				return
			}
			m, err := env.Marshal(size)
			if errors.Is(err, ubootenv.ErrTooBig) {
				return
			}
			if err != nil {
				t.Fatalf("Marshal of what Parse read: %v", err)
			}
			again, err := ubootenv.Parse(m, size, redundant)
			if err != nil {
				t.Fatalf("Parse(Marshal): %v", err)
			}
			if !maps.Equal(again.Vars, env.Vars) {
				t.Fatalf("Parse(Marshal): %q, want %q", again.Vars, env.Vars)
			}
			m2, err := again.Marshal(size)
			if err != nil || !bytes.Equal(m, m2) {
				t.Fatalf("Marshal(Parse(Marshal)) differs (%v)", err)
			}
		}
		if len(b) > 4 {
			check(len(b), false, b)
		}
		if len(b)%2 == 0 && len(b)/2 > 5 {
			check(len(b)/2, true, b)
		}
	})
}
