package postinst

import (
	"strings"
	"testing"

	"keel/rootfs"
)

func TestFileCommands(t *testing.T) {
	tr := mergedUsrTree(t)
	addFile(t, tr, "/usr/share/base-passwd/passwd.master", 0o644, masterPasswd+"mail:*:8:8:mail:/var/mail:/usr/sbin/nologin\n")
	addFile(t, tr, "/usr/share/base-passwd/group.master", 0o644, masterGroup+"utmp:*:43:\nmail:*:8:\n")
	addFile(t, tr, "/usr/share/base-files/profile", 0o644, "# profile\n")
	addFile(t, tr, "/usr/share/libc-bin/nsswitch.conf", 0o644, "passwd: files\n")
	tr.MkdirAllTime("/var/run", 0o755, 0)
	tr.MkdirAllTime("/var/log", 0o755, 0)
	addFile(t, tr, "/etc/existing", 0o644, "keep\n")
	// Excerpts of Debian 12's base-files, libc-bin, login, libpam-modules
	// and systemd postinsts, with the functions they call.
	script := `#!/bin/sh
set -e
install_from_default() {
  if [ ! -f "$DPKG_ROOT$2" ]; then
    cp -p "$DPKG_ROOT/usr/share/base-files/$1" "$DPKG_ROOT$2"
  fi
}
install_directory() {
  if [ ! -d "$DPKG_ROOT/$1" ]; then
    mkdir "$DPKG_ROOT/$1"
    chown "root:$3" "$DPKG_ROOT/$1"
    chmod "$2" "$DPKG_ROOT/$1"
  fi
}
migrate_directory() {
  if [ ! -L "$DPKG_ROOT$1" ]; then
    rmdir "$DPKG_ROOT$1"
    ln -s "$2" "$DPKG_ROOT$1"
  fi
}
ensure_file_owner_mode() {
  if [ ! -f "$DPKG_ROOT$1" ]; then
    : > "$DPKG_ROOT$1"
  fi
  chown "$2" "$DPKG_ROOT$1"
  chmod "$3" "$DPKG_ROOT$1"
}
if [ "$1" = "configure" ] && [ "$2" = "" ]; then
  install_from_default profile /etc/profile
  install_directory var/mail 2775 mail
  install_directory run/lock 1777 root
  migrate_directory /var/run /run
  ensure_file_owner_mode /var/log/wtmp root:utmp 664
  ln -sf share/man "$DPKG_ROOT/usr/local/man"
fi
if [ "$1" = "configure" ] && [ "$2" = "" ] ; then
  if [ ! -f "$DPKG_ROOT/etc/nsswitch.conf" ]; then cp -p "$DPKG_ROOT/usr/share/libc-bin/nsswitch.conf" "$DPKG_ROOT/etc/nsswitch.conf"; fi
fi
umask 066
touch "$DPKG_ROOT"/etc/security/opasswd
umask 022
mkdir -p "$DPKG_ROOT/var/log/journal"
touch /etc/existing
echo "hello" > /etc/greeting
echo "again" >> /etc/greeting
if grep -q x /etc/foo; then touch /etc/maybe; fi
ln -s /x /etc/existing
chmod u+s,g-r /etc/profile
rm -f /etc/nothing
`
	rep := configure(t, tr, pkg("base-passwd", ""), pkg("base-files", script))
	for p, want := range map[string]struct {
		typ       rootfs.Type
		mode, gid uint32
		target    string
		body      string
	}{
		"/etc/profile":          {rootfs.TypeFile, 0o4604, 0, "", "# profile\n"},
		"/etc/nsswitch.conf":    {rootfs.TypeFile, 0o644, 0, "", "passwd: files\n"},
		"/var/mail":             {rootfs.TypeDir, 0o2775, 8, "", ""},
		"/var/run":              {rootfs.TypeSymlink, 0o777, 0, "/run", ""},
		"/var/log/wtmp":         {rootfs.TypeFile, 0o664, 43, "", ""},
		"/usr/local/man":        {rootfs.TypeSymlink, 0o777, 0, "share/man", ""},
		"/etc/security/opasswd": {rootfs.TypeFile, 0o600, 0, "", ""},
		"/var/log/journal":      {rootfs.TypeDir, 0o755, 0, "", ""},
		"/etc/existing":         {rootfs.TypeFile, 0o644, 0, "", "keep\n"},
		"/etc/greeting":         {rootfs.TypeFile, 0o644, 0, "", "hello\nagain\n"},
	} {
		real, err := tr.ResolveParent(p)
		e, ok := tr.Get(real)
		if err != nil || !ok {
			t.Errorf("%s missing", p)
			continue
		}
		if e.Type != want.typ || e.Mode != want.mode || e.GID != want.gid || e.Target != want.target {
			t.Errorf("%s: %s %o gid %d → %q; want %s %o gid %d → %q", p, e.Type, e.Mode, e.GID, e.Target, want.typ, want.mode, want.gid, want.target)
		}
		if want.typ == rootfs.TypeFile {
			if got := fileString(t, tr, p); got != want.body {
				t.Errorf("%s: %q, want %q", p, got, want.body)
			}
		}
	}
	for _, absent := range []string{"/run/lock", "/etc/maybe"} {
		if _, ok := tr.Get(absent); ok {
			t.Errorf("%s made", absent)
		}
	}
	checkWarnings(t, rep,
		"postinst of base-files: not run: touch (conditional)",
		"ln -s /x /etc/existing: /etc/existing exists; not run",
	)
}

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		s        string
		old, out uint32
	}{
		{"644", 0o755, 0o644}, {"4754", 0, 0o4754}, {"+x", 0o644, 0o755}, {"u+x", 0o644, 0o744},
		{"go-w", 0o666, 0o644}, {"a=r", 0o777, 0o444}, {"u=rwx,g=rx,o=", 0o000, 0o750}, {"g+s", 0o755, 0o2755},
	} {
		got, err := parseMode(tc.s, tc.old)
		if err != nil || got != tc.out {
			t.Errorf("parseMode(%q, %o) = %o, %v; want %o", tc.s, tc.old, got, err, tc.out)
		}
	}
	for _, bad := range []string{"99999", "u+q", "z+x", ""} {
		if _, err := parseMode(bad, 0); err == nil {
			t.Errorf("parseMode(%q) accepted", bad)
		}
	}
}

func TestRecipes(t *testing.T) {
	tr := mergedUsrTree(t)
	addTestdata(t, tr, "openssh-server", "/usr/share/openssh/sshd_config")
	addFile(t, tr, "/usr/share/zoneinfo/Etc/UTC", 0o644, "TZif")
	addFile(t, tr, "/usr/share/debianutils/shells", 0o644, "# /etc/shells: valid login shells\n/bin/sh\n")
	addFile(t, tr, "/usr/share/debianutils/shells.d/dash", 0o644, "/bin/dash\n")
	addFile(t, tr, "/usr/share/debianutils/shells.d/bash", 0o644, "/bin/bash\n/bin/rbash\n")
	addFile(t, tr, "/etc/resolv.conf", 0o644, "nameserver 10.0.0.1\n")
	ssh, err := readTestdata("openssh-server", "postinst")
	if err != nil {
		t.Fatal(err)
	}
	rep := configure(t, tr, pkg("openssh-server", ssh), pkg("systemd", "systemd-machine-id-setup ${DPKG_ROOT:+--root=\"$DPKG_ROOT\"}\n"),
		pkg("systemd-resolved", ""), pkg("tzdata", ""), pkg("debianutils", "update-shells\n"))
	if got, want := fileString(t, tr, "/etc/ssh/sshd_config"), fileString(t, tr, "/usr/share/openssh/sshd_config"); got != want {
		t.Error("sshd_config is not Debian's default")
	}
	for _, key := range []string{"rsa", "ecdsa", "ed25519"} {
		if _, ok := tr.Get("/etc/ssh/ssh_host_" + key + "_key"); ok {
			t.Errorf("%s host key made", key)
		}
	}
	if e := entry(t, tr, "/etc/machine-id"); e.Size != 0 || e.Mode != 0o444 {
		t.Errorf("machine-id: %+v", e)
	}
	for link, want := range map[string]string{"/etc/resolv.conf": "../run/systemd/resolve/stub-resolv.conf", "/etc/localtime": "/usr/share/zoneinfo/Etc/UTC"} {
		if e, ok := tr.Get(link); !ok || e.Target != want {
			t.Errorf("%s: %+v", link, e)
		}
	}
	if got := fileString(t, tr, "/etc/timezone"); got != "Etc/UTC\n" {
		t.Errorf("timezone %q", got)
	}
	if got, want := fileString(t, tr, "/etc/shells"), "# /etc/shells: valid login shells\n/bin/sh\n/usr/bin/sh\n/bin/bash\n/usr/bin/bash\n/bin/rbash\n/usr/bin/rbash\n/bin/dash\n/usr/bin/dash\n"; got != want {
		t.Errorf("shells:\n%s\nwant\n%s", got, want)
	}
	for _, w := range rep.Warnings {
		for _, cmd := range []string{"ucf", "ssh-keygen", "systemd-machine-id-setup", "update-shells"} {
			if strings.Contains(w, cmd) {
				t.Errorf("warning names %s, which a recipe stands for: %s", cmd, w)
			}
		}
	}
}
