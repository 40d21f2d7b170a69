package squashfs_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"keel/rootfs"
	"keel/rootfs/squashfs"
)

// TestReproducible writes the same tree several ways and wants the same
// bytes every time: the worker count, Go's map order, the addresses of the
// entries (a tree rebuilt from the same seed) and Write versus WriteFile must
// not show in the output.
func TestReproducible(t *testing.T) {
	full := buildFixture(t, fullFixture)
	tiny, _ := fuzzTree(reproSeed)
	cases := []struct {
		name    string
		tree    *rootfs.Tree
		opts    squashfs.Options
		workers []int
	}{
		{"zstd", full, squashfs.Options{}, []int{1, 2, 7}},
		{"gzip", tiny, squashfs.Options{Compression: squashfs.Gzip, BlockSize: 4096}, []int{1, 3}},
		{"xz", tiny, squashfs.Options{Compression: squashfs.XZ, XZBCJ: true, BlockSize: 4096}, []int{1, 3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.tree != full {
				t.Logf("tree: %s", summary(expectations(t, tc.tree, 4096)))
			}
			var first []byte
			var firstStats *squashfs.Stats
			same := func(what string, img []byte, st *squashfs.Stats) {
				t.Helper()
				if first == nil {
					first, firstStats = img, st
					return
				}
				if !bytes.Equal(img, first) {
					t.Errorf("%s: %d bytes, differing from the first image (%d bytes) at offset %d", what, len(img), len(first), diffAt(img, first))
				}
				if !reflect.DeepEqual(st, firstStats) {
					t.Errorf("%s: Stats %+v, first image's %+v", what, *st, *firstStats)
				}
			}
			for _, w := range tc.workers {
				opts := tc.opts
				opts.Workers = w
				img, st := writeMem(t, tc.tree, opts, nil)
				same("Workers "+strconv.Itoa(w), img, st)
			}
			opts := tc.opts
			opts.Workers = 2
			// Again, over a target full of old bytes, as a reused partition
			// is: every byte up to Stats.Bytes must be written.
			img, st := writeMem(t, tc.tree, opts, bytes.Repeat([]byte{0xa5}, len(first)+1<<16))
			same("the same tree again, over old bytes", img[:min(int64(len(img)), st.Bytes)], st)
			if tc.tree == full {
				img, st = writeMem(t, buildFixture(t, fullFixture), opts, nil)
				same("a tree rebuilt from the same seed", img, st)
				return // WriteFile's copy is checked on the small trees, to save time
			}
			name := filepath.Join(t.TempDir(), "root.sqfs")
			st, err := squashfs.WriteFile(context.Background(), name, tc.tree, opts)
			if err != nil {
				t.Fatalf("WriteFile: %v", err)
			}
			img, err = os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			same("WriteFile", img, st)
		})
	}
}

// reproSeed is fuzzer input for a small tree with every entry type, for the
// compressors too slow to chew through the full fixture several times.
var reproSeed = func() []byte {
	rng := rand.New(rand.NewPCG(3, 3))
	b := make([]byte, 6000)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}()

// writeMem writes the image into memory that starts out holding old.
func writeMem(t *testing.T, tree *rootfs.Tree, opts squashfs.Options, old []byte) ([]byte, *squashfs.Stats) {
	t.Helper()
	m := memImage{buf: old}
	st, err := squashfs.Write(context.Background(), &m, tree, opts)
	if err != nil {
		t.Fatalf("Write (Workers %d): %v", opts.Workers, err)
	}
	if old == nil && int64(len(m.buf)) != st.Bytes {
		t.Errorf("Write (Workers %d) wrote %d bytes, Stats.Bytes says %d", opts.Workers, len(m.buf), st.Bytes)
	}
	return m.buf, st
}

func diffAt(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
