package source

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keel/rootfs"
	"keel/rootfs/deb/debtest"
	"keel/rootfs/deb/lock"
	"keel/rootfs/deb/repotest"
	"keel/rootfs/deb/resolve"
)

// fixture is a small Debian: a base package, an app that depends on a
// library (through a virtual package), a kernel metapackage and its
// versioned package, and systemd-boot-efi.
func fixture(t *testing.T) *repotest.Repo {
	ctl := func(name, version string, extra ...[2]string) [][2]string {
		return append([][2]string{{"Package", name}, {"Version", version}, {"Architecture", "amd64"}, {"Maintainer", "keel tests"}, {"Description", "test"}}, extra...)
	}
	return repotest.New(t, repotest.Options{Debs: []debtest.Deb{
		{Control: ctl("base-files", "12.4", [2]string{"Priority", "required"}, [2]string{"Essential", "yes"}),
			Files: []debtest.File{{Path: "./"}, {Path: "./etc/"}, {Path: "./etc/debian_version", Body: "12.4\n"}, {Path: "./var/"}, {Path: "./var/lib/"}, {Path: "./var/lib/base/"}, {Path: "./var/lib/base/state", Body: "factory\n"}}},
		{Control: ctl("app", "1.0-1", [2]string{"Depends", "libthing (>= 2)"}),
			Files: []debtest.File{{Path: "./"}, {Path: "./bin/"}, {Path: "./bin/app", Mode: 0o755, Body: "#!/bin/sh\n"}}},
		{Control: ctl("libthing2", "2.1-1", [2]string{"Provides", "libthing (= 2.1)"}),
			Files: []debtest.File{{Path: "./"}, {Path: "./lib/"}, {Path: "./lib/libthing.so.2", Body: "ELF"}}},
		{Control: ctl("linux-image-fake", "6.1.9", [2]string{"Depends", "linux-image-6.1.0-9-fake (= 6.1.9)"})},
		{Control: ctl("linux-image-6.1.0-9-fake", "6.1.9", [2]string{"Depends", "kmod, initramfs-tools | linux-initramfs-tool"}),
			Files: []debtest.File{{Path: "./"}, {Path: "./boot/"}, {Path: "./boot/vmlinuz-6.1.0-9-fake", Body: "MZ kernel"},
				{Path: "./lib/"}, {Path: "./lib/modules/"}, {Path: "./lib/modules/6.1.0-9-fake/"}, {Path: "./lib/modules/6.1.0-9-fake/modules.builtin", Body: "kernel/fs/ext4.ko\n"}}},
		{Control: ctl("systemd-boot-efi", "252.39-1"),
			Files: []debtest.File{{Path: "./"}, {Path: "./usr/"}, {Path: "./usr/lib/"}, {Path: "./usr/lib/systemd/"}, {Path: "./usr/lib/systemd/boot/"}, {Path: "./usr/lib/systemd/boot/efi/"},
				{Path: "./usr/lib/systemd/boot/efi/systemd-bootx64.efi", Body: "MZ loader"}}},
		{Control: ctl("evil", "1.0"), Files: []debtest.File{{Path: "./"}, {Path: "./etc/"}, {Path: "./etc/keel/"}, {Path: "./etc/keel/keys/"}, {Path: "./etc/keel/keys/x.pub", Body: "planted"}}},
	}})
}

func config(t *testing.T, r *repotest.Repo, cache string) Config {
	return Config{
		Suite: r.Suite, Mirror: r.URL, Keyring: []string{r.Keyring}, Architecture: "amd64",
		Packages: []string{"app"}, Base: "required", Kernel: "linux-image-fake", LoaderPackages: []string{LoaderPackage},
		CacheDir: cache,
	}
}

func read(t *testing.T, tr *rootfs.Tree, p string) string {
	t.Helper()
	_, e, err := tr.Resolve(p)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	if e.Content == nil {
		return ""
	}
	rc, err := e.Content()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

func TestPrepareApplyLock(t *testing.T) {
	r := fixture(t)
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	c := config(t, r, cache)
	c.Lock = filepath.Join(dir, "p.lock")
	c.WriteLock = true
	ctx := context.Background()

	prep, err := Prepare(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if !prep.LockWritten || prep.Downloaded == 0 {
		t.Errorf("lock written %v, downloaded %d", prep.LockWritten, prep.Downloaded)
	}
	var names []string
	for _, u := range prep.Root {
		names = append(names, u.Control.Package.Name)
	}
	// Dependencies first; the kernel, its dependencies and the loader are
	// not root packages.
	if got := strings.Join(names, " "); got != "libthing2 app base-files" && got != "base-files libthing2 app" {
		t.Errorf("root packages in order: %s", got)
	}
	if prep.Vmlinuz != "/boot/vmlinuz-6.1.0-9-fake" || prep.ModulesDir != "/usr/lib/modules/6.1.0-9-fake" {
		t.Errorf("kernel %q modules %q", prep.Vmlinuz, prep.ModulesDir)
	}
	if got := read(t, prep.Kernel, prep.Vmlinuz); got != "MZ kernel" {
		t.Errorf("vmlinuz %q", got)
	}
	if prep.Loader == nil {
		t.Fatal("no loader")
	}

	tree := rootfs.New()
	if _, err := prep.Apply(ctx, tree, ApplyOptions{Epoch: 1, Arch: "amd64"}); err != nil {
		t.Fatal(err)
	}
	if e, ok := tree.Get("/bin"); !ok || e.Type != rootfs.TypeSymlink || e.Target != "usr/bin" {
		t.Errorf("/bin is not the merged-/usr link: %+v", e)
	}
	if got := read(t, tree, "/bin/app"); got != "#!/bin/sh\n" {
		t.Errorf("/bin/app %q", got)
	}
	if _, ok := tree.Get("/usr/lib/libthing.so.2"); !ok {
		t.Error("the dependency is not installed")
	}
	if !strings.Contains(read(t, tree, "/var/lib/dpkg/status"), "Package: app\n") {
		t.Error("dpkg status does not list app")
	}

	// The lock records every package with its role, and no mirror.
	b, err := os.ReadFile(c.Lock)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"- app\n", "- kernel:linux-image-fake\n", "- loader:systemd-boot-efi\n", "- base:required\n", "name: linux-image-6.1.0-9-fake", "for: [kernel]", "for: [loader]"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("lock lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(string(b), r.URL) {
		t.Error("the lock names the mirror")
	}

	// With the lock and the mirror gone: the same packages, in the same
	// order, from the cache alone.
	r.Close()
	c.WriteLock = false
	c.Mirror = "http://127.0.0.1:1/unreachable"
	locked, err := Prepare(ctx, c)
	if err != nil {
		t.Fatalf("locked build without the mirror: %v", err)
	}
	if locked.Downloaded != 0 || locked.LockWritten {
		t.Errorf("locked: downloaded %d, lock written %v", locked.Downloaded, locked.LockWritten)
	}
	var again []string
	for _, u := range locked.Root {
		again = append(again, u.Control.Package.Name)
	}
	if strings.Join(again, " ") != strings.Join(names, " ") {
		t.Errorf("locked order %v, resolved %v", again, names)
	}
	t2 := rootfs.New()
	if _, err := locked.Apply(ctx, t2, ApplyOptions{Epoch: 1, Arch: "amd64"}); err != nil {
		t.Fatal(err)
	}
	if read(t, t2, "/var/lib/dpkg/status") != read(t, tree, "/var/lib/dpkg/status") {
		t.Error("the locked build's dpkg status differs")
	}

	// Asking for more than the lock holds is refused, naming it.
	c.Packages = append(c.Packages, "evil")
	if _, err := Prepare(ctx, c); !errors.Is(err, ErrDrift) || !strings.Contains(err.Error(), "profile asks for evil") {
		t.Errorf("drift: %v", err)
	}
}

// TestRefusals: what the profile cannot have is refused before anything is
// applied, and a package may not write keel's /etc/keel.
func TestRefusals(t *testing.T) {
	r := fixture(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"unknown package", func(c *Config) { c.Packages = []string{"app", "nope"} }, "packages[1]: nope: not in bookworm"},
		{"unknown kernel", func(c *Config) { c.Kernel = "linux-image-none" }, "kernel.package: linux-image-none: not in bookworm"},
		{"pinned version missing", func(c *Config) { c.Packages = []string{"app=9"} }, "no such version"},
		{"wrong keyring", func(c *Config) {
			other := filepath.Join(t.TempDir(), "other.gpg")
			repotest.WriteKeyring(t, other, repotest.NewKey(t, "other"))
			c.Keyring = []string{other}
		}, "not signed by a key in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := t.TempDir()
			c := config(t, r, cache)
			tc.edit(&c)
			_, err := Prepare(ctx, c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			var unsat *resolve.UnsatError
			if tc.name == "unknown package" && !errors.As(err, &unsat) {
				t.Errorf("not an UnsatError: %T", err)
			}
		})
	}
	t.Run("package writes /etc/keel", func(t *testing.T) {
		c := config(t, r, t.TempDir())
		c.Packages = []string{"evil"}
		prep, err := Prepare(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		_, err = prep.Apply(ctx, rootfs.New(), ApplyOptions{Epoch: 1, Arch: "amd64"})
		if err == nil || !strings.Contains(err.Error(), `package evil: entry "./etc/keel/`) || !strings.Contains(err.Error(), "keel's own") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestRequests(t *testing.T) {
	c := Config{Packages: []string{"b", "a=1"}, Base: "required", Kernel: "linux-image-amd64", LoaderPackages: []string{LoaderPackage}}
	want := []string{"a=1", "b", "base:required", "kernel:linux-image-amd64", "loader:systemd-boot-efi"}
	if got := c.Requests(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("requests %v, want %v", got, want)
	}
	c.Base = "none"
	if got := c.Requests(); len(got) != 4 {
		t.Errorf("base none is no request: %v", got)
	}
	_ = lock.RoleRoot
}
