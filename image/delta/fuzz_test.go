package delta

import (
	"bytes"
	"testing"
)

// FuzzParse feeds Parse arbitrary bytes. Whatever it accepts must be
// canonical (written back byte for byte) and hold what the installer
// relies on: chunks back to back, covering each section exactly, each
// within the bounds.
func FuzzParse(f *testing.F) {
	f.Add(sample(f).Marshal())
	small := &Index{Params: Params{Min: 64, Max: 256, AvgBits: 8}, Sections: []Section{splitBytes(f, Params{Min: 64, Max: 256, AvgBits: 8}, "rootfs", random(9, 2000))}}
	f.Add(small.Marshal())
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := Parse(b)
		if err != nil {
			return
		}
		if !bytes.Equal(x.Marshal(), b) {
			t.Fatal("accepted an index that does not write back the same")
		}
		if len(x.Sections) == 0 || len(x.Sections) > MaxSections {
			t.Fatalf("%d sections", len(x.Sections))
		}
		for _, s := range x.Sections {
			var off int64
			for i, c := range s.Chunks {
				if c.Offset != off || c.Size <= 0 || c.Size > int64(x.Params.Max) || (i < len(s.Chunks)-1 && c.Size < int64(x.Params.Min)) {
					t.Fatalf("section %s chunk %d: %+v at %d", s.Name, i, c, off)
				}
				off += c.Size
			}
			if off != s.Size {
				t.Fatalf("section %s: chunks cover %d of %d", s.Name, off, s.Size)
			}
		}
	})
}
