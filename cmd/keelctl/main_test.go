package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
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
		{[]string{"rollback"}, exitRefused, "is trial", "a a:good:1:0:1.0.0 b:trial:2:2:2.0.0"},
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

// rebundle writes a bundle of v2's artifacts (changed by edit) with the
// manifest changed by medit, signed with the key in dir/release.key.
func rebundle(t *testing.T, v2, name string, medit func(m *bundle.Manifest), edit func(arts [][]byte)) string {
	t.Helper()
	f, err := os.Open(v2)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := bundle.OpenUnverified(f)
	if err != nil {
		t.Fatal(err)
	}
	var arts [][]byte
	for {
		_, r, err := b.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		a, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		arts = append(arts, a)
	}
	if edit != nil {
		edit(arts)
	}
	key, err := bundle.ReadPrivateKey(filepath.Join(filepath.Dir(v2), "release.key"))
	if err != nil {
		t.Fatal(err)
	}
	m := b.Manifest
	if medit != nil {
		medit(&m)
	}
	var srcs []bundle.Source
	for i, n := range bundle.InstallOrder {
		a := arts[i]
		srcs = append(srcs, bundle.Source{Name: n, Size: int64(len(a)), Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(a)), nil }})
	}
	out := filepath.Join(t.TempDir(), name)
	if err := bundle.WriteFile(context.Background(), out, m, key, srcs); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestExitCodes is the --help table, case by case: 2 for bad usage, 3 for
// every refusal (and then nothing on the disk changed), 1 for a failure
// (a bundle found bad after writing the other slot began: slot b may have
// been written, but no entry for it, and slot a is untouched).
func TestExitCodes(t *testing.T) {
	disk, v2, pub, other := images(t)
	good, err := os.ReadFile(v2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flipped := bytes.Clone(good)
	flipped[len(good)/2] ^= 1 // inside the rootfs
	damaged := func(d string) {
		code, _ := keelctl(t, "--disk", d, "install", v2, "--key", pub)
		if code != 0 {
			t.Fatal("install")
		}
		sys, err := openSystem(&globals{disk: d}, false)
		if err != nil {
			t.Fatal(err)
		}
		defer sys.close()
		b, _ := sys.ESP.ReadFile("/loader/entries/keel-b+2.conf")
		b = bytes.Replace(b, []byte("version 2"), []byte("version 2x"), 1)
		if err := sys.ESP.WriteFile("/loader/entries/keel-b+2.conf", bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	tests := []struct {
		name  string
		setup func(disk string) // may change the disk before the command
		args  []string          // "DISK" is replaced by the disk's path
		code  int
		out   string
	}{
		{"unknown flag", nil, []string{"status", "--nope"}, exitUsage, "unknown flag"},
		{"unknown command", nil, []string{"frobnicate"}, exitUsage, "unknown command"},
		{"bad slot", nil, []string{"mark-good", "c"}, exitUsage, "a or b"},
		{"no such bundle", nil, []string{"install", filepath.Join(dir, "none.keel"), "--key", pub}, exitUsage, "none.keel"},
		{"unreadable key", nil, []string{"install", v2, "--key", filepath.Join(dir, "none.pub")}, exitUsage, "none.pub"},
		{"untrusted key", nil, []string{"install", v2, "--key", other}, exitRefused, "untrusted key"},
		{"not a bundle", nil, []string{"install", write("junk.keel", []byte("not a bundle at all, longer than a header")), "--key", pub}, exitRefused, "not a keel bundle"},
		{"truncated header", nil, []string{"install", write("short.keel", good[:30]), "--key", pub}, exitRefused, "truncated"},
		{"flipped bit in the manifest", nil, []string{"install", write("manifest.keel", func() []byte { b := bytes.Clone(good); b[40] ^= 1; return b }()), "--key", pub}, exitRefused, "bad signature"},
		{"other compatible", nil, []string{"install", rebundle(t, v2, "c.keel", func(m *bundle.Manifest) { m.Compatible = "other" }, nil), "--key", pub}, exitRefused, "another kind of device"},
		{"older version", nil, []string{"install", rebundle(t, v2, "old.keel", func(m *bundle.Manifest) { m.Version = "0.1" }, nil), "--key", pub}, exitRefused, "older"},
		{"rootfs larger than the slot", nil, []string{"install", rebundle(t, v2, "big.keel", nil, func(a [][]byte) { a[0] = make([]byte, 5<<20) }), "--key", pub}, exitRefused, "does not fit"},
		{"another update running", func(d string) {
			held, err := openSystem(&globals{disk: d}, true)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { held.close() })
		}, []string{"install", v2, "--key", pub}, exitRefused, "busy: another update of DISK is running"},
		{"damaged entry: status", damaged, []string{"status"}, exitRefused, "keel-b+2.conf"},
		{"damaged entry: install", damaged, []string{"install", v2, "--key", pub}, exitRefused, "damaged boot entry"},
		{"rollback to nothing", nil, []string{"rollback"}, exitRefused, "no boot entry"},
		{"mark a slot without entry", nil, []string{"mark-good", "b"}, exitRefused, "no boot entry"},
		{"tampered rootfs", nil, []string{"install", write("tampered.keel", flipped), "--key", pub}, exitFailure, "hash mismatch"},
		{"truncated in the rootfs", nil, []string{"install", write("cut.keel", good[:len(good)/2]), "--key", pub}, exitFailure, "truncated"},
		{"junk after the bundle", nil, []string{"install", write("tail.keel", append(bytes.Clone(good), "junk"...)), "--key", pub}, exitFailure, "data after the last artifact"},
		{"download fails", nil, []string{"install", srv.URL + "/none.keel", "--key", pub}, exitFailure, "404"},
		{"installed", nil, []string{"install", v2, "--key", pub}, exitOK, "installed"},
		{"status", nil, []string{"status"}, exitOK, "booted: slot a"},
	}
	orig, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "disk.img")
			if err := os.WriteFile(d, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			if tt.setup != nil {
				tt.setup(d)
			}
			before, _ := os.ReadFile(d)
			args := append([]string{"--disk", d}, tt.args...)
			code, out := keelctl(t, args...)
			want := strings.ReplaceAll(tt.out, "DISK", d)
			if code != tt.code || !strings.Contains(out, want) {
				t.Fatalf("exit %d, want %d; output does not contain %q", code, tt.code, want)
			}
			after, _ := os.ReadFile(d)
			if code == exitRefused || code == exitUsage {
				if !bytes.Equal(before, after) {
					t.Errorf("exit %d but the disk changed", code)
				}
			}
			if code == exitFailure && tt.args[0] == "install" {
				if st := brief(status(t, d)); st != "a a:good:1:0:1.0.0 b:none:0:0:" {
					t.Errorf("after a failed install: %s", st)
				}
			}
		})
	}
}
