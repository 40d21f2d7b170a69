package postinst

import (
	"strings"
	"testing"

	"keel/rootfs"
)

func TestAlternatives(t *testing.T) {
	setup := func(t *testing.T) *rootfs.Tree {
		tr := mergedUsrTree(t)
		for _, f := range []string{"/usr/bin/mawk", "/usr/bin/gawk", "/usr/bin/original-awk", "/usr/share/man/man1/mawk.1.gz", "/usr/share/man/man1/gawk.1.gz", "/bin/more", "/usr/bin/less"} {
			addFile(t, tr, f, 0o755, f)
		}
		return tr
	}
	mawk := `if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ]; then
        update-alternatives --install /usr/bin/awk awk /usr/bin/mawk 5 \
            --slave /usr/share/man/man1/awk.1.gz awk.1.gz /usr/share/man/man1/mawk.1.gz \
            --slave /usr/bin/nawk nawk /usr/bin/mawk \
            --slave /usr/share/man/man1/nawk.1.gz nawk.1.gz /usr/share/man/man1/mawk.1.gz
fi
`
	for _, tc := range []struct {
		name     string
		pkgs     []*Package
		links    map[string]string
		absent   []string
		db       map[string]string
		warnings []string
	}{
		{
			name: "mawk's postinst",
			pkgs: []*Package{pkg("mawk", mawk)},
			links: map[string]string{
				"/usr/bin/awk": "/etc/alternatives/awk", "/etc/alternatives/awk": "/usr/bin/mawk",
				"/usr/bin/nawk": "/etc/alternatives/nawk", "/etc/alternatives/nawk": "/usr/bin/mawk",
				"/usr/share/man/man1/awk.1.gz": "/etc/alternatives/awk.1.gz", "/etc/alternatives/awk.1.gz": "/usr/share/man/man1/mawk.1.gz",
			},
			db: map[string]string{"awk": "auto\n/usr/bin/awk\nawk.1.gz\n/usr/share/man/man1/awk.1.gz\nnawk\n/usr/bin/nawk\nnawk.1.gz\n/usr/share/man/man1/nawk.1.gz\n\n" +
				"/usr/bin/mawk\n5\n/usr/share/man/man1/mawk.1.gz\n/usr/bin/mawk\n/usr/share/man/man1/mawk.1.gz\n\n"},
		},
		{
			name: "higher priority wins, slaves follow the winner, choices sorted by path",
			pkgs: []*Package{
				pkg("mawk", mawk),
				pkg("gawk", "PRIORITY=10\nupdate-alternatives --install /usr/bin/awk awk /usr/bin/gawk $PRIORITY --slave /usr/share/man/man1/awk.1.gz awk.1.gz /usr/share/man/man1/gawk.1.gz\n"),
			},
			links: map[string]string{
				"/etc/alternatives/awk": "/usr/bin/gawk", "/etc/alternatives/awk.1.gz": "/usr/share/man/man1/gawk.1.gz",
			},
			// gawk has no nawk slave: the links of the old winner's slaves go.
			absent: []string{"/etc/alternatives/nawk", "/usr/bin/nawk"},
			db: map[string]string{"awk": "auto\n/usr/bin/awk\nawk.1.gz\n/usr/share/man/man1/awk.1.gz\nnawk\n/usr/bin/nawk\nnawk.1.gz\n/usr/share/man/man1/nawk.1.gz\n\n" +
				"/usr/bin/gawk\n10\n/usr/share/man/man1/gawk.1.gz\n\n\n" +
				"/usr/bin/mawk\n5\n/usr/share/man/man1/mawk.1.gz\n/usr/bin/mawk\n/usr/share/man/man1/mawk.1.gz\n\n"},
		},
		{
			name: "a tie keeps the first installed",
			pkgs: []*Package{
				pkg("mawk", "update-alternatives --install /usr/bin/awk awk /usr/bin/mawk 5\n"),
				pkg("original-awk", "update-alternatives --install /usr/bin/awk awk /usr/bin/original-awk 5\n"),
			},
			links: map[string]string{"/etc/alternatives/awk": "/usr/bin/mawk"},
		},
		{
			name: "missing slave files are skipped, missing paths refused",
			pkgs: []*Package{
				pkg("util-linux", "update-alternatives --install /usr/bin/pager pager /bin/more 50 --slave /usr/share/man/man1/pager.1.gz pager.1.gz /usr/share/man/man1/more.1.gz\n"),
				pkg("ghost", "update-alternatives --install /usr/bin/pager pager /usr/bin/ghost 100\n"),
			},
			links:    map[string]string{"/usr/bin/pager": "/etc/alternatives/pager", "/etc/alternatives/pager": "/bin/more"},
			absent:   []string{"/usr/share/man/man1/pager.1.gz", "/etc/alternatives/pager.1.gz"},
			warnings: []string{"postinst of ghost (line 1): update-alternatives: alternative path /usr/bin/ghost does not exist; not run"},
		},
		{
			name:     "a real file is not replaced",
			pkgs:     []*Package{pkg("less", "update-alternatives --install /usr/bin/less pager /usr/bin/less 77\n")},
			links:    map[string]string{"/etc/alternatives/pager": "/usr/bin/less"},
			warnings: []string{"alternative pager: not replacing /usr/bin/less (a file) with a link"},
		},
		{
			name:     "an unknown priority is reported",
			pkgs:     []*Package{pkg("x", "update-alternatives --install /usr/bin/awk awk /usr/bin/mawk \"$(cat /prio)\"\n")},
			absent:   []string{"/usr/bin/awk"},
			warnings: []string{"update-alternatives: argument 5 is not known at build time; not run"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := setup(t)
			rep := configure(t, tr, tc.pkgs...)
			for l, want := range tc.links {
				real, err := tr.ResolveParent(l)
				e, ok := tr.Get(real)
				if err != nil || !ok || e.Type != rootfs.TypeSymlink || e.Target != want || e.Mode != 0o777 || e.Mtime != testEpoch {
					t.Errorf("%s: %+v, want a link to %s", l, e, want)
				}
			}
			for _, p := range tc.absent {
				if real, err := tr.ResolveParent(p); err == nil {
					if _, ok := tr.Get(real); ok {
						t.Errorf("%s exists", p)
					}
				}
			}
			for name, want := range tc.db {
				if got := fileString(t, tr, "/var/lib/dpkg/alternatives/"+name); got != want {
					t.Errorf("alternatives/%s:\n%q\nwant\n%q", name, got, want)
				}
			}
			checkWarnings(t, rep, tc.warnings...)
		})
	}
}

func checkWarnings(t *testing.T, rep *Report, want ...string) {
	t.Helper()
	all := strings.Join(rep.Warnings, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("warnings lack %q:\n%s", w, all)
		}
	}
}

func TestStatoverride(t *testing.T) {
	tr := mergedUsrTree(t)
	addFile(t, tr, "/usr/lib/dbus-1.0/dbus-daemon-launch-helper", 0o755, "helper")
	addFile(t, tr, "/usr/share/base-passwd/passwd.master", 0o644, masterPasswd)
	addFile(t, tr, "/usr/share/base-passwd/group.master", 0o644, masterGroup)
	dbus := `MESSAGEUSER=messagebus
LAUNCHER=/usr/lib/dbus-1.0/dbus-daemon-launch-helper
if [ "$1" = configure ]; then
    if ! dpkg-statoverride --list "$LAUNCHER" >/dev/null; then
        dpkg-statoverride --update --add root "$MESSAGEUSER" 4754 "$LAUNCHER"
    fi
fi
`
	rep := configure(t, tr, pkg("base-passwd", ""), pkg("dbus-system-bus-common", "adduser --system --group messagebus\n"), pkg("dbus", dbus),
		pkg("other", "dpkg-statoverride --add root nosuchgroup 0755 /x\n"))
	e := entry(t, tr, "/usr/lib/dbus-1.0/dbus-daemon-launch-helper")
	// messagebus got gid 101: users has 100.
	if e.Mode != 0o4754 || e.UID != 0 || e.GID != 101 {
		t.Errorf("launch helper: mode %o owner %d:%d, want 4754 0:101", e.Mode, e.UID, e.GID)
	}
	if got := fileString(t, tr, "/var/lib/dpkg/statoverride"); got != "root messagebus 4754 /usr/lib/dbus-1.0/dbus-daemon-launch-helper\n" {
		t.Errorf("statoverride: %q", got)
	}
	checkWarnings(t, rep, "postinst of other (line 1): dpkg-statoverride: no user root or group nosuchgroup; not run")
}

func TestUnits(t *testing.T) {
	tr := mergedUsrTree(t)
	for _, u := range []string{"ssh.service", "ssh.socket"} {
		addTestdata(t, tr, "openssh-server", "/lib/systemd/system/"+u)
	}
	for _, u := range []string{"getty@.service", "remote-fs.target", "systemd-pstore.service"} {
		addTestdata(t, tr, "systemd", "/lib/systemd/system/"+u)
	}
	addTestdata(t, tr, "systemd", "/lib/systemd/system-preset/90-systemd.preset")
	addFile(t, tr, "/lib/systemd/system/systemd-networkd-wait-online.service", 0o644, "[Install]\nWantedBy=network-online.target\n")
	addFile(t, tr, "/lib/systemd/system/foo.service", 0o644, "[Install]\nWantedBy=multi-user.target\n")
	sshPostinst, err := readTestdata("openssh-server", "postinst")
	if err != nil {
		t.Fatal(err)
	}
	systemdPostinst, err := readTestdata("systemd", "postinst")
	if err != nil {
		t.Fatal(err)
	}
	rep := configure(t, tr,
		pkg("systemd", systemdPostinst),
		pkg("openssh-server", sshPostinst),
		pkg("wait", "deb-systemd-helper enable 'systemd-networkd-wait-online.service' >/dev/null || true\n"),
		pkg("cond", "if grep -q x /etc/foo; then systemctl enable foo.service; fi\ndeb-systemd-helper --user enable 'pipewire.service'\n"),
		pkg("bad", "deb-systemd-helper enable '../../../etc/shadow.service'\n"),
	)
	got := map[string]string{}
	tr.Walk(func(p string, e *rootfs.Entry) error {
		if e.Type == rootfs.TypeSymlink && strings.HasPrefix(p, "/etc/systemd/system/") {
			got[p] = e.Target
		}
		return nil
	})
	want := map[string]string{
		"/etc/systemd/system/multi-user.target.wants/ssh.service":         "/lib/systemd/system/ssh.service",
		"/etc/systemd/system/sshd.service":                                "/lib/systemd/system/ssh.service",
		"/etc/systemd/system/getty.target.wants/getty@tty1.service":       "/lib/systemd/system/getty@.service",
		"/etc/systemd/system/multi-user.target.wants/remote-fs.target":    "/lib/systemd/system/remote-fs.target",
		"/etc/systemd/system/sysinit.target.wants/systemd-pstore.service": "/lib/systemd/system/systemd-pstore.service",
	}
	if len(got) != len(want) {
		t.Errorf("links %v\nwant %v", got, want)
	}
	for l, target := range want {
		if got[l] != target {
			t.Errorf("%s → %q, want %q", l, got[l], target)
		}
	}
	if want := []string{"getty@tty1.service (systemd)", "remote-fs.target (systemd)", "systemd-pstore.service (systemd)", "ssh.service (openssh-server)"}; strings.Join(rep.Units, ",") != strings.Join(want, ",") {
		t.Errorf("units %q", rep.Units)
	}
	checkWarnings(t, rep,
		"postinst of cond (line 1): systemctl enable foo.service: runs only under a condition keel cannot decide; not run",
		"deb-systemd-helper --user enable pipewire.service: user units are not enabled by keel",
		"postinst of bad (line 1): deb-systemd-helper enable",
	)
}

func readTestdata(pkgName, member string) (string, error) {
	b, err := readFileOS("testdata/debian12/" + pkgName + "/" + member)
	return string(b), err
}
