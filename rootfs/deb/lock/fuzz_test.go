package lock

import (
	"os"
	"testing"
)

// FuzzParse: a damaged lock file is an error, never a panic; what parses
// converts to packages. An input is a seed lock file with bytes written
// over it, bytes inserted and its end cut, rather than a whole file: the
// fuzzer minimises every input that finds new coverage, and on the 2 KB
// example that took all of a fresh run (13 executions a second).
func FuzzParse(f *testing.F) {
	seeds := [][]byte{[]byte("keel-lock: 1\npackages: [{name: x}]\n")}
	if b, err := os.ReadFile("testdata/example.lock"); err == nil {
		seeds = append(seeds, b)
	}
	for i := range seeds {
		f.Add(uint8(i), uint16(0), []byte{}, uint16(0), []byte{}, uint16(0))
	}
	f.Add(uint8(0), uint16(13), []byte("2"), uint16(0), []byte{}, uint16(0))
	f.Add(uint8(1), uint16(0), []byte{}, uint16(40), []byte("\n  - {name: y, version: ~}\n"), uint16(9))
	f.Fuzz(func(t *testing.T, seed uint8, off uint16, over []byte, at uint16, insert []byte, cut uint16) {
		b := append([]byte(nil), seeds[int(seed)%len(seeds)]...)
		copy(b[int(off)%len(b):], over)
		i := int(at) % (len(b) + 1)
		b = append(b[:i], append(append([]byte(nil), insert...), b[i:]...)...)
		b = b[:len(b)-int(cut)%(len(b)+1)]
		l, err := Parse("fuzz.lock", b)
		if err == nil {
			l.Packages()
			l.Drift([]string{"x"})
		}
	})
}
