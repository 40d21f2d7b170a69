package fat

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func sfn(s string) [11]byte {
	var b [11]byte
	copy(b[:], fmt.Sprintf("%-11s", s))
	return b
}

func TestShortNames(t *testing.T) {
	for _, tc := range []struct {
		long  string
		taken []string
		want  string // 11 bytes, as on disk
	}{
		{"keel-b+3-0.conf", nil, "KEEL-B~1CON"},
		{"keel-b+3-0.conf", []string{"KEEL-B~1CON"}, "KEEL-B~2CON"},
		{"loader.conf", nil, "LOADER~1CON"},
		{"vmlinuz", nil, "VMLINUZ    "},
		{"vmlinuz", []string{"VMLINUZ    "}, "VMLINU~1   "},
		{"initrd", nil, "INITRD     "},
		{"Makefile", nil, "MAKEFILE   "},
		{"bootx64.efi", nil, "BOOTX64 EFI"},
		{".bashrc", nil, "BASHRC~1   "},
		{"a.b.c", nil, "AB~1    C  "},
		{"Ünïcødé – näme.txt", nil, "_N_C_D~1TXT"},
		{"x y", nil, "XY~1       "},
		{"keel-b+3-0.conf", []string{"KEEL-B~1CON", "KEEL-B~2CON", "KEEL-B~3CON", "KEEL-B~4CON",
			"KEEL-B~5CON", "KEEL-B~6CON", "KEEL-B~7CON", "KEEL-B~8CON", "KEEL-B~9CON"}, ""}, // hex tail
	} {
		t.Run(tc.long, func(t *testing.T) {
			taken := map[[11]byte]bool{}
			for _, s := range tc.taken {
				taken[sfn(s)] = true
			}
			got, err := makeShortName(tc.long, taken)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				// Linux's second form: 2 characters, 4 hex digits, ~1.
				if g := string(got[:]); g[:2] != "KE" || g[6:8] != "~1" || g[8:] != "CON" || taken[got] {
					t.Errorf("got %q, want KExxxx~1CON", g)
				}
				again, _ := makeShortName(tc.long, taken)
				if again != got {
					t.Errorf("not reproducible: %q then %q", got, again)
				}
				return
			}
			if string(got[:]) != tc.want {
				t.Errorf("got %q, want %q", got[:], tc.want)
			}
		})
	}
}

func TestExactShortName(t *testing.T) {
	for name, ok := range map[string]bool{
		"BOOTX64.EFI": true, "README.TXT": true, "EFI": true, "A": true, "A.B": true,
		"bootx64.efi": false, "LOADER.CONF": false, "TOOLONGNAME": false, "A.": false,
		".A": false, "A B": false, "A+B": false, "A.B.C": false, "Ü": false,
	} {
		if _, got := exactShortName(name); got != ok {
			t.Errorf("exactShortName(%q) = %v, want %v", name, got, ok)
		}
	}
}

func TestCheckName(t *testing.T) {
	for name, ok := range map[string]bool{
		"keel-b+3-0.conf": true, "a b": true, "Ünï": true, strings.Repeat("x", 255): true,
		"": false, ".": false, "..": false, "a/b": false, "a:b": false, "a*": false, "a\x01": false,
		"trailing.": false, "trailing ": false, strings.Repeat("x", 256): false, "\xff": false,
	} {
		err := checkName(name)
		if (err == nil) != ok {
			t.Errorf("checkName(%q) = %v, want ok=%v", name, err, ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("checkName(%q) = %v, not ErrInvalidName", name, err)
		}
	}
}

// Long-name entries round-trip through the directory parser, for lengths
// around the 13-unit boundaries and for characters beyond the BMP.
func TestLFNRoundTrip(t *testing.T) {
	fs := &FS{stamp: toDOSTime(time.Time{})}
	for _, name := range []string{"a", "abcdefghijklm", "abcdefghijklmn", strings.Repeat("z", 26),
		"😀 emoji.txt", strings.Repeat("é", 255)} {
		short, err := makeShortName(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		slots := append(lfnEntries(name, short), fs.newShortEntry(short, attrArchive, 5, 1))
		d := &dir{data: make([]byte, (len(slots)+1)*dirEntrySize)}
		for i, s := range slots {
			copy(d.slot(i), s[:])
		}
		es := d.entries()
		if len(es) != 1 || es[0].name != name || es[0].start != 0 || es[0].slot != len(slots)-1 {
			t.Errorf("%q: parsed %+v", name, es)
		}
		// A wrong checksum drops the long name.
		d.slot(0)[13]++
		if es := d.entries(); len(es) != 1 || es[0].name == name {
			t.Errorf("%q: long name kept despite a bad checksum", name)
		}
	}
}

func TestDOSTime(t *testing.T) {
	for _, tc := range []struct {
		in   time.Time
		want time.Time
	}{
		{time.Time{}, time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)},
		{time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)},
		{time.Date(2024, 5, 17, 12, 34, 57, 0, time.UTC), time.Date(2024, 5, 17, 12, 34, 56, 0, time.UTC)},
		{time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC)},
	} {
		d := toDOSTime(tc.in)
		if got := fromDOSTime(d.date, d.time); !got.Equal(tc.want) {
			t.Errorf("%v: got %v, want %v", tc.in, got, tc.want)
		}
	}
}
