package rootfs

import (
	"io"
	"io/fs"
	"testing"
	"testing/fstest"
)

func TestTreeFS(t *testing.T) {
	tr := New()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tr.MkdirAll("/usr/lib/modules/6.1", 0o755))
	f := NewFile(0o644, []byte("hello"))
	must(tr.Add("/usr/lib/modules/6.1/a.ko", f))
	must(tr.Add("/usr/lib/modules/6.1/empty", &Entry{Type: TypeFile, Mode: 0o600}))
	must(tr.Add("/lib", &Entry{Type: TypeSymlink, Target: "usr/lib"}))
	must(tr.Add("/usr/lib/modules/6.1/abs", &Entry{Type: TypeSymlink, Target: "/usr/lib/modules/6.1/a.ko"}))
	must(tr.Add("/loop", &Entry{Type: TypeSymlink, Target: "/loop"}))
	fsys := tr.FS()
	// fstest walks what ReadDir lists; it opens symlinked names too, so
	// the self-referencing link is taken out of its view.
	if err := fstest.TestFS(subFS{fsys, "usr"}, "lib/modules/6.1/a.ko", "lib/modules/6.1/empty", "lib/modules/6.1/abs"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, want string }{
		{"lib/modules/6.1/a.ko", "hello"},    // through /lib -> usr/lib
		{"usr/lib/modules/6.1/abs", "hello"}, // absolute target
		{"usr/lib/modules/6.1/empty", ""},
	} {
		b, err := fs.ReadFile(fsys, c.name)
		if err != nil || string(b) != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, b, err, c.want)
		}
	}
	r, err := fsys.Open("usr/lib/modules/6.1/a.ko")
	must(err)
	b := make([]byte, 3)
	if n, err := r.(io.ReaderAt).ReadAt(b, 2); n != 3 || string(b) != "llo" {
		t.Errorf("ReadAt: %q %v", b, err)
	}
	for _, bad := range []string{"loop", "nope", "usr/lib/modules/6.1/a.ko/x", "/abs", "../x"} {
		if _, err := fsys.Open(bad); err == nil {
			t.Errorf("Open(%q) succeeded", bad)
		}
	}
}

type subFS struct {
	fs.FS
	dir string
}

func (s subFS) path(name string) string {
	if name == "." {
		return s.dir
	}
	return s.dir + "/" + name
}

func (s subFS) Open(name string) (fs.File, error) { return s.FS.Open(s.path(name)) }
func (s subFS) ReadLink(name string) (string, error) {
	return fs.ReadLink(s.FS, s.path(name))
}
func (s subFS) Lstat(name string) (fs.FileInfo, error) { return fs.Lstat(s.FS, s.path(name)) }
