package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keel/rootfs/deb/debtest"
	"keel/rootfs/deb/repotest"
)

// TestLockAndDrift: keel lock writes the lock; a build with it succeeds; a
// profile that asks for more is refused with exit code 3 and nothing
// written; --update-lock moves the lock. The repository is a signed test
// repository served on loopback.
func TestLockAndDrift(t *testing.T) {
	dir, write := buildDir(t)
	ctl := func(name, version string, extra ...[2]string) [][2]string {
		return append([][2]string{{"Package", name}, {"Version", version}, {"Maintainer", "keel tests"}, {"Description", "t"}}, extra...)
	}
	r := repotest.New(t, repotest.Options{Debs: []debtest.Deb{
		{Control: ctl("hello", "1.0"), Files: []debtest.File{{Path: "./"}, {Path: "./usr/"}, {Path: "./usr/bin/"}, {Path: "./usr/bin/hello", Mode: 0o755, Body: "hi"}}},
		{Control: ctl("world", "2.0"), Files: []debtest.File{{Path: "./"}, {Path: "./etc/"}, {Path: "./etc/world", Body: "w"}}},
		{Control: ctl("linux-image-test", "6.1"), Files: []debtest.File{{Path: "./"}, {Path: "./boot/"}, {Path: "./boot/vmlinuz-6.1.0-test", Body: "MZ kernel"}}},
		{Control: ctl("systemd-boot-efi", "252"), Files: []debtest.File{{Path: "./"}, {Path: "./usr/"}, {Path: "./usr/lib/"}, {Path: "./usr/lib/systemd/"},
			{Path: "./usr/lib/systemd/boot/"}, {Path: "./usr/lib/systemd/boot/efi/"}, {Path: "./usr/lib/systemd/boot/efi/systemd-bootx64.efi", Body: "MZ loader"}}},
	}})
	t.Setenv("KEEL_CACHE", filepath.Join(dir, "cache"))
	profile := func(pkgs string) string {
		return write("p.yaml", []byte("name: t\nversion: \"1\"\ndebian: {suite: bookworm, mirror: \""+r.URL+"\", keyring: \""+r.Keyring+"\"}\n"+
			"packages: ["+pkgs+"]\nkernel: {package: linux-image-test}\ndisk: {esp: 64MiB, slot: 8MiB, data: 8MiB}\n"))
	}
	keel := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := run(context.Background(), args, &out, &out)
		return code, out.String()
	}
	p := profile("hello")
	if code, out := keel("lock", p); code != exitOK || !strings.Contains(out, "wrote "+filepath.Join(dir, "p.lock")) {
		t.Fatalf("keel lock: exit %d\n%s", code, out)
	}
	img := filepath.Join(dir, "out", "d.img")
	if code, out := keel("build", p, "-o", img); code != exitOK {
		t.Fatalf("keel build with the lock: exit %d\n%s", code, out)
	}
	sum := fileSum(t, img)

	p = profile("hello, world")
	code, out := keel("build", p, "-o", img)
	if code != exitRefused || !strings.Contains(out, "profile asks for world, which the lock was not made for") {
		t.Fatalf("drift: exit %d, want %d\n%s", code, exitRefused, out)
	}
	if fileSum(t, img) != sum {
		t.Error("a refused build changed the output")
	}
	if ents, _ := os.ReadDir(filepath.Dir(img)); len(ents) != 1 {
		t.Errorf("a refused build left files: %v", ents)
	}
	if code, out := keel("build", p, "-o", img, "--update-lock"); code != exitOK {
		t.Fatalf("--update-lock: exit %d\n%s", code, out)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "p.lock"))
	if !strings.Contains(string(b), "name: world") {
		t.Errorf("the lock was not updated:\n%s", b)
	}
	// The profile and the lock are inputs: never an output.
	if code, out := keel("build", p, "-o", filepath.Join(dir, "p.lock")); code != exitUsage || !strings.Contains(out, "is an input of the build") {
		t.Errorf("-o the lock file: exit %d\n%s", code, out)
	}
	if code, out := keel("build", p, "-o", p); code != exitUsage || !strings.Contains(out, "is an input of the build") {
		t.Errorf("-o the profile: exit %d\n%s", code, out)
	}
	if code, out := keel("build", p, "-o", dir); code != exitUsage || !strings.Contains(out, "is a directory") {
		t.Errorf("-o a directory: exit %d\n%s", code, out)
	}
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
