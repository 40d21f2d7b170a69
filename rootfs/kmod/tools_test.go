package kmod

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"keel/rootfs"
	"keel/rootfs/hostfs"
)

func lookTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		// depmod and modprobe live in /usr/sbin, which is not always on
		// a normal user's PATH.
		if p = "/usr/sbin/" + name; fileExists(p) {
			return p
		}
		t.Skipf("%s: not installed (apt-get install %s)", name, pkg)
	}
	return p
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// fakeModule is a module for depmod: the symbols it exports and the
// symbols it uses, from which depmod works out the dependencies, exactly
// as for a real module.
type fakeModule struct {
	path    string // relative to the modules directory
	exports []string
	uses    []string
	softdep string   // .modinfo "softdep=", e.g. "pre: crypto-crcfake"
	aliases []string // .modinfo "alias=" values
}

// buildFakeModules assembles each module as a small ELF object (the
// sections depmod reads: __ksymtab_strings for exports, undefined symbols
// in .symtab for imports, .modinfo), writes modules.builtin and runs depmod
// over them. The result is a modules directory written by the real depmod.
func buildFakeModules(t *testing.T, version string, mods []fakeModule, builtin []string) (root, modDir string) {
	as := lookTool(t, "as", "binutils")
	depmod := lookTool(t, "depmod", "kmod")
	root = t.TempDir()
	modDir = filepath.Join(root, "lib/modules", version)
	exporter := map[string]string{}
	for _, m := range mods {
		for _, e := range m.exports {
			exporter[e] = Name(m.path)
		}
	}
	for _, m := range mods {
		// modpost records the direct dependencies in .modinfo, once each.
		var depends []string
		for _, u := range m.uses {
			if d := exporter[u]; !slices.Contains(depends, d) {
				depends = append(depends, d)
			}
		}
		var src strings.Builder
		src.WriteString(".section __ksymtab_strings,\"a\"\n")
		for _, e := range m.exports {
			fmt.Fprintf(&src, ".asciz %q\n", e)
		}
		fmt.Fprintf(&src, ".section .modinfo,\"a\"\n.asciz \"depends=%s\"\n.asciz \"name=%s\"\n",
			strings.Join(depends, ","), Name(m.path))
		if m.softdep != "" {
			fmt.Fprintf(&src, ".asciz \"softdep=%s\"\n", m.softdep)
		}
		for _, a := range m.aliases {
			fmt.Fprintf(&src, ".asciz \"alias=%s\"\n", a)
		}
		src.WriteString(".text\n")
		for _, e := range m.exports {
			fmt.Fprintf(&src, ".globl %s\n%s:\n", e, e)
		}
		for _, u := range m.uses {
			fmt.Fprintf(&src, "call %s\n", u)
		}
		src.WriteString("ret\n")
		dst := filepath.Join(modDir, m.path)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		obj := strings.TrimSuffix(dst, ".xz")
		cmd := exec.Command(as, "-o", obj, "-")
		cmd.Stdin = strings.NewReader(src.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("as for %s: %v\n%s\n%s", m.path, err, out, src.String())
		}
		if strings.HasSuffix(m.path, ".xz") {
			run(t, lookTool(t, "xz", "xz-utils"), "--check=crc32", obj)
		}
	}
	var b strings.Builder
	for _, p := range builtin {
		b.WriteString(p + "\n")
	}
	if err := os.WriteFile(filepath.Join(modDir, "modules.builtin"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, depmod, "-b", root, version)
	return root, modDir
}

// showDepends asks modprobe for the modules it would load for name, in
// order, as paths relative to modDir; builtin names come back as
// "builtin NAME".
func showDepends(t *testing.T, root, modDir, version, name string) []string {
	modprobe := lookTool(t, "modprobe", "kmod")
	out := run(t, modprobe, "-d", root, "-S", version, "--show-depends", name)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "insmod":
			rel, err := filepath.Rel(modDir, f[1])
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, filepath.ToSlash(rel))
		case len(f) == 2 && f[0] == "builtin":
			got = append(got, "builtin "+f[1])
		default:
			t.Fatalf("modprobe --show-depends %s: unexpected line %q", name, line)
		}
	}
	return got
}

func resolvedPaths(set *Set) []string {
	var got []string
	for _, b := range set.Builtin {
		got = append(got, "builtin "+b)
	}
	for _, m := range set.Load {
		got = append(got, m.Path)
	}
	return got
}

var fakeModules = []fakeModule{
	{path: "kernel/lib/base.ko", exports: []string{"base_fn"}},
	{path: "kernel/lib/crc-x.ko", exports: []string{"crc_fn"}},
	// A soft dependency through an alias, as ext4's "pre: crc32c" is met
	// by crc32c_generic's "alias=crypto-crc32c".
	{path: "kernel/crypto/crcfake-generic.ko", aliases: []string{"crypto-crcfake", "crcfake"}},
	{path: "kernel/fs/softy.ko", softdep: "pre: crcfake", uses: []string{"base_fn"}},
	{path: "kernel/drivers/left.ko", exports: []string{"left_fn"}, uses: []string{"base_fn"}},
	{path: "kernel/drivers/right.ko", exports: []string{"right_fn"}, uses: []string{"base_fn", "crc_fn"}},
	{path: "kernel/drivers/top.ko", exports: []string{"top_fn"}, uses: []string{"left_fn", "right_fn"}},
	{path: "kernel/drivers/my-dash_mix.ko", uses: []string{"right_fn"}},
	{path: "kernel/fs/packed.ko.xz", exports: []string{"packed_fn"}, uses: []string{"top_fn", "crc_fn"}},
	{path: "kernel/fs/leaf.ko", uses: []string{"packed_fn", "base_fn"}},
	{path: "kernel/fs/alone.ko"},
}

var fakeNames = []string{"base", "crc_x", "crc-x", "left", "right", "top", "my_dash-mix", "packed", "leaf", "alone", "softy", "squashfs"}

// TestAgainstDepmodAndModprobe builds modules whose dependencies depmod
// works out itself (a diamond, a chain, '-' in names, a compressed module, a
// builtin), and checks that, module by module, Resolve gives the same files
// in the same order as `modprobe --show-depends` on the same directory.
func TestAgainstDepmodAndModprobe(t *testing.T) {
	const version = "6.1.0-fake"
	root, modDir := buildFakeModules(t, version, fakeModules, []string{"kernel/fs/squashfs/squashfs.ko"})
	for _, name := range fakeNames {
		t.Run(name, func(t *testing.T) {
			set, err := Resolve(modDir, []string{name})
			if err != nil {
				t.Fatal(err)
			}
			got := resolvedPaths(set)
			want := showDepends(t, root, modDir, version, name)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Resolve\n got %q\nmodprobe --show-depends\nwant %q", got, want)
			}
			checkOrder(t, set.Load)
		})
	}
}

// TestModinfoFallback: without modules.dep (a kernel package unpacked with
// dpkg -x, before depmod), Resolve reads each module's .modinfo and must
// find the same modules as depmod did, in a valid order.
func TestModinfoFallback(t *testing.T) {
	const version = "6.1.0-fake"
	_, modDir := buildFakeModules(t, version, fakeModules, []string{"kernel/fs/squashfs/squashfs.ko"})
	withDep := map[string]*Set{}
	for _, name := range fakeNames {
		set, err := Resolve(modDir, []string{name})
		if err != nil {
			t.Fatal(err)
		}
		withDep[name] = set
	}
	for _, f := range []string{"modules.dep", "modules.dep.bin"} {
		if err := os.Remove(filepath.Join(modDir, f)); err != nil {
			t.Fatal(err)
		}
	}
	sorted := func(s []string) []string { s = slices.Clone(s); sort.Strings(s); return s }
	for _, name := range fakeNames {
		set, err := Resolve(modDir, []string{name})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkOrder(t, set.Load)
		want := withDep[name]
		if got, want := sorted(resolvedPaths(set)), sorted(resolvedPaths(want)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: from .modinfo %q, from modules.dep %q", name, got, want)
		}
		if last := set.Load; len(last) > 0 && last[len(last)-1].Name != Name(name) {
			t.Errorf("%s: the requested module is not last: %v", name, names(set.Load))
		}
	}
	// Everything at once: each module once, all dependencies first.
	set, err := Resolve(modDir, fakeNames)
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, set.Load)
	if len(set.Load) != len(fakeModules) || !reflect.DeepEqual(set.Builtin, []string{"squashfs"}) {
		t.Errorf("load %v builtin %v", names(set.Load), set.Builtin)
	}
}

func TestModinfoErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string // path → content; "ELF:deps" builds a module
		want  string
	}{
		{"not ELF", map[string]string{"kernel/a.ko": "junk"}, "kernel/a.ko: not an ELF module"},
		{"same name twice", map[string]string{"kernel/a.ko": "", "extra/a.ko": ""}, "module a is both extra/a.ko and kernel/a.ko"},
		{"dependency missing", map[string]string{"kernel/a.ko": "ELF:b"}, "kernel/a.ko depends on b, which is not in"},
		{"bad xz", map[string]string{"kernel/a.ko.xz": "not xz"}, "kernel/a.ko.xz: decompressing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			modDir := filepath.Join(t.TempDir(), "6.1.0-x")
			for p, content := range tc.files {
				dst := filepath.Join(modDir, p)
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					t.Fatal(err)
				}
				if deps, ok := strings.CutPrefix(content, "ELF:"); ok {
					as := lookTool(t, "as", "binutils")
					cmd := exec.Command(as, "-o", dst, "-")
					cmd.Stdin = strings.NewReader(".section .modinfo,\"a\"\n.asciz \"depends=" + deps + "\"\n")
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Fatalf("as: %v\n%s", err, out)
					}
					continue
				}
				if err := os.WriteFile(dst, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Resolve(modDir, []string{"a"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestDebianKernel runs Resolve on a Debian kernel package that a build
// downloaded into keel's cache ($KEEL_CACHE/deb/pool, or ~/.cache/keel's;
// the QEMU tests fetch one), unpacked here with dpkg-deb, and compares
// with modprobe, after depmod, and with the .modinfo fallback, before it.
// It downloads nothing: without such a package it skips.
func TestDebianKernel(t *testing.T) {
	cache := os.Getenv("KEEL_CACHE")
	if cache == "" {
		home, _ := os.UserCacheDir()
		cache = filepath.Join(home, "keel")
	}
	dpkgDeb := lookTool(t, "dpkg-deb", "dpkg")
	debs, _ := filepath.Glob(filepath.Join(cache, "deb", "pool", "*.deb"))
	var kernelDeb string
	for _, d := range debs {
		out, err := exec.Command(dpkgDeb, "--field", d, "Package").Output()
		if err == nil && strings.HasPrefix(string(out), "linux-image-") && !strings.HasPrefix(string(out), "linux-image-amd64") {
			if fi, err := os.Stat(d); err == nil && fi.Size() > 10<<20 {
				kernelDeb = d
				break
			}
		}
	}
	if kernelDeb == "" {
		t.Skipf("no linux-image package in %s/deb/pool; the QEMU tests (or keel build) download one", cache)
	}
	root := t.TempDir()
	run(t, dpkgDeb, "-x", kernelDeb, root)
	dirs, _ := filepath.Glob(filepath.Join(root, "lib/modules/*/kernel"))
	if len(dirs) != 1 {
		t.Fatalf("%s: %d module trees", kernelDeb, len(dirs))
	}
	modDir := filepath.Dir(dirs[0])
	version := filepath.Base(modDir)
	request := []string{"virtio_blk", "virtio_pci", "squashfs", "fat", "vfat", "nls_cp437", "nls_ascii", "ext4", "efivarfs"}
	// As packaged (no modules.dep): what keel build does.
	fromModinfo := map[string][]string{}
	for _, name := range request {
		one, err := Resolve(modDir, []string{name})
		if err != nil {
			t.Fatalf("%s without modules.dep: %v", name, err)
		}
		checkOrder(t, one.Load)
		fromModinfo[name] = resolvedPaths(one)
	}
	// Then as installed: depmod, and modprobe as the reference.
	run(t, lookTool(t, "depmod", "kmod"), "-b", root, version)
	for _, name := range request {
		want := showDepends(t, root, modDir, version, name)
		// .modinfo lists a module's dependencies in another order than
		// depmod's line does; any order that loads each module after
		// its dependencies (checked above) is right, and the set must
		// be modprobe's.
		sorted := func(s []string) []string { s = slices.Clone(s); sort.Strings(s); return s }
		if got := fromModinfo[name]; !reflect.DeepEqual(sorted(got), sorted(want)) {
			t.Errorf("%s: Resolve from .modinfo\n got %q\nmodprobe --show-depends\nwant %q", name, got, want)
		}
		one, err := Resolve(modDir, []string{name})
		if err != nil {
			t.Fatal(err)
		}
		if got := resolvedPaths(one); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Resolve from modules.dep\n got %q\nmodprobe --show-depends\nwant %q", name, got, want)
		}
	}
	t.Logf("%s: %d requested modules agree with modprobe, with and without modules.dep", version, len(request))
}

// TestResolveFSFromTree: a kernel package applied to an in-memory tree
// (merged /usr: /lib a symlink to usr/lib) resolves through Tree.FS
// exactly as the same modules on disk, without modules.dep, and AddToTree
// reads them from the tree.
func TestResolveFSFromTree(t *testing.T) {
	const version = "6.1.0-fake"
	_, modDir := buildFakeModules(t, version, fakeModules, []string{"kernel/fs/squashfs/squashfs.ko"})
	for _, f := range []string{"modules.dep", "modules.dep.bin", "modules.softdep", "modules.alias", "modules.alias.bin"} {
		os.Remove(filepath.Join(modDir, f))
	}
	tr := rootfs.New()
	if err := tr.MkdirAll("/usr/lib/modules", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := tr.Add("/lib", &rootfs.Entry{Type: rootfs.TypeSymlink, Target: "usr/lib"}); err != nil {
		t.Fatal(err)
	}
	if err := hostfs.Add(context.Background(), tr, modDir, "/usr/lib/modules/"+version, hostfs.Options{}); err != nil {
		t.Fatal(err)
	}
	fromDisk, err := Resolve(modDir, fakeNames)
	if err != nil {
		t.Fatal(err)
	}
	fromTree, err := ResolveFS(tr.FS(), "lib/modules/"+version, fakeNames)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resolvedPaths(fromTree), resolvedPaths(fromDisk); !reflect.DeepEqual(got, want) {
		t.Fatalf("from the tree %q, from disk %q", got, want)
	}
	initrd := rootfs.New()
	if err := fromTree.AddToTree(initrd, 0); err != nil {
		t.Fatal(err)
	}
	for _, m := range fromTree.Load {
		e, ok := initrd.Get("/lib/modules/" + version + "/" + m.Path)
		if !ok {
			t.Fatalf("%s not in the initrd tree", m.Path)
		}
		r, err := e.Content()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		host, _ := os.ReadFile(filepath.Join(modDir, m.Path))
		if !bytes.Equal(b, host) {
			t.Errorf("%s: content differs from the host file", m.Path)
		}
	}
}
