package rootfs

import (
	"errors"
	"io/fs"
	"testing"
)

func TestResolveAndMkdirAllTime(t *testing.T) {
	tr := New()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tr.MkdirAll("/usr/lib", 0o755))
	must(tr.Add("/lib", &Entry{Type: TypeSymlink, Mode: 0o777, Target: "usr/lib"}))
	must(tr.Add("/usr/lib/os-release", NewFile(0o644, []byte("x"))))
	must(tr.Add("/etc", &Entry{Type: TypeDir, Mode: 0o755}))
	must(tr.Add("/etc/os-release", &Entry{Type: TypeSymlink, Mode: 0o777, Target: "../lib/os-release"}))
	must(tr.Add("/loop", &Entry{Type: TypeSymlink, Mode: 0o777, Target: "/loop"}))

	for _, tc := range []struct{ in, want string }{
		{"/lib/os-release", "/usr/lib/os-release"},
		{"/etc/os-release", "/usr/lib/os-release"},
		{"lib/../lib/os-release", "/usr/lib/os-release"},
	} {
		got, e, err := tr.Resolve(tc.in)
		if err != nil || got != tc.want || e.Type != TypeFile {
			t.Errorf("Resolve(%q) = %q, %v, %v", tc.in, got, e, err)
		}
	}
	if _, _, err := tr.Resolve("/loop/x"); err == nil {
		t.Error("a link loop resolved")
	}
	if _, _, err := tr.Resolve("/lib/missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	if got, err := tr.ResolveParent("/etc/os-release"); err != nil || got != "/etc/os-release" {
		t.Errorf("ResolveParent kept the last link? %q %v", got, err)
	}
	if got, err := tr.ResolveParent("/lib/systemd"); err != nil || got != "/usr/lib/systemd" {
		t.Errorf("ResolveParent(/lib/systemd) = %q, %v", got, err)
	}
	got, err := tr.MkdirAllTime("/lib/systemd/system", 0o755, 42)
	if err != nil || got != "/usr/lib/systemd/system" {
		t.Fatalf("MkdirAllTime = %q, %v", got, err)
	}
	for _, p := range []string{"/usr/lib/systemd", "/usr/lib/systemd/system"} {
		if e, ok := tr.Get(p); !ok || e.Type != TypeDir || e.Mtime != 42 || e.Mode != 0o755 {
			t.Errorf("%s: %+v", p, e)
		}
	}
	if e, _ := tr.Get("/lib"); e.Type != TypeSymlink {
		t.Error("MkdirAllTime replaced the /lib link")
	}
	if _, err := tr.MkdirAllTime("/usr/lib/os-release/x", 0o755, 0); err == nil {
		t.Error("MkdirAllTime through a file")
	}
}
