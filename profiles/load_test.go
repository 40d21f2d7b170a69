package profiles

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustLoad(t *testing.T, path string) *Profile {
	t.Helper()
	p, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s):\n%v", path, err)
	}
	return p
}

// TestMerge checks the merge rules on valid/app.yaml, which includes
// valid/base.yaml and valid/common/users.yaml.
func TestMerge(t *testing.T) {
	p := mustLoad(t, "testdata/valid/app.yaml")
	td := abs(t, "testdata")

	checks := []struct {
		what      string
		got, want any
	}{
		{"scalar set later wins", p.Name, "app"},
		{"scalar set only earlier stays", p.Hostname, "base-host"},
		{"version written 1.0 stays text", p.Version, "1.0"},
		{"lists appended, modules deduped", p.Kernel.Modules, []string{"virtio_blk", "squashfs", "ext4"}},
		{"mapping merged: kernel.file from base", p.Kernel.File, td + "/files/vmlinuz"},
		{"mapping merged: kernel.cmdline from base", p.Kernel.Cmdline, "console=ttyS0"},
		{"mapping merged: esp from base", p.Disk.ESP, 64 * MiB},
		{"mapping merged: slot from app", p.Disk.Slot, 1 * GiB},
		{"nested mapping merged: compression from base", p.Disk.Squashfs.Compression, "gzip"},
		{"nested mapping merged: level from app", p.Disk.Squashfs.Level, 4},
		{"default data size", p.Disk.Data, DefaultDataSize},
		{"default disk size", p.Disk.Size, 64*MiB + 2*GiB + DefaultDataSize + 2*MiB},
		{"sources in order", []string{p.Sources[0].Kind(), p.Sources[1].Kind(), p.Sources[2].Kind()}, []string{"dir", "file", "image"}},
		{"dir resolved against base.yaml", p.Sources[0].Dir, td + "/files/root"},
		{"dir default destination", p.Sources[0].To, "/"},
		{"file source resolved", p.Sources[1].Source, td + "/files/motd"},
		{"YAML integer mode is octal", p.Sources[1].Mode, FileMode(0o600)},
		{"local image path resolved, reference kept", p.Sources[2].Image, "oci:" + td + "/files/root:latest"},
		{"users from both files, includes first", []string{p.Users[0].Name, p.Users[1].Name}, []string{"alice", "bob"}},
		{"gid defaults to uid", p.Users[0].GID, 1000},
		{"home default", p.Users[0].Home, "/home/alice"},
		{"shell default", p.Users[0].Shell, DefaultShell},
		{"password default locked", p.Users[0].Password, "!"},
		{"services appended", []string{p.Services[0].Name, p.Services[1].Name}, []string{"base-svc", "app"}},
		{"restart default", p.Services[0].Restart, "always"},
		{"service user default", p.Services[0].User, "root"},
		{"env scalars as text", p.Services[1].Env, map[string]string{"MODE": "production", "WORKERS": "4"}},
		{"health requires all services by default", p.Update.Health.Require, []string{"base-svc", "app"}},
		{"tries default", p.Update.Tries, DefaultTries},
		{"grace default", p.Update.Health.Grace, DefaultGrace},
		{"key resolved against common/users.yaml", p.Update.Keys, []string{td + "/files/update.pub"}},
		{"arch default", p.Arch, "x86_64"},
		{"compatible default", p.Compatible, "app"},
		{"keel default", p.Keel, 1},
		{"include resolved", p.Include, []string{td + "/valid/base.yaml", td + "/valid/common/users.yaml"}},
		{"files in merge order", p.Files, []string{td + "/valid/base.yaml", td + "/valid/common/users.yaml", td + "/valid/app.yaml"}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %#v, want %#v", c.what, c.got, c.want)
		}
	}

	// Positions point into the file each value came from.
	for field, want := range map[string]string{
		"name":                      "testdata/valid/app.yaml:4:7",
		"hostname":                  "testdata/valid/base.yaml:10:11",
		"kernel.modules[2]":         "testdata/valid/app.yaml:7:13",
		"users[0].uid":              "testdata/valid/common/users.yaml:7:10",
		"disk.slot":                 "testdata/valid/app.yaml:27:9",
		"disk.squashfs.compression": "testdata/valid/base.yaml:15:18",
		"":                          "testdata/valid/app.yaml:1:1",
	} {
		got, ok := p.Where(field)
		if !ok || got.String() != want {
			t.Errorf("Where(%q) = %v, %v; want %s", field, got, ok, want)
		}
	}
	if _, ok := p.Where("disk.data"); ok {
		t.Errorf("Where(disk.data): a defaulted field says it was written")
	}
}

func TestMergeAlternativesAndNull(t *testing.T) {
	p := mustLoad(t, "testdata/valid/image-kernel.yaml")
	if p.Kernel.File != "" || p.Kernel.Image != "docker://example.org/kernel:6.1" || p.Kernel.Path != "/boot/vmlinuz" {
		t.Errorf("kernel.image did not replace kernel.file: %+v", p.Kernel)
	}
	if want := []string{"virtio_blk", "squashfs"}; !reflect.DeepEqual(p.Kernel.Modules, want) {
		t.Errorf("modules = %v, want %v (kept from base)", p.Kernel.Modules, want)
	}
	if p.Hostname != "imgk" {
		t.Errorf("hostname: ~ should unset base's hostname and default to name, got %q", p.Hostname)
	}
}

func TestIncludedTwiceMergedOnce(t *testing.T) {
	p := mustLoad(t, "testdata/valid/diamond.yaml")
	if len(p.Services) != 1 || len(p.Sources) != 1 {
		t.Errorf("base.yaml merged more than once: %d services, %d sources", len(p.Services), len(p.Sources))
	}
	if len(p.Files) != 3 {
		t.Errorf("Files = %v, want base, again, diamond", p.Files)
	}
}

func TestIncludeCycle(t *testing.T) {
	_, err := Load("testdata/cycle/a.yaml")
	want := "testdata/cycle/c.yaml:1:11: include[0]: include cycle: testdata/cycle/a.yaml -> testdata/cycle/b.yaml -> testdata/cycle/c.yaml -> testdata/cycle/a.yaml"
	if err == nil || err.Error() != want {
		t.Errorf("got error:\n%v\nwant:\n%s", err, want)
	}
}

func TestErrorInInclude(t *testing.T) {
	_, err := Load("testdata/badinclude/top.yaml")
	want := strings.Join([]string{
		"testdata/badinclude/top.yaml:3:5: include[1]: " + abs(t, "testdata/badinclude/missing.yaml") + ": no such file",
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("got error:\n%v\nwant:\n%s", err, want)
	}
	// With the missing include gone, the included file's own error shows,
	// named by the included file.
	data, _ := os.ReadFile("testdata/badinclude/top.yaml")
	data = []byte(strings.Replace(string(data), "  - missing.yaml\n", "", 1))
	_, err = Parse("testdata/badinclude/top.yaml", data)
	want = "testdata/badinclude/inc.yaml:2:3: disk.slot_size: unknown field (known: size, esp, slot, data, squashfs, verity)"
	if err == nil || err.Error() != want {
		t.Errorf("got error:\n%v\nwant:\n%s", err, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/nope.yaml")
	var pe *Error
	if !errors.As(err, &pe) || err.Error() != "testdata/nope.yaml: no such file" || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v", err)
	}
}

// TestErrorsAs is what the CLI relies on to exit with 2 on a bad profile.
func TestErrorsAs(t *testing.T) {
	_, err := Parse("testdata/p.yaml", []byte("name: x\nversion: 1\nkernel: {file: files/vmlinuz}\ndisk: {slot: 12Q, data: 0}\n"))
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("errors.As(%v, *Error) = false", err)
	}
	if pe.File != "testdata/p.yaml" || pe.Line != 4 || pe.Field != "disk.slot" {
		t.Errorf("first error = %+v", pe)
	}
	if n := len(Errors(err)); n != 2 {
		t.Errorf("Errors() found %d errors, want 2", n)
	}
}

func TestProfileErrorf(t *testing.T) {
	p := mustLoad(t, "testdata/valid/app.yaml")
	for _, c := range []struct{ field, want string }{
		{"sources[2].image", "testdata/valid/app.yaml:12:12: sources[2].image: unknown OCI reference"},
		{"users[0].home", "testdata/valid/common/users.yaml:6:5: users[0].home: unknown OCI reference"}, // defaulted: its item
		{"disk.data", "testdata/valid/base.yaml:12:3: disk.data: unknown OCI reference"},                // defaulted: its mapping
		{"update.tries", "testdata/valid/common/users.yaml:10:3: update.tries: unknown OCI reference"},  // defaulted: update
		{"arch", "testdata/valid/app.yaml:1:1: arch: unknown OCI reference"},                            // defaulted: the file
	} {
		if got := p.Errorf(c.field, "unknown OCI reference").Error(); got != c.want {
			t.Errorf("Errorf(%q):\n got %s\nwant %s", c.field, got, c.want)
		}
	}
}

func TestExample(t *testing.T) {
	p := mustLoad(t, "examples/busybox.yaml")
	if p.Name != "busybox" || p.Version != "1.0.0" || p.Kernel.Package != "linux-image-amd64" ||
		p.Debian.Suite != "bookworm" || p.Debian.Architecture != "amd64" || len(p.Packages) != 1 || p.Packages[0] != "busybox-static" {
		t.Errorf("unexpected profile: %+v", p)
	}
	if p.Disk.Size != 64*MiB+2*128*MiB+64*MiB+2*MiB {
		t.Errorf("disk size %s", p.Disk.Size)
	}
}

func TestExpandEnv(t *testing.T) {
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"A": "/a", "EMPTY": ""}[k]
		return v, ok
	}
	for _, c := range []struct{ in, want, err string }{
		{in: "plain/path", want: "plain/path"},
		{in: "${A}/x", want: "/a/x"},
		{in: "${A}${A}", want: "/a/a"},
		{in: "x${EMPTY}y", want: "xy"},
		{in: "$A/x", want: "$A/x"},
		{in: "cost$", want: "cost$"},
		{in: "${B}/x", err: `"${B}/x": environment variable B is not set`},
		{in: "${A", err: `"${A": unterminated ${`},
		{in: "${1A}", err: `"${1A}": ${1A} is not a variable name`},
		{in: "${}", err: `"${}": ${} is not a variable name`},
	} {
		got, err := expandEnv(c.in, env)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("expandEnv(%q) error = %v, want %s", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("expandEnv(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestEnvOnlyInPaths(t *testing.T) {
	t.Setenv("KEEL_TEST_DIR", abs(t, "testdata/files"))
	p, err := Parse("testdata/p.yaml", []byte(`name: x
version: "1"
kernel: {file: "${KEEL_TEST_DIR}/vmlinuz", cmdline: "x=${KEEL_TEST_DIR}"}
users: [{name: u, uid: 1, password: "$6$salt$hash"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Kernel.File != abs(t, "testdata/files/vmlinuz") {
		t.Errorf("kernel.file = %q", p.Kernel.File)
	}
	if p.Kernel.Cmdline != "x=${KEEL_TEST_DIR}" || p.Users[0].Password != "$6$salt$hash" {
		t.Errorf("expanded outside a path: %q %q", p.Kernel.Cmdline, p.Users[0].Password)
	}
}

func TestAliases(t *testing.T) {
	p, err := Parse("testdata/p.yaml", []byte(head+`services:
  - {name: a, command: [/bin/a], env: &env {X: "1"}}
  - {name: b, command: [/bin/b], env: *env}
`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Services[1].Env["X"] != "1" {
		t.Errorf("alias not followed: %+v", p.Services[1])
	}
}
