package aptsrc

import (
	"os"
	"testing"
)

// FuzzSources: any sources file parses or is an error, never a panic. An
// input is a seed file with bytes written over it, bytes inserted and its
// end cut, rather than a whole file: the fuzzer minimises every input
// that finds new coverage, and on the 450-byte seeds that took seconds
// each (a fresh 3 s run made 16 executions).
func FuzzSources(f *testing.F) {
	var seeds [][]byte
	for _, p := range []string{"testdata/deb822/etc/apt/sources.list.d/debian.sources",
		"testdata/deb822/etc/apt/sources.list.d/inline.sources", "testdata/oneline/etc/apt/sources.list"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	for i := range seeds {
		f.Add(uint8(i), uint16(0), []byte{}, uint16(0), []byte{}, uint16(0))
	}
	f.Add(uint8(2), uint16(4), []byte("-src [ arch=amd64"), uint16(0), []byte("deb\t"), uint16(0))
	f.Fuzz(func(t *testing.T, seed uint8, off uint16, over []byte, at uint16, insert []byte, cut uint16) {
		b := append([]byte(nil), seeds[int(seed)%len(seeds)]...)
		copy(b[int(off)%len(b):], over)
		i := int(at) % (len(b) + 1)
		b = append(b[:i], append(append([]byte(nil), insert...), b[i:]...)...)
		b = b[:len(b)-int(cut)%(len(b)+1)]
		parseDeb822("fuzz.sources", b)
		parseOneLine("fuzz.list", b)
	})
}
