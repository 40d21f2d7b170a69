package aptsrc

import (
	"os"
	"testing"
)

// FuzzSources: any sources file parses or is an error, never a panic.
func FuzzSources(f *testing.F) {
	for _, p := range []string{"testdata/deb822/etc/apt/sources.list.d/debian.sources",
		"testdata/deb822/etc/apt/sources.list.d/inline.sources", "testdata/oneline/etc/apt/sources.list"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parseDeb822("fuzz.sources", b)
		parseOneLine("fuzz.list", b)
	})
}
