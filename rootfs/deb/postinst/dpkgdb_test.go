package postinst

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"keel/rootfs"
)

// TestStatusMatchesDpkg compares /var/lib/dpkg/status with what dpkg 1.21
// wrote on a Debian 12 system for the same four packages
// (testdata/status/status.golden): field order, Essential, the Conffiles
// field with the md5sums of the files, Multi-Arch: same.
func TestStatusMatchesDpkg(t *testing.T) {
	tr := mergedUsrTree(t)
	var pkgs []*Package
	conffiles := map[string][]string{
		"dbus":  {"/etc/default/dbus", "/etc/init.d/dbus"},
		"libc6": {"/etc/ld.so.conf.d/x86_64-linux-gnu.conf"},
	}
	// Install order differs from the status file's name order.
	for _, name := range []string{"mawk", "libc6", "base-passwd", "dbus"} {
		ctl, err := os.ReadFile("testdata/status/" + name + ".control")
		if err != nil {
			t.Fatal(err)
		}
		fields := map[string]string{}
		for _, f := range parseControl(string(ctl)) {
			fields[f.name] = f.value
		}
		p := &Package{Name: name, Version: fields["Version"], Architecture: fields["Architecture"], Control: string(ctl), Conffiles: conffiles[name]}
		for _, cf := range p.Conffiles {
			b, err := os.ReadFile("testdata/status/" + name + "-conffiles" + cf)
			if err != nil {
				t.Fatal(err)
			}
			addFile(t, tr, cf, 0o644, string(b))
		}
		pkgs = append(pkgs, p)
	}
	configure(t, tr, pkgs...)
	want, err := os.ReadFile("testdata/status/status.golden")
	if err != nil {
		t.Fatal(err)
	}
	if got := fileString(t, tr, "/var/lib/dpkg/status"); got != string(want) {
		t.Errorf("status differs from dpkg's:\n%s", lineDiff(got, string(want)))
	}
	// dpkg names a Multi-Arch: same package's files PKG:ARCH.
	for _, p := range []string{"/var/lib/dpkg/info/libc6:amd64.list", "/var/lib/dpkg/info/libc6:amd64.conffiles", "/var/lib/dpkg/info/mawk.list", "/var/lib/dpkg/info/dbus.conffiles"} {
		if _, ok := tr.Get(p); !ok {
			t.Errorf("%s missing", p)
		}
	}
}

func lineDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var a, b string
		if i < len(g) {
			a = g[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if a != b {
			return "line " + strconv.Itoa(i+1) + ":\n got  " + a + "\n want " + b
		}
	}
	return "equal"
}

func TestDpkgInfoFiles(t *testing.T) {
	tr := mergedUsrTree(t)
	addFile(t, tr, "/etc/foo.conf", 0o644, "x=1\n")
	p := pkg("foo", "#!/bin/sh\nset -e\n")
	p.Files = []string{"./", "./etc/", "./etc/foo.conf", "./usr/", "./usr/bin/", "./usr/bin/foo", "./bin/", "./bin/foo-old"}
	p.Conffiles = []string{"/etc/foo.conf", "/etc/gone.conf"}
	p.MD5Sums = "d41d8cd98f00b204e9800998ecf8427e  usr/bin/foo\n"
	p.Scripts["prerm"] = "#!/bin/sh\n"
	p.Scripts["triggers"] = "interest-noawait /usr/lib/foo.d\ninterest ldconfig\nactivate-noawait update-initramfs\n"
	p.Scripts["templates"] = "Template: foo/q\n"
	bare := pkg("bare", "")
	bare.Files = []string{"usr/share/doc/bare/copyright"}
	configure(t, tr, p, bare)
	for path, want := range map[string]string{
		"/var/lib/dpkg/info/foo.list":      "/.\n/etc\n/etc/foo.conf\n/usr\n/usr/bin\n/usr/bin/foo\n/bin\n/bin/foo-old\n",
		"/var/lib/dpkg/info/bare.list":     "/.\n/usr/share/doc/bare/copyright\n",
		"/var/lib/dpkg/info/foo.conffiles": "/etc/foo.conf\n/etc/gone.conf\n",
		"/var/lib/dpkg/info/foo.md5sums":   p.MD5Sums,
		"/var/lib/dpkg/info/foo.postinst":  "#!/bin/sh\nset -e\n",
		"/var/lib/dpkg/info/foo.triggers":  p.Scripts["triggers"],
		"/var/lib/dpkg/triggers/File":      "/usr/lib/foo.d foo/noawait\n",
		"/var/lib/dpkg/triggers/ldconfig":  "foo\n",
		"/var/lib/dpkg/triggers/Unincorp":  "",
		"/var/lib/dpkg/arch":               "amd64\n",
		"/var/lib/dpkg/info/format":        "1\n",
		"/var/lib/dpkg/available":          "",
		"/var/lib/dpkg/diversions":         "",
		"/var/lib/dpkg/statoverride":       "",
	} {
		if got := fileString(t, tr, path); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
	for path, mode := range map[string]uint32{
		"/var/lib/dpkg/info/foo.postinst": 0o755, "/var/lib/dpkg/info/foo.prerm": 0o755,
		"/var/lib/dpkg/info/foo.templates": 0o644, "/var/lib/dpkg/status": 0o644,
		"/var/lib/dpkg/updates": 0o755, "/var/lib/dpkg/alternatives": 0o755,
	} {
		e, ok := tr.Get(path)
		if !ok || e.Mode != mode || e.Mtime != testEpoch {
			t.Errorf("%s: %+v, want mode %o", path, e, mode)
		}
	}
	status := fileString(t, tr, "/var/lib/dpkg/status")
	if !strings.Contains(status, "Conffiles:\n /etc/foo.conf "+md5hex([]byte("x=1\n"))+"\n /etc/gone.conf newconffile\n") {
		t.Errorf("status conffiles:\n%s", status)
	}
}

func TestStatusIgnoresPackageClaims(t *testing.T) {
	tr := mergedUsrTree(t)
	p := pkg("liar", "")
	p.Control = "Package: liar\nStatus: hold ok installed\nVersion: 9\nArchitecture: amd64\nEssential: no\nDepends: a (>=1),b|c (<< 2),  d\n\t, e\nConffiles:\n /etc/passwd 0\nHomepage: https://example.org\n"
	configure(t, tr, p)
	want := "Package: liar\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\nDepends: a (>= 1), b | c (<< 2), d, e\nHomepage: https://example.org\n"
	if got := fileString(t, tr, "/var/lib/dpkg/status"); got != want {
		t.Errorf("status:\n%s\nwant\n%s", got, want)
	}
}

func TestConfigureRejectsBadPackages(t *testing.T) {
	for name, p := range map[string]*Package{
		"path in name":    {Name: "../etc", Version: "1", Architecture: "amd64"},
		"upper case":      {Name: "Foo", Version: "1", Architecture: "amd64"},
		"no version":      {Name: "foo", Architecture: "amd64"},
		"bad arch":        {Name: "foo", Version: "1", Architecture: "amd64/../x"},
		"bad member name": {Name: "foo", Version: "1", Architecture: "amd64", Scripts: map[string]string{"../postinst": ""}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Configure(t.Context(), rootfs.New(), []*Package{p}, Options{}); err == nil {
				t.Error("accepted")
			}
		})
	}
	if _, err := Configure(t.Context(), rootfs.New(), []*Package{pkg("a", ""), pkg("a", "")}, Options{}); err == nil {
		t.Error("a package listed twice was accepted")
	}
}
