package debfetch

import (
	"bytes"
	"debug/elf"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// needApt skips when the host has no apt at all. With apt present, every
// failure (an unreachable mirror included) fails the test: CI must not pass
// while fetching nothing.
func needApt(t *testing.T) {
	t.Helper()
	if err := need("apt-get", "apt-cache", "dpkg-deb"); err != nil {
		t.Skipf("apt-get not installed (%v): these tests need a Debian-based host", err)
	}
}

func testCache(t *testing.T, dir string) *Cache {
	return &Cache{Dir: dir, Log: slog.New(slog.NewTextHandler(t.Output(), nil))}
}

func TestFetchBusybox(t *testing.T) {
	needApt(t)
	c := testCache(t, t.TempDir())
	bb, err := c.Busybox(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	checkStaticELF(t, bb)

	// Again: a cache hit, with the same paths and no download.
	p1, err := c.Fetch(t.Context(), BusyboxPackage)
	if err != nil {
		t.Fatal(err)
	}
	fi1, _ := os.Stat(p1.Deb)
	p2, err := c.Fetch(t.Context(), BusyboxPackage)
	if err != nil {
		t.Fatal(err)
	}
	if *p1 != *p2 || !strings.HasPrefix(bb, p1.Dir+"/") {
		t.Errorf("second fetch %+v, first %+v, busybox %s", p2, p1, bb)
	}
	if fi2, _ := os.Stat(p2.Deb); !fi2.ModTime().Equal(fi1.ModTime()) {
		t.Errorf("%s was downloaded again", p2.Deb)
	}
	if !strings.Contains(p1.Dir, "%3a") || strings.Contains(p1.Dir, ":") {
		t.Errorf("epoch not escaped in %s", p1.Dir)
	}
	leftovers, _ := filepath.Glob(filepath.Join(c.Dir, "*", ".*-*"))
	more, _ := filepath.Glob(filepath.Join(c.Dir, ".download-*"))
	if len(leftovers)+len(more) > 0 {
		t.Errorf("temporary files left in the cache: %v %v", leftovers, more)
	}

	// An exact version in the cache needs no apt: with apt-cache and
	// apt-get failing, it is still found.
	fakeApt(t, "exit 1", "exit 1")
	p3, err := c.Fetch(t.Context(), BusyboxPackage+"="+p1.Version)
	if err != nil || *p3 != *p1 {
		t.Errorf("cached exact version: %+v, %v; want %+v", p3, err, p1)
	}
}

// checkStaticELF checks that path is an x86-64 executable with no program
// interpreter and no shared libraries: it runs in a rootfs with no libc.
func checkStaticELF(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || (f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN) {
		t.Errorf("%s: machine %v type %v", path, f.Machine, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a program interpreter: not static", path)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v", path, libs)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("%s is not executable: %v", path, err)
	}
}

// fakeApt puts apt-cache and apt-get scripts with the given bodies first in
// PATH; each call is appended to the file the returned path names.
func fakeApt(t *testing.T, aptCache, aptGet string) (calls string) {
	t.Helper()
	bin := t.TempDir()
	calls = filepath.Join(bin, "calls")
	for name, body := range map[string]string{"apt-cache": aptCache, "apt-get": aptGet} {
		script := "#!/bin/sh\necho \"" + name + " $*\" >> " + calls + "\n" + body + "\n"
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return calls
}

// TestFetchUnknownUpdatesOnce checks, with fake apt tools (no network, no
// change to the host's lists), that a package apt does not know triggers one
// apt-get update and then ErrNotFound, and that a purely virtual package
// is refused without an update.
func TestFetchUnknownUpdatesOnce(t *testing.T) {
	needApt(t)
	policy := map[string]string{
		"no-such-package-keel": "policy-no-such-package-keel.txt",
		"awk":                  "policy-awk.txt",
	}
	for pkg, fixture := range policy {
		t.Run(pkg, func(t *testing.T) {
			abs, _ := filepath.Abs(filepath.Join("testdata", fixture))
			calls := fakeApt(t,
				`case "$1" in policy) cat `+abs+`;; *) echo "E: No packages found" >&2; exit 100;; esac`,
				`exit 0`)
			var log bytes.Buffer
			c := &Cache{Dir: t.TempDir(), Log: slog.New(slog.NewTextHandler(&log, nil))}
			_, err := c.Fetch(t.Context(), pkg)
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("Fetch = %v, want ErrNotFound", err)
			}
			b, _ := os.ReadFile(calls)
			updates := strings.Count(string(b), "apt-get update")
			wantUpdates := 1
			if pkg == "awk" {
				wantUpdates = 0
			}
			if updates != wantUpdates {
				t.Errorf("apt-get update ran %d times, want %d; calls:\n%s", updates, wantUpdates, b)
			}
			if wantUpdates > 0 && (!strings.Contains(err.Error(), "even after apt-get update") || !strings.Contains(log.String(), "apt-get update")) {
				t.Errorf("the update is not reported: error %q, log %q", err, log.String())
			}
		})
	}
}

// TestKernel fetches the Debian kernel (~70 MB, once) into the shared
// default cache, where later runs and the QEMU tests find it.
func TestKernel(t *testing.T) {
	needApt(t)
	if _, err := findDepmod(); err != nil {
		t.Skip("depmod not installed: apt-get install kmod")
	}
	dir, err := DefaultDir()
	if err != nil {
		t.Fatal(err)
	}
	c := testCache(t, dir)
	start := time.Now()
	k, err := c.Kernel(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s %s in %v: %s", k.Package.Name, k.Package.Version, time.Since(start), k.Vmlinuz)

	if !regexp.MustCompile(`^\d+\.\d+\.\d+-\d+-amd64$`).MatchString(k.Release) {
		t.Errorf("Release = %q", k.Release)
	}
	if k.Package.Name != "linux-image-"+k.Release {
		t.Errorf("package %s for release %s", k.Package.Name, k.Release)
	}
	// A bzImage with the EFI stub: a PE "MZ" header and the boot protocol's
	// "HdrS" at 0x202.
	img, err := os.ReadFile(k.Vmlinuz)
	if err != nil {
		t.Fatal(err)
	}
	if len(img) < 1<<20 || string(img[:2]) != "MZ" || string(img[0x202:0x206]) != "HdrS" {
		t.Errorf("%s (%d bytes) is not a bzImage", k.Vmlinuz, len(img))
	}
	dep, err := os.ReadFile(filepath.Join(k.ModulesDir, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"/virtio_blk.ko:", "/squashfs.ko:", "/ext4.ko:"} {
		if !bytes.Contains(dep, []byte(m)) {
			t.Errorf("modules.dep has no %s", m)
		}
	}
	if _, err := os.Stat(filepath.Join(k.ModulesDir, "kernel", "drivers", "block", "virtio_blk.ko")); err != nil {
		t.Error(err)
	}
}
