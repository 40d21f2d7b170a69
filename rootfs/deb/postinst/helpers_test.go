package postinst

import (
	"context"
	"os"
	"path"
	"testing"

	"keel/rootfs"
)

const testEpoch = 1700000000

// pkg is a package with a postinst.
func pkg(name, postinst string) *Package {
	p := &Package{Name: name, Version: "1.0-1", Architecture: "amd64", Control: "Package: " + name + "\nVersion: 1.0-1\nArchitecture: amd64\n", Scripts: map[string]string{}}
	if postinst != "" {
		p.Scripts["postinst"] = postinst
	}
	return p
}

func addFile(t testing.TB, tr *rootfs.Tree, p string, mode uint32, body string) {
	t.Helper()
	dir, err := tr.MkdirAllTime(path.Dir(p), 0o755, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Add(path.Join(dir, path.Base(p)), rootfs.NewFile(mode, []byte(body))); err != nil {
		t.Fatal(err)
	}
}

func addLink(t testing.TB, tr *rootfs.Tree, p, target string) {
	t.Helper()
	dir, err := tr.MkdirAllTime(path.Dir(p), 0o755, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Add(path.Join(dir, path.Base(p)), &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: target}); err != nil {
		t.Fatal(err)
	}
}

// addTestdata copies a file of testdata/debian12/PKG/data into the tree.
func addTestdata(t testing.TB, tr *rootfs.Tree, pkgName, p string) {
	t.Helper()
	b, err := os.ReadFile("testdata/debian12/" + pkgName + "/data" + p)
	if err != nil {
		t.Fatal(err)
	}
	addFile(t, tr, p, 0o644, string(b))
}

func configure(t testing.TB, tr *rootfs.Tree, pkgs ...*Package) *Report {
	t.Helper()
	rep, err := Configure(context.Background(), tr, pkgs, Options{Epoch: testEpoch, Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func fileString(t testing.TB, tr *rootfs.Tree, p string) string {
	t.Helper()
	b, ok, err := (&configurator{t: tr}).readFile(p)
	if err != nil || !ok {
		t.Fatalf("%s: missing (%v)", p, err)
	}
	return string(b)
}

func readFileOS(p string) ([]byte, error) { return os.ReadFile(p) }
