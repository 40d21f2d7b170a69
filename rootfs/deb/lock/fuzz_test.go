package lock

import (
	"os"
	"testing"
)

// FuzzParse: a damaged lock file is an error, never a panic; what parses
// converts to packages.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/example.lock"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("keel-lock: 1\npackages: [{name: x}]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := Parse("fuzz.lock", b)
		if err == nil {
			l.Packages()
			l.Drift([]string{"x"})
		}
	})
}
