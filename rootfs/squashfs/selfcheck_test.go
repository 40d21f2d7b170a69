package squashfs_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"keel/rootfs"
	"keel/rootfs/squashfs"
)

// TestCheckersCatchMismatches makes sure the checks can fail: each case
// writes a small tree, changes the tree behind the image's back, and expects
// the listing and filesystem comparisons to object. Checks that passed
// everything would make every other test here worthless.
func TestCheckersCatchMismatches(t *testing.T) {
	requireUnsquashfs(t)
	cases := []struct {
		name            string
		change          func(t *testing.T, tree *rootfs.Tree)
		listing, onDisk bool // which checks must object
	}{
		{"mode", func(t *testing.T, tree *rootfs.Tree) { get(t, tree, "/f").Mode = 0o4711 }, true, true},
		{"owner", func(t *testing.T, tree *rootfs.Tree) { get(t, tree, "/d").GID = 42 }, true, true},
		{"mtime", func(t *testing.T, tree *rootfs.Tree) { get(t, tree, "/f").Mtime += 3600 }, true, true},
		{"content", func(t *testing.T, tree *rootfs.Tree) {
			get(t, tree, "/f").Content = rootfs.Bytes([]byte("HELLO"))
		}, false, true},
		{"symlink target", func(t *testing.T, tree *rootfs.Tree) { get(t, tree, "/l").Target = "elsewhere" }, true, true},
		{"device", func(t *testing.T, tree *rootfs.Tree) { get(t, tree, "/c").Minor = 301 }, true, true},
		{"xattr value", func(t *testing.T, tree *rootfs.Tree) {
			get(t, tree, "/f").Xattrs = map[string][]byte{"user.a": []byte("2")}
		}, false, true},
		{"hard link split", func(t *testing.T, tree *rootfs.Tree) {
			e := *get(t, tree, "/f")
			add(t, tree, "/d/f", &e) // same metadata and content, but a separate inode
		}, false, true},
		{"entry missing from the tree", func(t *testing.T, tree *rootfs.Tree) {
			if err := tree.Remove("/p"); err != nil {
				t.Fatal(err)
			}
		}, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tree := checkerTree(t)
			image := filepath.Join(t.TempDir(), "img.sqfs")
			if _, err := squashfs.WriteFile(context.Background(), image, tree, squashfs.Options{}); err != nil {
				t.Fatalf("WriteFile: %v", err)
			}
			tc.change(t, tree)
			want := expectations(t, tree, squashfs.DefaultBlockSize)

			rec := &recorder{TB: t}
			checkListing(rec, image, want)
			if got := len(rec.errs) > 0; got != tc.listing {
				t.Errorf("listing check objected: %v, want %v; it said %q", got, tc.listing, rec.errs)
			}
			requireRoot(t, "extracting")
			rec = &recorder{TB: t}
			compareFS(rec, extract(t, image), want, fsCheck{})
			if got := len(rec.errs) > 0; got != tc.onDisk {
				t.Errorf("extraction check objected: %v, want %v; it said %q", got, tc.onDisk, rec.errs)
			}
		})
	}
}

func checkerTree(t *testing.T) *rootfs.Tree {
	tree := rootfs.New()
	add(t, tree, "/d", &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755, UID: 1000, GID: 1000, Mtime: 1e9})
	f := rootfs.NewFile(0o644, []byte("hello"))
	f.Mtime, f.Xattrs = 1e9, map[string][]byte{"user.a": []byte("1")}
	add(t, tree, "/f", f)
	if err := tree.Link("/d/f", "/f"); err != nil {
		t.Fatal(err)
	}
	add(t, tree, "/l", &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: "f", Mtime: 1e9})
	add(t, tree, "/c", &rootfs.Entry{Type: rootfs.TypeCharDev, Mode: 0o600, Major: 259, Minor: 300, Mtime: 1e9})
	add(t, tree, "/p", &rootfs.Entry{Type: rootfs.TypeFifo, Mode: 0o600, Mtime: 1e9})
	return tree
}

func get(t *testing.T, tree *rootfs.Tree, p string) *rootfs.Entry {
	t.Helper()
	e, ok := tree.Get(p)
	if !ok {
		t.Fatalf("%s not in the tree", p)
	}
	return e
}

// recorder collects the errors a check reports instead of failing the test.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (r *recorder) Helper() {}
