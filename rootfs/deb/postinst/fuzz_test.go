package postinst

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzEvaluate feeds the shell reader and evaluator damaged scripts,
// seeded with Debian 12's: a hostile package must never crash a build. An
// input is a seed script with bytes written over it, bytes inserted and
// its end cut, rather than a whole script: the fuzzer minimises every
// input that finds new coverage, and on scripts of up to 7 KB that took
// all of a fresh run (one execution a second).
func FuzzEvaluate(f *testing.F) {
	scripts, _ := filepath.Glob("testdata/debian12/*/*inst")
	var seeds []string
	for _, s := range scripts {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, string(b))
	}
	seeds = append(seeds, "case $1 in (a|b) x ;; esac; f() { \"$@\"; }; f ${x:-$(y)} `z` $((1))")
	for i := range seeds {
		f.Add(uint8(i), uint16(0), "", uint16(0), "", uint16(0))
	}
	f.Add(uint8(len(seeds)-1), uint16(9), "$(", uint16(30), "\"${", uint16(3))
	tr := mergedUsrTree(f)
	f.Fuzz(func(t *testing.T, seed uint8, off uint16, over string, at uint16, insert string, cut uint16) {
		b := []byte(seeds[int(seed)%len(seeds)])
		copy(b[int(off)%len(b):], over)
		i := int(at) % (len(b) + 1)
		s := string(b[:i]) + insert + string(b[i:])
		s = s[:len(s)-int(cut)%(len(s)+1)]
		evaluate(tr, &Package{Name: "fuzz", Architecture: "amd64"}, "postinst", s)
	})
}
