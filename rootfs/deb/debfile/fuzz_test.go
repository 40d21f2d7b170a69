package debfile

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"keel/rootfs/deb/debtest"
	"keel/rootfs/tarfs"
	"keel/rootfs/tarfs/tarfstest"
)

var update = flag.Bool("update", false, "rewrite testdata/fuzz/FuzzOpen's seeds")

// fuzzSeeds are the packages FuzzOpen starts from: every compression, every
// kind of control member and data entry, a hostile one and extra members.
func fuzzSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	seeds := map[string][]byte{}
	for _, c := range [][2]string{{"gz", "gz"}, {"xz", "xz"}, {"zst", "none"}, {"none", "zst"}} {
		seeds["hello-"+c[0]+"-"+c[1]] = debtest.MustBuild(hello(c[0], c[1]))
	}
	seeds["minimal"] = debtest.MustBuild(debtest.Deb{Control: [][2]string{{"Package", "m"}, {"Version", "1"}}, Compression: "none", ControlCompression: "none"})
	seeds["keel-own"] = debtest.MustBuild(debtest.Deb{Control: [][2]string{{"Package", "evil"}, {"Version", "1"}}, Compression: "none", ControlCompression: "none",
		Files: []debtest.File{{Path: "./etc/keel/keys/x.pub", Body: "planted"}, {Path: "./bin", Type: '2', Link: "/tmp"}, {Path: "./x", Type: '1', Link: "../etc/shadow"}}})
	order, m, err := debtest.Members(debtest.Deb{Control: [][2]string{{"Package", "extra"}, {"Version", "1"}}, Compression: "none", ControlCompression: "gz",
		Files: []debtest.File{{Path: "./usr/bin/x", Body: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	m["_sig"] = []byte("odd")
	seeds["extra-members"] = debtest.MustBuild(debtest.Deb{Control: [][2]string{{"Package", "extra"}, {"Version", "1"}},
		RawOrder: []string{order[0], "_sig", order[1], order[2], "_sig"}, Raw: m})
	return seeds
}

// TestFuzzSeeds checks testdata/fuzz/FuzzOpen, the seeds written by
// go test ./rootfs/deb/debfile -run TestFuzzSeeds -args -update: each is
// there and opens. (Not compared byte for byte: a compressor's new version
// may change its output.)
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	for name, b := range fuzzSeeds(t) {
		p := filepath.Join(dir, name)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("%v: run go test ./rootfs/deb/debfile -run TestFuzzSeeds -args -update", err)
			continue
		}
		s, ok := strings.CutPrefix(string(raw), "go test fuzz v1\n[]byte(")
		s, ok2 := strings.CutSuffix(s, ")\n")
		deb, err := strconv.Unquote(s)
		if !ok || !ok2 || err != nil {
			t.Errorf("%s: not a fuzz corpus file of one []byte", p)
			continue
		}
		if _, err := New(strings.NewReader(deb), int64(len(deb))); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// FuzzOpen feeds arbitrary files as .debs: nothing panics; what opens
// applies or is refused; every file in the tree reads back at its Size;
// and when data.tar unpacks whole, replaying it gives the same verdict as
// applying it. Run longer with: go test -fuzz FuzzOpen ./rootfs/deb/debfile
func FuzzOpen(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		df, err := New(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		_ = df.Control.ConffilePaths()
		opts := keelOptions
		opts.Limits = tarfs.Limits{MaxBytes: 16 << 20, MaxEntries: 10000}
		spool := newSpool(t)
		tree := mergedTree(t)
		_, aerr := df.Apply(context.Background(), tree, spool, opts)
		tarfstest.Dump(t, tree)
		ms, err := df.Unpack(context.Background(), spool, opts.Limits)
		if err != nil {
			return
		}
		replayed := mergedTree(t)
		u := &Unpacked{Control: df.Control, Members: ms, spool: spool}
		_, rerr := u.Apply(context.Background(), replayed, opts)
		if (aerr == nil) != (rerr == nil) || aerr != nil && aerr.Error() != rerr.Error() {
			t.Fatalf("applied: %v; replayed: %v", aerr, rerr)
		}
		tarfstest.CheckSpool(t, spool.Dir())
	})
}
