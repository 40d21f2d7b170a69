package oci

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"keel/rootfs"
)

var typeNames = map[rootfs.Type]string{
	rootfs.TypeDir: "dir", rootfs.TypeFile: "file", rootfs.TypeSymlink: "sym",
	rootfs.TypeCharDev: "chr", rootfs.TypeBlockDev: "blk", rootfs.TypeFifo: "fifo",
	rootfs.TypeSocket: "sock",
}

// dump lists every path of the tree, one line each: path, type, mode,
// uid:gid, then what the type carries (content, symlink target, device
// numbers), "link=P" for the second and later paths of one inode, "t=N" for
// an mtime other than the tests' epoch, and xattrs. It also checks that
// each file's content is as long as its Size says.
func dump(t *testing.T, tree *rootfs.Tree) []string {
	t.Helper()
	first := map[*rootfs.Entry]string{}
	var out []string
	err := tree.Walk(func(p string, e *rootfs.Entry) error {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s %04o %d:%d", p, typeNames[e.Type], e.Mode, e.UID, e.GID)
		if f, ok := first[e]; ok {
			fmt.Fprintf(&b, " link=%s", f)
		} else {
			first[e] = p
		}
		switch e.Type {
		case rootfs.TypeFile:
			var content []byte
			if e.Content != nil {
				rc, err := e.Content()
				if err != nil {
					return err
				}
				content, err = io.ReadAll(rc)
				rc.Close()
				if err != nil {
					return err
				}
			}
			if int64(len(content)) != e.Size {
				return fmt.Errorf("%s: Size %d, content %d bytes", p, e.Size, len(content))
			}
			fmt.Fprintf(&b, " %q", content)
		case rootfs.TypeSymlink:
			fmt.Fprintf(&b, " -> %s", e.Target)
		case rootfs.TypeCharDev, rootfs.TypeBlockDev:
			fmt.Fprintf(&b, " %d:%d", e.Major, e.Minor)
		}
		if e.Mtime != epoch.Unix() {
			fmt.Fprintf(&b, " t=%d", e.Mtime)
		}
		names := make([]string, 0, len(e.Xattrs))
		for k := range e.Xattrs {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			fmt.Fprintf(&b, " x:%s=%q", k, e.Xattrs[k])
		}
		out = append(out, b.String())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func checkTree(t *testing.T, tree *rootfs.Tree, want []string) {
	t.Helper()
	got := dump(t, tree)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

var contentName = regexp.MustCompile(`^[0-9a-f]{64}$`)

// checkSpool asserts the spool holds only complete, content-addressed files:
// no temporary left behind, nothing named otherwise.
func checkSpool(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !contentName.MatchString(e.Name()) {
			t.Errorf("spool holds %s (%v)", e.Name(), e.Type())
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if sha256hex(b) != e.Name() {
			t.Errorf("spool file %s has content %s", e.Name(), sha256hex(b))
		}
	}
}

// checkOnly asserts dir holds exactly the names given.
func checkOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	sort.Strings(names)
	if strings.Join(got, " ") != strings.Join(names, " ") {
		t.Errorf("%s holds %q, want %q", dir, got, names)
	}
}
