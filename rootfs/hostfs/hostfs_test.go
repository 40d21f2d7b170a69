package hostfs

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"keel/rootfs"
)

func TestLoad(t *testing.T) {
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "etc", "sub"), 0o750))
	must(os.WriteFile(filepath.Join(src, "etc", "f"), []byte("hello"), 0o640))
	must(unix.Chmod(filepath.Join(src, "etc", "f"), 0o4750)) // os.Chmod wants os.ModeSetuid, not 0o4000
	must(os.Link(filepath.Join(src, "etc", "f"), filepath.Join(src, "etc", "sub", "hl")))
	must(os.Symlink("../f", filepath.Join(src, "etc", "sub", "sl")))
	must(unix.Mkfifo(filepath.Join(src, "fifo"), 0o600))
	must(os.WriteFile(filepath.Join(src, "empty"), nil, 0o644))
	xattrOK := unix.Setxattr(filepath.Join(src, "empty"), "user.k", []byte("v"), 0) == nil
	if !xattrOK {
		t.Log("the temp filesystem takes no user xattrs: xattrs not checked")
	}
	root := os.Geteuid() == 0
	if !root {
		t.Log("not root: devices and ownership not checked")
	}
	if root {
		must(unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(os.Lchown(filepath.Join(src, "etc", "sub"), 1000, 100))
	}

	for _, allRoot := range []bool{false, true} {
		tree, err := Load(context.Background(), src, Options{AllRoot: allRoot})
		if err != nil {
			t.Fatal(err)
		}
		get := func(p string) *rootfs.Entry {
			e, ok := tree.Get(p)
			if !ok {
				t.Fatalf("%s missing", p)
			}
			return e
		}
		f, hl := get("/etc/f"), get("/etc/sub/hl")
		if f != hl {
			t.Error("hard links are not one entry")
		}
		if f.Type != rootfs.TypeFile || f.Mode != 0o4750 || f.Size != 5 {
			t.Errorf("/etc/f: %+v", f)
		}
		r, err := f.Content()
		must(err)
		b, _ := io.ReadAll(r)
		r.Close()
		if string(b) != "hello" {
			t.Errorf("content %q", b)
		}
		if sl := get("/etc/sub/sl"); sl.Type != rootfs.TypeSymlink || sl.Target != "../f" {
			t.Errorf("symlink: %+v", sl)
		}
		if e := get("/fifo"); e.Type != rootfs.TypeFifo || e.Mode != 0o600 {
			t.Errorf("fifo: %+v", e)
		}
		if e := get("/empty"); e.Size != 0 || e.Content != nil {
			t.Errorf("empty: %+v", e)
		} else if xattrOK && string(e.Xattrs["user.k"]) != "v" {
			t.Errorf("xattrs: %v", e.Xattrs)
		}
		if root {
			if e := get("/null"); e.Type != rootfs.TypeCharDev || e.Major != 1 || e.Minor != 3 {
				t.Errorf("device: %+v", e)
			}
			wantUID := uint32(1000)
			if allRoot {
				wantUID = 0
			}
			if e := get("/etc/sub"); e.UID != wantUID || e.Mode != 0o750 {
				t.Errorf("allRoot=%v /etc/sub: uid %d mode %#o", allRoot, e.UID, e.Mode)
			}
		}
	}
	if _, err := Load(context.Background(), filepath.Join(src, "nope"), Options{}); err == nil {
		t.Error("loading a missing directory gave no error")
	}
	if _, err := Load(context.Background(), filepath.Join(src, "empty"), Options{}); err == nil {
		t.Error("loading a file as a directory gave no error")
	}
}

func TestHostFileErrors(t *testing.T) {
	if _, err := rootfs.HostFile(filepath.Join(t.TempDir(), "missing"))(); err == nil {
		t.Error("opening a missing file gave no error")
	}
	r, err := rootfs.HostFile(t.TempDir())() // a directory opens, but cannot be read
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Read(make([]byte, 8)); err == nil {
		t.Error("reading a directory gave no error")
	}
}
