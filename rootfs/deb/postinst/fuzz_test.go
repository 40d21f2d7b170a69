package postinst

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzEvaluate feeds the shell reader and evaluator arbitrary scripts,
// seeded with Debian 12's: a hostile package must never crash a build.
func FuzzEvaluate(f *testing.F) {
	scripts, _ := filepath.Glob("testdata/debian12/*/*inst")
	for _, s := range scripts {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("case $1 in (a|b) x ;; esac; f() { \"$@\"; }; f ${x:-$(y)} `z` $((1))")
	tr := mergedUsrTree(f)
	f.Fuzz(func(t *testing.T, script string) {
		evaluate(tr, &Package{Name: "fuzz", Architecture: "amd64"}, "postinst", script)
	})
}
