package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keel/bootloader/systemdboot"
	"keel/image/build"
	"keel/image/bundle"
	"keel/profiles"
)

// images builds v1's disk and v2's bundle of a small profile with a fake
// kernel, and a key pair; other.pub is a key the bundle is not signed with.
func images(t *testing.T) (disk, v2, pub, other string) {
	t.Helper()
	if _, err := os.Stat(systemdboot.DefaultEFI); err != nil {
		t.Skip("systemd-boot not installed: apt-get install systemd-boot-efi")
	}
	dir := t.TempDir()
	p, k, err := bundle.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := bundle.WriteKeyPair(dir, "release", p, k); err != nil {
		t.Fatal(err)
	}
	op, ok, _ := bundle.GenerateKey(rand.Reader)
	if err := bundle.WriteKeyPair(dir, "other", op, ok); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("not a kernel"), 0o644)
	for _, v := range []string{"1.0.0", "2.0.0"} {
		prof := filepath.Join(dir, v+".yaml")
		y := fmt.Sprintf("name: t\nversion: %s\nkernel: {file: vmlinuz}\ndisk: {esp: 34MiB, slot: 4MiB, data: 16MiB}\nupdate: {tries: 2}\n", v)
		os.WriteFile(prof, []byte(y), 0o644)
		pr, err := profiles.Load(prof)
		if err != nil {
			t.Fatal(err)
		}
		res, err := build.Build(context.Background(), pr, build.Options{Output: filepath.Join(dir, v+".img"), KeelInit: []byte("fake"), SignKey: k})
		if err != nil {
			t.Fatal(err)
		}
		if v == "1.0.0" {
			disk = res.Output
		} else {
			v2 = res.Bundle
		}
	}
	return disk, v2, filepath.Join(dir, "release.pub"), filepath.Join(dir, "other.pub")
}

func keelctl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := run(context.Background(), args, &out, &out)
	t.Logf("keelctl %s → %d\n%s", strings.Join(args, " "), code, out.String())
	return code, out.String()
}

func status(t *testing.T, disk string) statusJSON {
	t.Helper()
	code, out := keelctl(t, "--disk", disk, "status", "--json")
	var s statusJSON
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil {
		t.Fatalf("status --json: %d %s", code, out)
	}
	return s
}

func brief(s statusJSON) string {
	var b []string
	for _, x := range s.Slots {
		b = append(b, fmt.Sprintf("%s:%s:%d:%d:%s", x.Slot, x.State, x.Generation, x.TriesLeft, x.Version))
	}
	return s.Booted + " " + strings.Join(b, " ")
}

// TestCommands runs keelctl's commands against a disk image file (--disk):
// the same library calls as on a device, where only finding and mounting
// the ESP differ.
func TestCommands(t *testing.T) {
	disk, v2, pub, other := images(t)
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(v2))))
	defer srv.Close()
	steps := []struct {
		args []string
		code int
		out  string // substring of the output
		want string // brief status after
	}{
		{[]string{"status"}, 0, "booted: slot a", "a a:good:1:0:1.0.0 b:none:0:0:"},
		{[]string{"install", v2, "--key", other}, exitRefused, "untrusted key", "a a:good:1:0:1.0.0 b:none:0:0:"},
		{[]string{"install", srv.URL + "/nothing.keel", "--key", pub}, exitFailure, "404", "a a:good:1:0:1.0.0 b:none:0:0:"},
		{[]string{"install", srv.URL + "/" + filepath.Base(v2), "--key", pub}, 0, "installed t 2.0.0 into slot b: entry keel-b+2.conf, generation 2", "a a:good:1:0:1.0.0 b:trial:2:2:2.0.0"},
		{[]string{"rollback"}, exitFailure, "is trial", "a a:good:1:0:1.0.0 b:trial:2:2:2.0.0"},
		{[]string{"mark-bad", "b"}, 0, "marked slot b bad", "a a:good:1:0:1.0.0 b:bad:2:0:2.0.0"},
		{[]string{"mark-good", "b"}, 0, "marked slot b good", "b a:good:1:0:1.0.0 b:good:2:0:2.0.0"},
		{[]string{"rollback"}, 0, "slot a is the default", "a a:good:3:0:1.0.0 b:good:2:0:2.0.0"},
		{[]string{"install", v2, "--key", pub}, 0, "into slot b", "a a:good:3:0:1.0.0 b:trial:4:2:2.0.0"},
		{[]string{"mark-good", "c"}, exitUsage, "want no argument or a slot", "a a:good:3:0:1.0.0 b:trial:4:2:2.0.0"},
	}
	for _, s := range steps {
		code, out := keelctl(t, append([]string{"--disk", disk}, s.args...)...)
		if code != s.code || !strings.Contains(out, s.out) {
			t.Fatalf("keelctl %v: exit %d, want %d; output does not contain %q:\n%s", s.args, code, s.code, s.out, out)
		}
		if got := brief(status(t, disk)); got != s.want {
			t.Fatalf("after keelctl %v: %s, want %s", s.args, got, s.want)
		}
	}

	// From standard input, as in curl ... | keelctl install -.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = stdin }()
	go func() {
		b, _ := os.ReadFile(v2)
		w.Write(b)
		w.Close()
	}()
	if code, out := keelctl(t, "--disk", disk, "install", "-", "--key", pub); code != 0 || !strings.Contains(out, "generation 5") {
		t.Fatalf("install from stdin: exit %d\n%s", code, out)
	}
}
