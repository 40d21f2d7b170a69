package factory

import (
	"path"
	"strings"
	"testing"

	"keel/rootfs"
)

func mustAdd(t *testing.T, tr *rootfs.Tree, p string, e *rootfs.Entry) {
	t.Helper()
	if err := tr.MkdirAll(path.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := tr.Add(p, e); err != nil {
		t.Fatal(err)
	}
}

func dirEntry(mode, uid uint32) *rootfs.Entry {
	return &rootfs.Entry{Type: rootfs.TypeDir, Mode: mode, UID: uid, GID: uid, Mtime: 300}
}

// below lists the paths under dir, relative to it, with their entries.
func below(tr *rootfs.Tree, dir string) map[string]*rootfs.Entry {
	out := map[string]*rootfs.Entry{}
	_ = tr.Walk(func(p string, e *rootfs.Entry) error {
		if strings.HasPrefix(p, dir+"/") {
			out[strings.TrimPrefix(p, dir+"/")] = e
		}
		return nil
	})
	return out
}

func TestSplit(t *testing.T) {
	tr := rootfs.New()
	varDir := &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755, Mtime: 500, Xattrs: map[string][]byte{"user.v": []byte("1")}}
	mustAdd(t, tr, "/var", varDir)
	mustAdd(t, tr, "/var/lib", dirEntry(0o755, 0))
	mustAdd(t, tr, "/var/lib/app", dirEntry(0o2775, 50))
	status := rootfs.NewFile(0o644, []byte("Package: x\n"))
	status.Xattrs = map[string][]byte{"user.k": []byte("v")}
	mustAdd(t, tr, "/var/lib/dpkg/status", status)
	if err := tr.Link("/var/lib/dpkg/status-old", "/var/lib/dpkg/status"); err != nil {
		t.Fatal(err)
	}
	tool := rootfs.NewFile(0o4755, []byte("\x7fELF"))
	mustAdd(t, tr, "/usr/bin/tool", tool)
	if err := tr.Link("/var/lib/app/tool", "/usr/bin/tool"); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, tr, "/var/run", &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: "/run"})
	mustAdd(t, tr, "/var/lock", &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: "/run/lock"})
	mustAdd(t, tr, "/var/tmp", dirEntry(0o1777, 0))
	mustAdd(t, tr, "/var/home/keel/.ssh/authorized_keys", rootfs.NewFile(0o600, []byte("ssh-ed25519 AAAA\n")))
	mustAdd(t, tr, "/var/spool/fifo", &rootfs.Entry{Type: rootfs.TypeFifo, Mode: 0o600})
	before := below(tr, "/var")

	if err := Split(tr, 1000); err != nil {
		t.Fatal(err)
	}

	if e, ok := tr.Get("/var"); !ok || e != varDir || len(tr.Children("/var")) != 0 {
		t.Errorf("/var after Split: %+v, children %v; want the same entry, empty", e, tr.Children("/var"))
	}
	after := below(tr, Dir)
	if len(after) != len(before) {
		t.Errorf("%d entries in the factory copy, want %d", len(after), len(before))
	}
	for p, e := range before {
		if after[p] != e {
			t.Errorf("%s: factory copy holds %+v, want the entry that was in /var (%+v)", p, after[p], e)
		}
	}
	if after["lib/dpkg/status"] != after["lib/dpkg/status-old"] {
		t.Error("hard link within /var broken")
	}
	if u, _ := tr.Get("/usr/bin/tool"); after["lib/app/tool"] != u {
		t.Error("hard link between /var and /usr broken")
	}
	root, _ := tr.Get(Dir)
	if root == varDir || root.Type != rootfs.TypeDir || root.Mode != 0o755 || root.Mtime != 500 || string(root.Xattrs["user.v"]) != "1" {
		t.Errorf("factory root %+v: want a copy of /var's entry", root)
	}
	root.Xattrs["user.v"][0] = '2'
	root.Xattrs["user.w"] = nil
	if len(varDir.Xattrs) != 1 {
		t.Error("factory root shares /var's xattr map")
	}
	for _, p := range []string{"/usr/share", "/usr/share/factory"} {
		if e, ok := tr.Get(p); !ok || e.Type != rootfs.TypeDir || e.Mode != 0o755 || e.Mtime != 1000 {
			t.Errorf("%s: %+v, want a 0755 directory with the epoch's mtime", p, e)
		}
	}
}

func TestSplitMergesAnExistingFactoryCopy(t *testing.T) {
	tr := rootfs.New()
	mustAdd(t, tr, "/var/new", rootfs.NewFile(0o644, []byte("from /var")))
	mustAdd(t, tr, "/var/both", rootfs.NewFile(0o644, []byte("from /var")))
	mustAdd(t, tr, "/var/clash", rootfs.NewFile(0o644, []byte("a file in /var")))
	mustAdd(t, tr, Dir+"/old", rootfs.NewFile(0o644, []byte("old factory")))
	mustAdd(t, tr, Dir+"/both", rootfs.NewFile(0o644, []byte("old factory")))
	mustAdd(t, tr, Dir+"/clash/inside", rootfs.NewFile(0o644, []byte("old factory")))
	if err := Split(tr, 1); err != nil {
		t.Fatal(err)
	}
	got := below(tr, Dir)
	if len(got) != 4 {
		t.Errorf("factory copy holds %d entries, want 4: %v", len(got), got)
	}
	for p, want := range map[string]int64{"new": 9, "both": 9, "clash": 14, "old": 11} {
		if e := got[p]; e == nil || e.Type != rootfs.TypeFile || e.Size != want {
			t.Errorf("%s: %+v, want a file of %d bytes", p, e, want)
		}
	}
}

func TestSplitEdges(t *testing.T) {
	t.Run("no /var", func(t *testing.T) {
		tr := rootfs.New()
		if err := Split(tr, 7); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"/var", Dir} {
			if e, ok := tr.Get(p); !ok || e.Type != rootfs.TypeDir || e.Mtime != 7 || len(tr.Children(p)) != 0 {
				t.Errorf("%s: %+v, want an empty directory", p, e)
			}
		}
	})
	for _, tt := range []struct {
		name  string
		setup func(*rootfs.Tree) error
		want  string
	}{
		{"/var a symlink", func(tr *rootfs.Tree) error {
			return tr.Add("/var", &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: "/data"})
		}, "/var is a symlink, not a directory"},
		{"/usr/share a file", func(tr *rootfs.Tree) error {
			if err := tr.MkdirAll("/usr", 0o755); err != nil {
				return err
			}
			return tr.Add("/usr/share", rootfs.NewFile(0o644, nil))
		}, "/usr/share is a file, not a directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := rootfs.New()
			if err := tt.setup(tr); err != nil {
				t.Fatal(err)
			}
			err := Split(tr, 1)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one saying %q", err, tt.want)
			}
		})
	}
}
