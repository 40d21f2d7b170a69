package kmod

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"keel/rootfs"
	"keel/rootfs/initrd"
)

func TestAddToTree(t *testing.T) {
	set, err := Resolve(testModDir, []string{"virtio_blk", "squashfs", "ext4", "btrfs"})
	if err != nil {
		t.Fatal(err)
	}
	tree := rootfs.New()
	// An existing directory keeps its own metadata.
	if err := tree.Add("/lib", &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o700, Mtime: 5}); err != nil {
		t.Fatal(err)
	}
	const mtime = 1700000000
	if err := set.AddToTree(tree, mtime); err != nil {
		t.Fatal(err)
	}

	if e, _ := tree.Get("/lib"); e.Mode != 0o700 || e.Mtime != 5 {
		t.Errorf("/lib changed: %+v", e)
	}
	for _, dir := range []string{"/lib/modules", "/lib/modules/6.1.0-test", "/lib/modules/6.1.0-test/kernel/fs/ext4", "/etc", "/etc/keel"} {
		e, ok := tree.Get(dir)
		if !ok || e.Type != rootfs.TypeDir || e.Mode != 0o755 || e.Mtime != mtime || e.UID != 0 || e.GID != 0 {
			t.Errorf("%s: %+v", dir, e)
		}
	}
	var wantOrder []string
	for _, m := range set.Load {
		p := "/lib/modules/6.1.0-test/" + m.Path
		wantOrder = append(wantOrder, p)
		e, ok := tree.Get(p)
		if !ok || e.Type != rootfs.TypeFile || e.Mode != 0o644 || e.Mtime != mtime || e.Content == nil {
			t.Errorf("%s: %+v", p, e)
		}
	}
	if _, ok := tree.Get("/lib/modules/6.1.0-test/kernel/fs/squashfs/squashfs.ko"); ok {
		t.Error("a builtin module was added")
	}

	e, ok := tree.Get(LoadOrderPath)
	if !ok || e.Mode != 0o644 || e.Mtime != mtime {
		t.Fatalf("%s: %+v", LoadOrderPath, e)
	}
	rc, err := e.Content()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := ParseLoadOrder(rc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, wantOrder) {
		t.Errorf("load order\n got %q\nwant %q", got, wantOrder)
	}
}

// TestInInitrd writes the modules into an initrd and reads the load order
// back out of it with GNU cpio, the way keel-init will find it.
func TestInInitrd(t *testing.T) {
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("cpio: not installed (apt-get install cpio)")
	}
	set, err := Resolve(testModDir, []string{"vfat", "nls_cp437"})
	if err != nil {
		t.Fatal(err)
	}
	tree := rootfs.New()
	if err := set.AddToTree(tree, 1); err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if err := initrd.Write(context.Background(), &archive, tree, initrd.Options{Compression: initrd.None}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cpio, "-i", "--to-stdout", "--quiet", strings.TrimPrefix(LoadOrderPath, "/"))
	cmd.Stdin = &archive
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio: %v", err)
	}
	want := "# kernel modules keel-init loads, in this order\n" +
		"/lib/modules/6.1.0-test/kernel/fs/fat/fat.ko\n" +
		"/lib/modules/6.1.0-test/kernel/fs/fat/vfat.ko\n" +
		"/lib/modules/6.1.0-test/kernel/fs/nls/nls_cp437.ko\n"
	if string(out) != want {
		t.Errorf("%s in the initrd:\n%s\nwant\n%s", LoadOrderPath, out, want)
	}
}

func TestAddToTreeNothingToLoad(t *testing.T) {
	set, err := Resolve(testModDir, []string{"squashfs"})
	if err != nil {
		t.Fatal(err)
	}
	tree := rootfs.New()
	if err := set.AddToTree(tree, 0); err != nil {
		t.Fatal(err)
	}
	e, ok := tree.Get(LoadOrderPath)
	if !ok {
		t.Fatal("no load order file")
	}
	rc, _ := e.Content()
	defer rc.Close()
	if got, err := ParseLoadOrder(rc); err != nil || len(got) != 0 {
		t.Errorf("got %q, %v; want nothing", got, err)
	}
}

func TestAddToTreeErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub.ko"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		set   Set
		setup func(*rootfs.Tree) error
		want  string
	}{
		{
			name: "missing file",
			set:  Set{Dir: dir, Version: "6.1.0", Load: []Module{{Name: "gone", Path: "kernel/gone.ko"}}},
			want: "adding kernel module gone: open " + dir + "/kernel/gone.ko: no such file",
		},
		{
			name: "not a file",
			set:  Set{Dir: dir, Version: "6.1.0", Load: []Module{{Name: "sub", Path: "sub.ko"}}},
			want: "adding kernel module sub: " + dir + "/sub.ko is not a regular file",
		},
		{name: "no version", set: Set{Dir: dir}, want: `bad kernel version ""`},
		{name: "version climbs out", set: Set{Dir: dir, Version: ".."}, want: `bad kernel version ".."`},
		{name: "version with a slash", set: Set{Dir: dir, Version: "6.1/x"}, want: `bad kernel version "6.1/x"`},
		{
			name:  "/etc is a file",
			set:   Set{Dir: dir, Version: "6.1.0"},
			setup: func(tree *rootfs.Tree) error { return tree.Add("/etc", rootfs.NewFile(0o644, nil)) },
			want:  "adding /etc/keel/modules: /etc: is a file, not a directory",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := rootfs.New()
			if tc.setup != nil {
				if err := tc.setup(tree); err != nil {
					t.Fatal(err)
				}
			}
			err := tc.set.AddToTree(tree, 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseLoadOrder(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		wantErr  string
	}{
		{name: "comments and blanks", in: "# x\n\n/lib/modules/v/a.ko\n  /lib/modules/v/b.ko.xz  \n", want: []string{"/lib/modules/v/a.ko", "/lib/modules/v/b.ko.xz"}},
		{name: "empty", in: ""},
		{name: "relative", in: "lib/modules/v/a.ko\n", wantErr: "line 1"},
		{name: "unclean", in: "/lib/modules/v/../a.ko\n", wantErr: "line 1"},
		{name: "not a module", in: "/lib/modules/v/a.ko\n/bin/sh\n", wantErr: `line 2: "/bin/sh"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLoadOrder(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
