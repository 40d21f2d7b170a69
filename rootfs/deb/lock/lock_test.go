package lock

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"pault.ag/go/debian/version"

	"keel/rootfs/deb"
)

var update = flag.Bool("update", false, "rewrite testdata/example.lock")

// pkg makes an index entry; its sha256 is the name's, to look real.
func pkg(name, ver, arch string, size int64) *deb.Package {
	v, err := version.Parse(ver)
	if err != nil {
		panic(err)
	}
	_, noEpoch, ok := strings.Cut(ver, ":")
	if !ok {
		noEpoch = ver
	}
	sum := sha256.Sum256([]byte(name))
	return &deb.Package{
		Name: name, Version: v, Architecture: arch, Size: size,
		Filename: "pool/main/" + name[:1] + "/" + name + "/" + name + "_" + noEpoch + "_" + arch + ".deb",
		SHA256:   hex.EncodeToString(sum[:]),
	}
}

// example is a lock with what YAML could misread: versions that look like
// numbers, an epoch (a colon), a tilde; packages given out of order.
func example() *Lock {
	kernel := pkg("linux-image-6.1.0-28-amd64", "6.1.119-1", "amd64", 70000000)
	tz := pkg("tzdata", "2024a-0+deb12u1", "all", 256000)
	return New(Debian{
		Suite: "bookworm", Codename: "bookworm", Architecture: "amd64", Components: []string{"main"},
		ReleaseDate: "Sat, 10 Feb 2024 10:00:00 UTC", InReleaseSHA256: strings.Repeat("ab", 32),
	}, []string{"openssh-server", " nginx=1.22.1-9", "base:required", "kernel:linux-image-amd64", "nginx=1.22.1-9", "loader:systemd-boot-efi"},
		[]*deb.Package{
			pkg("zlib1g", "1:1.2.13.dfsg-1", "amd64", 91000),
			pkg("base-files", "12.4+deb12u5", "amd64", 70692),
			pkg("libc6", "2.36-9+deb12u4", "amd64", 2757936),
			tz,
			pkg("numeric", "1.0-1", "all", 10),
			pkg("tilde", "2.0~rc1-1", "amd64", 11),
			kernel,
			tz, // again, as the kernel's: one entry, both roles
		}, map[*deb.Package][]string{kernel: {RoleKernel}, tz: {RoleRoot, RoleKernel}})
}

func TestRoles(t *testing.T) {
	l := example()
	kernel := l.PackagesFor(RoleKernel)
	root := l.PackagesFor(RoleRoot)
	var kn, rn []string
	for _, p := range kernel {
		kn = append(kn, p.Name)
	}
	for _, p := range root {
		rn = append(rn, p.Name)
	}
	if strings.Join(kn, " ") != "linux-image-6.1.0-28-amd64 tzdata" {
		t.Errorf("kernel packages %v", kn)
	}
	if strings.Join(rn, " ") != "base-files libc6 numeric tilde tzdata zlib1g" {
		t.Errorf("root packages %v", rn)
	}
	if len(l.Entries) != 7 {
		t.Errorf("%d entries, want 7 (tzdata once)", len(l.Entries))
	}
	if _, err := Parse("x.lock", []byte(strings.Replace(string(mustMarshal(t, l)), "for: [kernel]", "for: [boot]", 1))); err == nil || !strings.Contains(err.Error(), `"boot" is not a role`) {
		t.Errorf("a bad role: %v", err)
	}
}

func mustMarshal(t *testing.T, l *Lock) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.lock")
	if err := Write(p, l); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "server.lock")
	l := example()
	if err := Write(p, l); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "example.lock")
	if *update {
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("written lock differs from %s (go test -update to refresh):\n%s", golden, b)
	}
	if !bytes.HasPrefix(b, []byte("# Written by `keel lock`: the exact Debian packages server's builds use.\n# Do not edit it")) {
		t.Errorf("no header:\n%s", b)
	}

	got, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	got.path = ""
	if !reflect.DeepEqual(got, l) {
		t.Errorf("read back\n%+v\nwrote\n%+v", got, l)
	}
	// Write → Read → Write gives the same bytes; no temporary file stays.
	if err := Write(p, got); err != nil {
		t.Fatal(err)
	}
	if b2, _ := os.ReadFile(p); !bytes.Equal(b2, b) {
		t.Errorf("second write differs:\n%s", b2)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d files", len(ents))
	}
}

func TestPackages(t *testing.T) {
	l, err := Read(filepath.Join("testdata", "example.lock"))
	if err != nil {
		t.Fatal(err)
	}
	pkgs := l.Packages()
	var names []string
	for _, p := range pkgs {
		names = append(names, p.Name)
	}
	if strings.Join(names, " ") != "base-files libc6 linux-image-6.1.0-28-amd64 numeric tilde tzdata zlib1g" {
		t.Errorf("packages %q, want sorted by name", names)
	}
	z := pkgs[len(pkgs)-1]
	want := pkg("zlib1g", "1:1.2.13.dfsg-1", "amd64", 91000)
	if z.Version.String() != "1:1.2.13.dfsg-1" || z.Version.Epoch != 1 || z.Filename != want.Filename ||
		z.Size != want.Size || z.SHA256 != want.SHA256 || z.Architecture != "amd64" || z.Origin != filepath.Join("testdata", "example.lock") {
		t.Errorf("zlib1g: %+v", z)
	}
	if pkgs[4].Version.String() != "2.0~rc1-1" || pkgs[3].Version.String() != "1.0-1" {
		t.Errorf("versions %s, %s", pkgs[4].Version, pkgs[3].Version)
	}
}

func TestReadErrors(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "example.lock"))
	if err != nil {
		t.Fatal(err)
	}
	baseSum := pkg("base-files", "1", "all", 1).SHA256
	// edit replaces the first occurrence of old in the example.
	edit := func(old, new string) string {
		if !bytes.Contains(good, []byte(old)) {
			t.Fatalf("example.lock has no %q", old)
		}
		return strings.Replace(string(good), old, new, 1)
	}
	line := func(s string) string { // "x.lock:N:" where s first appears
		i := strings.Index(string(good), s)
		return "x.lock:" + strconv.Itoa(strings.Count(string(good[:i]), "\n")+1) + ":"
	}
	tests := []struct {
		name, text string
		want       []string
	}{
		{"unknown field", edit("    size: 70692\n", "    size: 70692\n    md5sum: x\n"),
			[]string{line("    sha256: " + baseSum), `unknown field "md5sum"`}}, // the line after size's
		{"unknown top-level field", edit("requests:", "mirror: http://mirror.example/debian\nrequests:"),
			[]string{line("requests:"), `unknown field "mirror"`}},
		{"size not a number", edit("size: 70692", "size: big"), []string{line("size: 70692"), "big"}},
		{"bad version", edit("version: 12.4+deb12u5", "version: 12.4 5"), []string{line("version: 12.4+deb12u5"), "packages[0].version", "base-files"}},
		{"bad sha256", edit("sha256: "+baseSum[:4], "sha256: 2Z22"), []string{line("sha256: " + baseSum[:4]), "packages[0].sha256"}},
		{"uppercase sha256", edit("sha256: "+baseSum, "sha256: "+strings.ToUpper(baseSum)), []string{"packages[0].sha256", "lowercase"}},
		{"absolute filename", edit("filename: pool/main/b/", "filename: /pool/main/b/"), []string{line("filename: pool/main/b/"), "not a .deb path"}},
		{"escaping filename", edit("filename: pool/main/b/", "filename: ../main/b/"), []string{"packages[0].filename"}},
		{"zero size", edit("size: 70692", "size: 0"), []string{line("size: 70692"), "packages[0].size"}},
		{"duplicate", edit("name: libc6", "name: base-files"), []string{line("name: libc6"), "packages[1].name", "also packages[0]"}},
		{"newer format", edit("keel-lock: 1", "keel-lock: 2"), []string{"x.lock:3: keel-lock: format 2 is newer", "update keel"}},
		{"no suite", edit("suite: bookworm", "suite: \"\""), []string{line("suite: bookworm"), "debian.suite: missing"}},
		{"syntax", edit("debian:\n", "debian:\n  - [\n"), []string{"x.lock:"}},
		{"empty", "", []string{"x.lock: empty lock file"}},
		{"duplicate key", edit("keel-lock: 1\n", "keel-lock: 1\nkeel-lock: 1\n"), []string{"x.lock:", "already defined"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("x.lock", []byte(tt.text))
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if _, err := Read(filepath.Join(t.TempDir(), "absent.lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestDrift(t *testing.T) {
	l := example()
	l.path = "server.lock"
	tests := []struct {
		name     string
		requests []string
		want     []string // empty: no drift
	}{
		{"same, other order and spacing", []string{"loader:systemd-boot-efi", "kernel:linux-image-amd64", "nginx=1.22.1-9 ", "base:required", "openssh-server", "openssh-server"}, nil},
		{"added", []string{"loader:systemd-boot-efi", "kernel:linux-image-amd64", "nginx=1.22.1-9", "base:required", "openssh-server", "curl"},
			[]string{"server.lock: the profile and its lock file differ: profile asks for curl, which the lock was not made for: run keel lock, or build with --update-lock"}},
		{"pin changed", []string{"loader:systemd-boot-efi", "kernel:linux-image-amd64", "nginx", "base:required", "openssh-server"},
			[]string{"profile asks for nginx, which the lock was not made for",
				"the lock was made for nginx=1.22.1-9, which the profile no longer asks for", "--update-lock"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := l.Drift(tt.requests)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrDrift) {
				t.Fatalf("error %v, want ErrDrift", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
