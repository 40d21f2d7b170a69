package profiles

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds Parse arbitrary bytes: it must return a profile or
// errors, never panic or hang. Seeds are the valid and invalid fixtures.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.yaml")
	seeds = append(seeds, "examples/busybox.yaml")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(head + "disk: {size: 1G\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("testdata/valid/fuzz.yaml", data)
		if (p == nil) == (err == nil) {
			t.Fatalf("Parse returned profile %v and error %v", p != nil, err)
		}
		if err != nil && len(Errors(err)) == 0 {
			t.Fatalf("error without *Error: %v", err)
		}
	})
}
