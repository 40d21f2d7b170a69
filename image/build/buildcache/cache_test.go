package buildcache

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sparseImage writes a file of size bytes with data only at the given
// offsets, holes elsewhere.
func sparseImage(t *testing.T, p string, size int64, data map[int64]string) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for off, s := range data {
		if _, err := f.WriteAt([]byte(s), off); err != nil {
			t.Fatal(err)
		}
	}
}

func allocated(t *testing.T, p string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// TestPutGet: an image comes back byte for byte and as sparse; its result
// too; a corrupt image or a changed dependency is not given back, and the
// corrupt entry is gone.
func TestPutGet(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(filepath.Join(dir, "cache"), nil)
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src.img")
	const size = 64 << 20
	sparseImage(t, src, size, map[int64]string{0: "head", 1<<20 + 5: "middle", size - 3: "end"})
	dep := filepath.Join(dir, "dep")
	os.WriteFile(dep, []byte("v1"), 0o644)
	h := c.NewKey()
	h.String("x", "y")
	key, err := h.Sum()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Put(key, src, []byte(`{"a":1}`), []string{dep, filepath.Join(dir, "absent")}); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(src)
	for _, tt := range []struct {
		name   string
		change func()
		ok     bool
	}{
		{"unchanged", func() {}, true},
		{"a dependency appears", func() { os.WriteFile(filepath.Join(dir, "absent"), nil, 0o644) }, false},
		{"back", func() { os.Remove(filepath.Join(dir, "absent")) }, true},
		{"a dependency changes", func() { os.WriteFile(dep, []byte("v2"), 0o644) }, false},
		{"back again", func() { os.WriteFile(dep, []byte("v1"), 0o644) }, true},
		{"corrupt image", func() {
			f, _ := os.OpenFile(filepath.Join(c.Dir(), key.String(), "disk"), os.O_RDWR, 0)
			f.WriteAt([]byte("X"), 1<<20+6)
			f.Close()
		}, false},
		{"after the corrupt image", func() {}, false},
	} {
		tt.change()
		dst := filepath.Join(dir, "dst.img")
		res, ok, err := c.Get(key, dst)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if ok != tt.ok {
			t.Fatalf("%s: ok %v, want %v", tt.name, ok, tt.ok)
		}
		if !ok {
			continue
		}
		got, _ := os.ReadFile(dst)
		if !bytes.Equal(got, want) || string(res) != `{"a":1}` {
			t.Errorf("%s: image or result differ (%q)", tt.name, res)
		}
		if a := allocated(t, dst); a > 1<<20 {
			t.Errorf("%s: copy allocates %d bytes: not sparse", tt.name, a)
		}
	}
	if _, err := os.Stat(filepath.Join(c.Dir(), key.String())); !os.IsNotExist(err) {
		t.Errorf("the corrupt entry is still there: %v", err)
	}
}

// TestPathDigest: a tree's digest follows content, modes, names and links,
// and a file rewritten with its old size and mtime is still seen (its ctime
// moved) once its hash is remembered.
func TestPathDigest(t *testing.T) {
	defer func(w time.Duration) { racyWindow = w }(racyWindow)
	racyWindow = 0
	dir := t.TempDir()
	c, err := Open(filepath.Join(dir, "cache"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "a"), 0o755)
	f := filepath.Join(tree, "a", "f")
	old := time.Unix(1600000000, 0)
	set := func(s string) {
		os.WriteFile(f, []byte(s), 0o644)
		os.Chtimes(f, old, old)
	}
	set("one")
	digest := func() string {
		t.Helper()
		d, err := c.pathDigest(tree, true)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	seen := map[string]string{}
	check := func(name string, wantNew bool) {
		t.Helper()
		d := digest()
		if d != digest() {
			t.Fatalf("%s: digest not stable", name)
		}
		prev, dup := seen[d]
		if wantNew && dup {
			t.Errorf("%s: same digest as %s", name, prev)
		}
		if !wantNew && !dup {
			t.Errorf("%s: digest changed", name)
		}
		seen[d] = name
	}
	check("start", true)
	check("again", false)
	time.Sleep(20 * time.Millisecond) // a ctime the clock can tell apart
	set("two")
	check("same size and mtime, other content", true)
	os.Chmod(f, 0o600)
	check("mode", true)
	os.Symlink("f", filepath.Join(tree, "a", "l"))
	check("a symlink", true)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2, _ := Open(filepath.Join(dir, "cache"), nil)
	if len(c2.memo.m) == 0 {
		t.Error("the content hashes were not kept for the next build")
	}
}
