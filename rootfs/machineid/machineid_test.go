package machineid

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"0123456789abcdef0123456789abcdef\n", true},
		{"0123456789ABCDEF0123456789abcdef\n", false},
		{"0123456789abcdef0123456789abcdef", false},
		{"0123456789abcdef0123456789abcdef\n\n", false},
		{"0123456789abcdef0123456789abcde\n", false},
		{"0123456789abcdef0123456789abcdeg\n", false},
		{"00000000000000000000000000000000\n", false},
		{"uninitialized\n", false},
		{"", false},
	} {
		if got := Valid([]byte(tt.in)); got != tt.want {
			t.Errorf("Valid(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestNew(t *testing.T) {
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	b, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if !Valid(a) || !Valid(b) || bytes.Equal(a, b) {
		t.Errorf("New gave %q and %q: want two different valid ids", a, b)
	}
	if a[12] != '4' || !strings.ContainsRune("89ab", rune(a[16])) {
		t.Errorf("%q is not formatted as a version 4 UUID", a)
	}
}

func newVar(t *testing.T) string {
	t.Helper()
	v := filepath.Join(t.TempDir(), "var")
	if err := os.Mkdir(v, 0o755); err != nil {
		t.Fatal(err)
	}
	return v
}

func read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEnsureMakesOnceAndKeeps(t *testing.T) {
	v := newVar(t)
	created, err := Ensure(v, nil)
	if err != nil || !created {
		t.Fatalf("first Ensure: created %v, %v", created, err)
	}
	p := filepath.Join(v, File)
	id := read(t, p)
	if !Valid(id) {
		t.Errorf("%q is not a valid id", id)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o444 {
		t.Errorf("mode %v (%v), want 0444", fi.Mode(), err)
	}
	for range 2 {
		created, err := Ensure(v, func(f string, a ...any) { t.Errorf("logged: "+f, a...) })
		if err != nil || created {
			t.Fatalf("later Ensure: created %v, %v", created, err)
		}
		if got := read(t, p); !bytes.Equal(got, id) {
			t.Errorf("id changed from %q to %q", id, got)
		}
	}
	// Another disk built from the same image gets its own.
	v2 := newVar(t)
	if _, err := Ensure(v2, nil); err != nil {
		t.Fatal(err)
	}
	if other := read(t, filepath.Join(v2, File)); bytes.Equal(other, id) {
		t.Errorf("two disks share the id %q", id)
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Errorf("%s holds %v, want only the id", filepath.Dir(p), ents)
	}
}

func TestEnsureReplacesInvalid(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "outside")
	const outsideID = "0123456789abcdef0123456789abcdef\n"
	if err := os.WriteFile(outside, []byte(outsideID), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		setup func(p string) error
		log   string
	}{
		{"empty", func(p string) error { return os.WriteFile(p, nil, 0o444) }, "(empty)"},
		{"systemd's placeholder", func(p string) error { return os.WriteFile(p, []byte("uninitialized\n"), 0o444) }, "(14 bytes, want 33)"},
		{"uppercase", func(p string) error {
			return os.WriteFile(p, []byte(strings.ToUpper(outsideID)), 0o444)
		}, "not 32 lowercase hex digits"},
		{"too long", func(p string) error { return os.WriteFile(p, bytes.Repeat([]byte("a"), 100), 0o444) }, "(64 bytes, want 33)"},
		// A valid id behind a symlink is not followed: the symlink is
		// replaced, the file it points at untouched.
		{"symlink", func(p string) error { return os.Symlink(outside, p) }, "too many levels of symbolic links"},
		{"leftover temporary file", func(p string) error { return os.WriteFile(p+".tmp", []byte("half"), 0o444) }, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := newVar(t)
			p := filepath.Join(v, File)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := tt.setup(p); err != nil {
				t.Fatal(err)
			}
			var logged []string
			created, err := Ensure(v, func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) })
			if err != nil || !created {
				t.Fatalf("created %v, %v", created, err)
			}
			if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("%s: %v %v, want a regular file", p, fi, err)
			}
			if id := read(t, p); !Valid(id) || string(id) == outsideID {
				t.Errorf("id %q", id)
			}
			if tt.log != "" && (len(logged) != 1 || !strings.Contains(logged[0], tt.log) || !strings.Contains(logged[0], p)) {
				t.Errorf("logged %q, want one line with %q", logged, tt.log)
			}
			if got := read(t, outside); string(got) != outsideID {
				t.Errorf("file outside /var changed: %q", got)
			}
			if _, err := os.Lstat(p + ".tmp"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("temporary file left: %v", err)
			}
		})
	}
}

func TestEnsureDoesNotFollowDirectorySymlinks(t *testing.T) {
	v, outside := newVar(t), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(v, "lib")); err != nil {
		t.Fatal(err)
	}
	_, err := Ensure(v, nil)
	if err == nil || !strings.Contains(err.Error(), "a symlink: not followed") {
		t.Errorf("err = %v, want a refusal of the symlink", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("written outside /var: %v", ents)
	}
}

func TestMountWithoutTarget(t *testing.T) {
	v := newVar(t)
	if _, err := Ensure(v, nil); err != nil {
		t.Fatal(err)
	}
	err := Mount(v, filepath.Join(t.TempDir(), "etc", "machine-id"))
	if !errors.Is(err, ErrNoTarget) {
		t.Errorf("err = %v, want ErrNoTarget", err)
	}
	// The bind mount itself is checked, as root in namespaces, by
	// cmd/keel-init's TestInitrdInNamespaces.
}
