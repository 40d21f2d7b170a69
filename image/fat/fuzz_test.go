package fat

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sync"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the fuzz seeds in testdata/fuzz")

// fuzzSize is the device under test: big enough for a real FAT32.
const fuzzSize = 40 * MiB

// fuzzBase is a formatted volume with a few directories and files. The fuzz
// input replaces its first bytes (the boot sector, and more if it is
// longer), so mutated geometry lands on real FAT and directory bytes.
var fuzzBase = sync.OnceValues(func() (*memDev, error) {
	dev := &memDev{size: fuzzSize}
	fs, err := Format(dev, fuzzSize, FormatOptions{Label: "FUZZ", VolumeID: 1})
	if err != nil {
		return nil, err
	}
	for _, p := range []string{"/a/b", "/c"} {
		if err := fs.Mkdir(p); err != nil {
			return nil, err
		}
	}
	for i, p := range []string{"/a/b/long file name.txt", "/c/D.TXT", "/e"} {
		if err := fs.WriteFile(p, bytes.NewReader(make([]byte, 3000*i)), int64(3000*i)); err != nil {
			return nil, err
		}
	}
	return dev, nil
})

// fuzzSeed is the base volume's boot sector.
func fuzzSeed(t testing.TB) []byte {
	base, err := fuzzBase()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 512)
	if _, err := base.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzOpen feeds garbage boot sectors (and FATs) to Open and, when Open
// accepts them, walks the tree and edits it: errors are fine, panics and
// hangs are not.
func FuzzOpen(f *testing.F) {
	f.Add(fuzzSeed(f))
	f.Add(make([]byte, 512))
	base, err := fuzzBase()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dev := &memDev{data: data, base: base, size: fuzzSize}
		fs, err := Open(dev, fuzzSize, OpenOptions{})
		if err != nil {
			return
		}
		budget := 200
		walkAll(fs, "/", &budget)
		_ = fs.Mkdir("/new/dir")
		_ = fs.WriteFile("/new/dir/file.txt", bytes.NewReader([]byte("hello")), 5)
		_ = fs.Rename("/new/dir/file.txt", "/renamed.txt")
		_ = fs.Rename("/a", "/c/a")
		_ = fs.Remove("/renamed.txt")
		_ = fs.Remove("/e")
	})
}

// walkAll reads up to *budget entries: a corrupt image can make a
// directory its own child, and the walk must stay small.
func walkAll(fs *FS, dir string, budget *int) {
	ents, err := fs.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if *budget--; *budget < 0 {
			return
		}
		p := path.Join(dir, e.Name)
		if e.IsDir {
			walkAll(fs, p, budget)
		} else {
			_, _ = fs.ReadFile(p)
		}
	}
}

// TestFuzzSeeds keeps testdata/fuzz/FuzzOpen in step with the code that
// makes the seeds; go test -run TestFuzzSeeds -update rewrites them.
func TestFuzzSeeds(t *testing.T) {
	seeds := map[string][]byte{
		"formatted":       fuzzSeed(t),
		"zero-sector":     make([]byte, 512),
		"signature-only":  append(make([]byte, 510), 0x55, 0xAA),
		"truncated-valid": fuzzSeed(t)[:100],
		"zero-fat":        append(fuzzSeed(t), make([]byte, 20<<10)...), // root cluster free in the FAT
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	for name, b := range seeds {
		file := filepath.Join(dir, name)
		want := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("%v (run go test -run TestFuzzSeeds -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run go test -run TestFuzzSeeds -update", file)
		}
	}
}
