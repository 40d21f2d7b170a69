package postinst

import (
	"strings"
	"testing"

	"keel/rootfs"
)

// checkServer checks what a server made of Debian 12's systemd, dbus,
// openssh-server and mawk needs after Configure: the system accounts,
// awk through the alternatives, ssh.service enabled and ssh.socket not,
// getty@tty1.service enabled, no host keys and an empty machine-id.
func checkServer(t *testing.T, tr *rootfs.Tree, rep *Report) {
	t.Helper()
	c := &configurator{t: tr}
	passwd := readString(t, c, "/etc/passwd")
	for _, u := range []string{"root", "sshd", "systemd-network", "systemd-resolve", "messagebus"} {
		if !strings.Contains(passwd, "\n"+u+":x:") && !strings.HasPrefix(passwd, u+":x:") {
			t.Errorf("/etc/passwd has no %s:\n%s", u, passwd)
		}
	}
	shadow := readString(t, c, "/etc/shadow")
	for _, u := range []string{"root:*:", "sshd:!:", "systemd-network:!*:"} {
		if !strings.Contains(shadow, u) {
			t.Errorf("/etc/shadow has no %s...:\n%s", u, shadow)
		}
	}
	if e := entry(t, tr, "/etc/shadow"); e.Mode != 0o640 || e.GID != 42 {
		t.Errorf("/etc/shadow: mode %o gid %d, want 640 and shadow (42)", e.Mode, e.GID)
	}
	for link, want := range map[string]string{
		"/usr/bin/awk":          "/etc/alternatives/awk",
		"/etc/alternatives/awk": "/usr/bin/mawk",
		"/etc/systemd/system/multi-user.target.wants/ssh.service":           "/lib/systemd/system/ssh.service",
		"/etc/systemd/system/sshd.service":                                  "/lib/systemd/system/ssh.service",
		"/etc/systemd/system/getty.target.wants/getty@tty1.service":         "/lib/systemd/system/getty@.service",
		"/etc/systemd/system/multi-user.target.wants/remote-fs.target":      "/lib/systemd/system/remote-fs.target",
		"/etc/systemd/system/sysinit.target.wants/systemd-pstore.service":   "/lib/systemd/system/systemd-pstore.service",
		"/etc/systemd/system/sysinit.target.wants/systemd-resolved.service": "/lib/systemd/system/systemd-resolved.service",
		"/etc/resolv.conf": "../run/systemd/resolve/stub-resolv.conf",
	} {
		e, ok := tr.Get(link)
		if !ok || e.Type != rootfs.TypeSymlink || e.Target != want {
			t.Errorf("%s: %+v, want a link to %s", link, e, want)
		}
	}
	for _, absent := range []string{
		"/etc/systemd/system/sockets.target.wants/ssh.socket",
		"/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key",
		"/var/lib/dbus/machine-id",
	} {
		if _, ok := tr.Get(absent); ok {
			t.Errorf("%s exists", absent)
		}
	}
	if e := entry(t, tr, "/etc/machine-id"); e.Type != rootfs.TypeFile || e.Size != 0 {
		t.Errorf("/etc/machine-id: %+v, want an empty file", e)
	}
	if cfg := readString(t, c, "/etc/ssh/sshd_config"); !strings.Contains(cfg, "Include /etc/ssh/sshd_config.d/*.conf") {
		t.Errorf("/etc/ssh/sshd_config is not Debian's:\n%s", cfg)
	}
	if e := entry(t, tr, "/usr/lib/dbus-1.0/dbus-daemon-launch-helper"); e.Mode != 0o4754 || e.UID != 0 || e.GID == 0 {
		t.Errorf("dbus launch helper: mode %o owner %d:%d", e.Mode, e.UID, e.GID)
	}
	status := readString(t, c, "/var/lib/dpkg/status")
	for _, p := range []string{"systemd", "openssh-server", "mawk"} {
		if !strings.Contains(status, "Package: "+p+"\nStatus: install ok installed\n") {
			t.Errorf("status lacks %s", p)
		}
	}
}

func readString(t *testing.T, c *configurator, p string) string {
	t.Helper()
	b, ok, err := c.readFile(p)
	if err != nil || !ok {
		t.Fatalf("%s: missing (%v)", p, err)
	}
	return string(b)
}

func entry(t *testing.T, tr *rootfs.Tree, p string) *rootfs.Entry {
	t.Helper()
	_, e, err := tr.Resolve(p)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return e
}
