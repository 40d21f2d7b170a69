package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keel/rootfs/deb/debtest"
	"keel/rootfs/deb/repotest"
)

const cachedMark = "(unchanged inputs: the cached image)"

// TestBuildCache: a second build of an unchanged profile is the cached
// image, byte for byte what a build without the cache gives; changing one
// file of a dir source (same size and mtime: only its content and ctime
// differ), the kernel, or SOURCE_DATE_EPOCH builds again, and gives what a
// build without the cache gives; an output changed in place is copied
// again; a corrupt entry is dropped and built again.
func TestBuildCache(t *testing.T) {
	dir, write := buildDir(t)
	cache := filepath.Join(dir, "cache")
	t.Setenv("KEEL_CACHE", cache)
	src := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(src, "srv"), 0o755); err != nil {
		t.Fatal(err)
	}
	app := filepath.Join(src, "srv", "app.conf")
	old := time.Unix(1700000000, 0)
	writeKeepTime := func(content string) {
		t.Helper()
		if err := os.WriteFile(app, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		// The same mtime as before: only the content (and ctime) tells.
		if err := os.Chtimes(app, old, old); err != nil {
			t.Fatal(err)
		}
	}
	writeKeepTime("color = blue\n")
	profile := write("p.yaml", []byte("name: t\nversion: \"1\"\nkernel: {file: vmlinuz}\n"+
		"sources:\n  - {dir: tree}\n  - {file: /etc/motd, content: \"hi\\n\"}\n"+
		"disk: {esp: 64MiB, slot: 8MiB, data: 8MiB}\n"))
	img := filepath.Join(dir, "out", "t.img")
	cold := filepath.Join(dir, "out", "cold.img")

	build := func(out string, extra ...string) (cached bool) {
		t.Helper()
		code, stdout, stderr := keel(t, append([]string{"build", profile, "-o", out}, extra...)...)
		if code != exitOK {
			t.Fatalf("build: exit %d\n%s", code, stderr)
		}
		return strings.Contains(stdout, cachedMark)
	}
	// What each state of the inputs must give: a build without the cache.
	want := func() string {
		t.Helper()
		if build(cold, "--no-build-cache") {
			t.Fatal("--no-build-cache used the cache")
		}
		return fileSum(t, cold)
	}

	steps := []struct {
		name       string
		change     func()
		wantCached bool
	}{
		{"first build", func() {}, false},
		{"unchanged", func() {}, true},
		{"unchanged again", func() {}, true},
		{"one file's content", func() { writeKeepTime("color = red!\n") }, false},
		{"after the change, unchanged", func() {}, true},
		{"kernel", func() { write("vmlinuz", []byte("another kernel")) }, false},
		{"epoch", func() { t.Setenv("SOURCE_DATE_EPOCH", "86400") }, false},
		// The output written over in place (as keel update does): copied
		// from the cache again.
		{"output changed", func() { corruptEntries(t, filepath.Join(dir, "out", "t.img")) }, true},
		// With the output gone, the entry is read: corrupt, it is built again.
		{"corrupt entry", func() {
			corruptEntries(t, filepath.Join(cache, "build", "*", "disk"))
			os.Remove(img)
		}, false},
		{"after the corrupt entry, unchanged", func() {}, true},
	}
	prev := ""
	for _, s := range steps {
		s.change()
		w := want()
		if got := build(img); got != s.wantCached {
			t.Errorf("%s: cached %v, want %v", s.name, got, s.wantCached)
		}
		got := fileSum(t, img)
		if got != w {
			t.Errorf("%s: image %s, a build without the cache gives %s", s.name, got, w)
		}
		if s.name == "one file's content" && got == prev {
			t.Errorf("%s: the image did not change", s.name)
		}
		prev = got
	}
}

// corruptEntries flips a byte of every image the pattern matches.
func corruptEntries(t *testing.T, pattern string) {
	t.Helper()
	ents, err := filepath.Glob(pattern)
	if err != nil || len(ents) == 0 {
		t.Fatalf("nothing matches %s: %v", pattern, err)
	}
	for _, p := range ents {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		// The GPT header's first byte: always data.
		if _, err := f.ReadAt(b, 512); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0xff
		if _, err := f.WriteAt(b, 512); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

// TestBuildCacheDebian: with Debian packages and no lock file, the second
// build is the cached image, keyed by the lock keel keeps for the index at
// hand; after a source file changes, the build takes its packages from
// that lock (the index is not read) and its initrd from the cache, and
// still gives what a build without the cache gives.
func TestBuildCacheDebian(t *testing.T) {
	dir, write := buildDir(t)
	ctl := func(name, version string) [][2]string {
		return [][2]string{{"Package", name}, {"Version", version}, {"Maintainer", "keel tests"}, {"Description", "t"}}
	}
	r := repotest.New(t, repotest.Options{Debs: []debtest.Deb{
		{Control: ctl("hello", "1.0"), Files: []debtest.File{{Path: "./"}, {Path: "./usr/"}, {Path: "./usr/bin/"}, {Path: "./usr/bin/hello", Mode: 0o755, Body: "hi"}}},
		{Control: ctl("linux-image-test", "6.1"), Files: []debtest.File{{Path: "./"}, {Path: "./boot/"}, {Path: "./boot/vmlinuz-6.1.0-test", Body: "MZ kernel"}}},
		{Control: ctl("systemd-boot-efi", "252"), Files: []debtest.File{{Path: "./"}, {Path: "./usr/"}, {Path: "./usr/lib/"}, {Path: "./usr/lib/systemd/"},
			{Path: "./usr/lib/systemd/boot/"}, {Path: "./usr/lib/systemd/boot/efi/"}, {Path: "./usr/lib/systemd/boot/efi/systemd-bootx64.efi", Body: "MZ loader"}}},
	}})
	if err := os.MkdirAll(filepath.Join(dir, "tree"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := write("tree/app.conf", []byte("one\n"))
	profile := write("p.yaml", []byte("name: t\nversion: \"1\"\ndebian: {suite: bookworm, mirror: \""+r.URL+"\", keyring: \""+r.Keyring+"\"}\n"+
		"packages: [hello]\nkernel: {package: linux-image-test}\nsources:\n  - {dir: tree}\ndisk: {esp: 64MiB, slot: 8MiB, data: 8MiB}\n"))
	img, cold := filepath.Join(dir, "out", "t.img"), filepath.Join(dir, "out", "cold.img")
	build := func(out string, extra ...string) (stdout, stderr string) { // logs go to the process's stderr
		t.Helper()
		code, stdout, stderr := keel(t, append([]string{"-v", "build", profile, "-o", out}, extra...)...)
		if code != exitOK {
			t.Fatalf("build: exit %d\n%s", code, stderr)
		}
		return stdout, stderr
	}
	for _, s := range []struct {
		name                            string
		change                          func()
		cached, readsIndex, initrdReuse bool
	}{
		{"first build", func() {}, false, true, false},
		{"unchanged", func() {}, true, false, false},
		{"one file", func() { write("tree/app.conf", []byte("two\n")) }, false, false, true},
		{"unchanged after the change", func() {}, true, false, false},
	} {
		s.change()
		build(cold, "--no-build-cache")
		stdout, _ := build(img)
		if got := strings.Contains(stdout, cachedMark); got != s.cached {
			t.Errorf("%s: cached %v, want %v", s.name, got, s.cached)
		}
		if got := !strings.Contains(stdout, "from the build cache: package lock") && !s.cached; got != s.readsIndex {
			t.Errorf("%s: read the index %v, want %v", s.name, got, s.readsIndex)
		}
		if got := strings.Contains(stdout, "initrd"+"\n") && strings.Contains(stdout, "from the build cache:"); got != s.initrdReuse {
			t.Errorf("%s: initrd reused %v, want %v", s.name, got, s.initrdReuse)
		}
		if fileSum(t, img) != fileSum(t, cold) {
			t.Errorf("%s: the image differs from a build without the cache", s.name)
		}
	}
	_ = conf
}
