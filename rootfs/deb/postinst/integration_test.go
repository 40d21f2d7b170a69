package postinst

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"keel/rootfs"
	"keel/rootfs/deb/debtest"
)

// debian12Order is an install order dpkg could use for the packages of
// testdata/debian12 (dependencies first).
var debian12Order = []string{
	"base-files", "base-passwd", "libc-bin", "login", "passwd", "mawk", "libpam-runtime",
	"systemd", "systemd-sysv", "udev", "dbus-system-bus-common", "dbus-daemon", "dbus",
	"libpam-systemd", "systemd-resolved", "systemd-timesyncd", "openssh-server", "systemd-boot",
}

// placeholders stand for the binaries of the packages, which the scripts
// only need to exist.
var placeholders = map[string][]debtest.File{
	"base-files": {
		{Path: "./root/", Mode: 0o700}, {Path: "./run/"}, {Path: "./usr/share/info/"},
		{Path: "./var/log/"}, {Path: "./var/run/"}, {Path: "./var/lock/", Mode: 0o1777}, {Path: "./var/spool/"},
	},
	"mawk":           {{Path: "./usr/bin/mawk", Mode: 0o755, Body: "mawk"}, {Path: "./usr/share/man/man1/mawk.1.gz", Body: "man"}},
	"dbus":           {{Path: "./usr/lib/dbus-1.0/dbus-daemon-launch-helper", Mode: 0o755, Body: "helper"}},
	"systemd":        {{Path: "./bin/systemctl", Mode: 0o755, Body: "systemctl"}},
	"openssh-server": {{Path: "./usr/sbin/sshd", Mode: 0o755, Body: "sshd"}},
	"libpam-runtime": {{Path: "./usr/sbin/pam-auth-update", Mode: 0o755, Body: "pam-auth-update"}},
}

// debian12Debs builds .debs from testdata/debian12: each package's
// control file and maintainer scripts as Debian 12 ships them, and a few
// of its data files.
func debian12Debs(t testing.TB) []*testDeb {
	t.Helper()
	var debs []*testDeb
	for _, name := range debian12Order {
		dir := filepath.Join("testdata", "debian12", name)
		ctl, err := os.ReadFile(filepath.Join(dir, "control"))
		if err != nil {
			t.Fatal(err)
		}
		d := debtest.Deb{Scripts: map[string]string{}}
		for _, f := range parseControl(string(ctl)) {
			d.Control = append(d.Control, [2]string{f.name, f.value})
		}
		for _, m := range []string{"preinst", "postinst", "triggers", "conffiles"} {
			if b, err := os.ReadFile(filepath.Join(dir, m)); err == nil {
				d.Scripts[m] = string(b)
			}
		}
		files := map[string]debtest.File{"./": {Path: "./"}}
		addParents := func(p string) {
			for dir := path.Dir(strings.TrimPrefix(strings.TrimSuffix(p, "/"), "./")); dir != "."; dir = path.Dir(dir) {
				if _, ok := files["./"+dir+"/"]; !ok {
					files["./"+dir+"/"] = debtest.File{Path: "./" + dir + "/"}
				}
			}
		}
		data := filepath.Join(dir, "data")
		filepath.WalkDir(data, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			rel := "./" + filepath.ToSlash(strings.TrimPrefix(p, data+"/"))
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files[rel] = debtest.File{Path: rel, Body: string(b)}
			addParents(rel)
			return nil
		})
		for _, f := range placeholders[name] {
			files[f.Path] = f
			addParents(f.Path)
		}
		paths := make([]string, 0, len(files))
		for p := range files {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		for _, p := range paths {
			d.Files = append(d.Files, files[p])
		}
		debs = append(debs, buildDeb(t, d))
	}
	return debs
}

// TestDebianScripts applies the real maintainer scripts of Debian 12's
// systemd, openssh-server, dbus, mawk, PAM and base packages to a tree
// holding their files.
func TestDebianScripts(t *testing.T) {
	tr := mergedUsrTree(t)
	pkgs := installDebs(t, tr, debian12Debs(t))
	rep, err := Configure(context.Background(), tr, pkgs, Options{Epoch: 1700000000, Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	checkServer(t, tr, rep)
	c := &configurator{t: tr}
	for p, want := range map[string]string{
		"/etc/profile":              "# /etc/profile: system-wide .profile file",
		"/root/.profile":            "# ~/.profile: executed by Bourne-compatible login shells.",
		"/etc/nsswitch.conf":        "passwd:         files",
		"/etc/pam.d/common-session": "session\toptional\tpam_systemd.so \n",
		"/etc/pam.d/common-auth":    "auth\t[success=1 default=ignore]\tpam_unix.so nullok\n",
	} {
		if got := readString(t, c, p); !strings.Contains(got, want) {
			t.Errorf("%s does not contain %q:\n%s", p, want, got)
		}
	}
	for link, want := range map[string]string{"/var/run": "/run", "/var/lock": "/run/lock", "/var/spool/mail": "../mail"} {
		if e, ok := tr.Get(link); !ok || e.Target != want {
			t.Errorf("%s: %+v, want a link to %s", link, e, want)
		}
	}
	if e := entry(t, tr, "/var/log/wtmp"); e.Mode != 0o664 || e.GID != 43 {
		t.Errorf("/var/log/wtmp: mode %o gid %d, want 664 utmp", e.Mode, e.GID)
	}
	group := readString(t, c, "/etc/group")
	for _, g := range []string{"\nsystemd-journal:x:999:", "\ninput:x:", "\nkvm:x:", "\nrender:x:", "\nmessagebus:x:"} {
		if !strings.Contains(group, g) {
			t.Errorf("/etc/group lacks %q", g)
		}
	}
	// The report names what was not run, script by script.
	warnings := strings.Join(rep.Warnings, "\n")
	for _, want := range []string{
		"postinst of udev: not run: systemd-hwdb",
		"postinst of openssh-server: not run: runit-helper",
		"debconf (",
		"ldconfig (libc-bin)",
	} {
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings lack %q:\n%s", want, warnings)
		}
	}
	for _, unwanted := range []string{"ssh-keygen", "ucf", "systemd-machine-id-setup", "update-alternatives", "adduser", "deb-systemd-helper", "systemd-sysusers", "pam-auth-update", "dpkg-statoverride"} {
		if strings.Contains(warnings, unwanted) {
			t.Errorf("warnings name %s, which keel handles:\n%s", unwanted, warnings)
		}
	}
}

// TestDeterministic configures the same packages twice and compares the
// trees entry by entry, content included.
func TestDeterministic(t *testing.T) {
	var dumps []string
	for i := 0; i < 2; i++ {
		tr := mergedUsrTree(t)
		pkgs := installDebs(t, tr, debian12Debs(t))
		if _, err := Configure(context.Background(), tr, pkgs, Options{Epoch: 1700000000, Arch: "amd64"}); err != nil {
			t.Fatal(err)
		}
		dumps = append(dumps, dumpTree(t, tr))
	}
	if dumps[0] != dumps[1] {
		t.Error("two runs gave different trees")
	}
}

func dumpTree(t testing.TB, tr *rootfs.Tree) string {
	t.Helper()
	var b strings.Builder
	err := tr.Walk(func(p string, e *rootfs.Entry) error {
		fmt.Fprintf(&b, "%s %s %o %d:%d %d %q", p, e.Type, e.Mode, e.UID, e.GID, e.Mtime, e.Target)
		if e.Type == rootfs.TypeFile && e.Content != nil {
			r, err := e.Content()
			if err != nil {
				return err
			}
			h := sha256.New()
			io.Copy(h, r)
			r.Close()
			fmt.Fprintf(&b, " %x", h.Sum(nil))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestIndependentInstallOrder installs packages that do not affect each
// other in another order and expects the same tree.
func TestIndependentInstallOrder(t *testing.T) {
	build := func(order []string) string {
		debs := map[string]*testDeb{}
		for _, d := range debian12Debs(t) {
			debs[d.pkg.Name] = d
		}
		var list []*testDeb
		for _, n := range order {
			list = append(list, debs[n])
		}
		tr := mergedUsrTree(t)
		pkgs := installDebs(t, tr, list)
		if _, err := Configure(context.Background(), tr, pkgs, Options{Epoch: 1700000000, Arch: "amd64"}); err != nil {
			t.Fatal(err)
		}
		return dumpTree(t, tr)
	}
	swapped := append([]string(nil), debian12Order...)
	// libc-bin, login, passwd and mawk neither make accounts nor share
	// alternatives; systemd-sysv and systemd-boot only run commands keel
	// reports.
	idx := func(n string) int {
		for i, s := range swapped {
			if s == n {
				return i
			}
		}
		t.Fatalf("%s not in the order", n)
		return 0
	}
	for _, pair := range [][2]string{{"libc-bin", "mawk"}, {"login", "passwd"}, {"systemd-sysv", "systemd-boot"}} {
		i, j := idx(pair[0]), idx(pair[1])
		swapped[i], swapped[j] = swapped[j], swapped[i]
	}
	if a, b := build(debian12Order), build(swapped); a != b {
		t.Errorf("the trees differ:\n%s", lineDiff(a, b))
	}
}
