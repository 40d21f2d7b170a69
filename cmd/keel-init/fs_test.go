package main

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"keel/rootfs/services"
)

func TestRemoveSameDevice(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"init", "lib/modules/6.1/kernel", "etc/keel", "dev"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"init/keel-init", "lib/modules/6.1/kernel/a.ko", "etc/keel/modules"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// A symlink out of the tree must be removed, not followed.
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		t.Fatal(err)
	}

	// Another device's files (a mount point, like /sysroot) stay.
	if err := removeSameDevice(root, st.Dev+1); err != nil {
		t.Fatal(err)
	}
	if n := countFiles(t, root); n != 12 {
		t.Fatalf("a different device: %d entries left, want all 12", n)
	}

	if err := removeSameDevice(root, st.Dev); err != nil {
		t.Fatal(err)
	}
	if n := countFiles(t, root); n != 0 {
		t.Errorf("%d entries left", n)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Errorf("followed the symlink: %v", err)
	}
}

func countFiles(t *testing.T, root string) int {
	n := 0
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if p != root {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCheckInit(t *testing.T) {
	root := t.TempDir()
	mk := func(p string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte("#!"), mode); err != nil {
			t.Fatal(err)
		}
	}
	mk("usr/bin/keel-init", 0o755)
	mk("etc/hostname", 0o644)
	if err := os.MkdirAll(filepath.Join(root, "sbin"), 0o755); err != nil {
		t.Fatal(err)
	}
	// An absolute symlink must resolve inside the new root, as after chroot.
	if err := os.Symlink("/usr/bin/keel-init", filepath.Join(root, "sbin/init")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr/bin/missing", filepath.Join(root, "sbin/dangling")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ init, wantErr string }{
		{"/sbin/init", ""},
		{"/usr/bin/keel-init", ""},
		{"/sbin/dangling", "no such file"},
		{"/etc/hostname", "not an executable"},
		{"/usr", "not an executable"},
		{"/nope", "no such file"},
	} {
		err := checkInit(root, tc.init)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("checkInit(%s): %v, want %q", tc.init, err, tc.wantErr)
		}
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tool"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, want string }{
		{"tool", filepath.Join(dir, "tool")},
		{"/abs/thing", "/abs/thing"},
		{"./rel", "./rel"},
		{"data", ""},
		{"none", ""},
	} {
		got, err := lookPath(tc.file, "/nonexistent:"+dir)
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("lookPath(%s) = %q, %v; want %q", tc.file, got, err, tc.want)
		}
	}
}

func TestServiceEnv(t *testing.T) {
	t.Setenv("TERM", "vt100")
	svc := services.Service{Name: "a", Command: []string{"x"}, Env: map[string]string{"PATH": "/opt/bin", "MODE": "x"}}
	got := serviceEnv(svc, account{Name: "www", Home: "/var/www"})
	want := []string{"HOME=/var/www", "LOGNAME=www", "MODE=x", "PATH=/opt/bin", "TERM=vt100", "USER=www"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if !sort.StringsAreSorted(got) || envValue(got, "PATH") != "/opt/bin" {
		t.Errorf("env %q", got)
	}
}
