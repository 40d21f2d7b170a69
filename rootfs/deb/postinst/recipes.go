package postinst

import (
	"fmt"
	"path"
	"strings"

	"keel/rootfs"
)

// Effect 8: per-package recipes, for the few packages whose scripts do
// something an image needs that none of the generic effects covers. Each
// entry says which script lines it stands for; covers lists the commands
// of those scripts it answers for, which are then not reported.
type recipe struct {
	pkg    string
	covers []string
	apply  func(*configurator, *Package) error
}

var recipes = []recipe{
	// base-passwd preinst/postinst: `cp .../passwd.master /etc/passwd` and
	// the heredoc fallback; done by the accounts effect (seedBasePasswd).
	{pkg: "base-passwd", covers: []string{"cp", "cat", "update-passwd", "rm", "mktemp"}},
	// passwd postinst: `shadowconfig on` (pwconv, grpconv); the accounts
	// effect writes /etc/shadow and /etc/gshadow for every account.
	{pkg: "passwd", covers: []string{"shadowconfig"}},
	// openssh-server postinst, create_sshdconfig: `cp -aZ
	// /usr/share/openssh/sshd_config "$new_config"`, then `ucf --three-way
	// ... "$new_config" /etc/ssh/sshd_config`; the debconf questions
	// (permit-root-login, password-authentication) left at their defaults
	// change nothing. create_keys' `ssh-keygen` is deliberately not done:
	// host keys are per machine and are made at first boot, under /var.
	{pkg: "openssh-server", covers: []string{"ucf", "ucfr", "ssh-keygen", "cp", "sed", "mktemp", "mkdir", "restorecon", "trap", "rm", "mv"}, apply: sshdConfig},
	// systemd postinst: `systemd-machine-id-setup` would write a random
	// /etc/machine-id. An empty one is what an image carries: systemd
	// treats the boot as a first boot and keel-init binds the machine's
	// own id over it.
	{pkg: "systemd", covers: []string{"systemd-machine-id-setup"}, apply: emptyMachineID},
	// systemd-resolved postinst: `ln -sf ../run/systemd/resolve/stub-resolv.conf
	// "${DPKG_ROOT}/etc/resolv.conf"` under a readlink test keel cannot run.
	{pkg: "systemd-resolved", covers: []string{"ln", "mv", "readlink", "md5sum", "dpkg-query", "sed"}, apply: resolvConf},
	// ca-certificates postinst: writes /etc/ca-certificates.conf from the
	// debconf defaults (every certificate shipped), then
	// `update-ca-certificates --hooksdir ""`.
	{pkg: "ca-certificates", covers: []string{"update-ca-certificates", "cat", "sed", "mkdir", "chgrp", "chmod", "chown", "stat", "cmp", "mv", "rm", "tr", "sort", "uniq", "dpkg-trigger"}, apply: caCertificates},
	// dbus postinst: nothing beyond its dpkg-statoverride (effect 4).
	// dbus-daemon postinst: `dbus-uuidgen --ensure` is deliberately not
	// run: it would write a random /var/lib/dbus/machine-id; dbus reads
	// /etc/machine-id.
	{pkg: "dbus-daemon", covers: []string{"dbus-uuidgen"}, apply: func(c *configurator, p *Package) error {
		c.applied("dbus-daemon: /var/lib/dbus/machine-id not made (dbus uses /etc/machine-id)")
		return nil
	}},
	// tzdata postinst: `ln -nsf /usr/share/zoneinfo/$AREA/$ZONE
	// /etc/localtime` and `echo "$TIMEZONE" > /etc/timezone` with the
	// debconf defaults Etc and UTC. keel's profile timezone may replace them.
	{pkg: "tzdata", covers: []string{"ln", "mv", "echo", "date", "which", "restorecon", "realpath", "readlink"}, apply: timezone},
	// debianutils postinst: `update-shells`, which adds the shells of
	// /usr/share/debianutils/shells.d to /etc/shells (with their /usr
	// paths on a merged-/usr tree).
	{pkg: "debianutils", covers: []string{"update-shells"}, apply: updateShells},
	// busybox and busybox-static have no script for it, but a busybox
	// image needs the applet links `busybox --install -s` makes.
	{pkg: "busybox", apply: busyboxLinks},
	{pkg: "busybox-static", apply: busyboxLinks},
}

func (c *configurator) recipes() error {
	for _, r := range recipes {
		p, ok := c.byName[r.pkg]
		if !ok {
			continue
		}
		if r.apply == nil {
			continue
		}
		if err := r.apply(c, p); err != nil {
			return fmt.Errorf("%s: %w", r.pkg, err)
		}
	}
	return nil
}

func sshdConfig(c *configurator, p *Package) error {
	const src, dst = "/usr/share/openssh/sshd_config", "/etc/ssh/sshd_config"
	c.applied("openssh-server: no host keys made (they are per machine)")
	if c.lexists(dst) {
		return nil
	}
	b, ok, err := c.readFile(src)
	if err != nil {
		return err
	}
	if !ok {
		c.warn("openssh-server: %s is missing; %s not written", src, dst)
		return nil
	}
	if err := c.writeFile(dst, 0o644, 0, 0, b); err != nil {
		return err
	}
	c.applied("openssh-server: %s from %s", dst, src)
	return nil
}

func emptyMachineID(c *configurator, p *Package) error {
	if err := c.writeFile("/etc/machine-id", 0o444, 0, 0, nil); err != nil {
		return err
	}
	c.applied("systemd: empty /etc/machine-id (the id is made at boot)")
	return nil
}

func resolvConf(c *configurator, p *Package) error {
	const link, target = "/etc/resolv.conf", "../run/systemd/resolve/stub-resolv.conf"
	if real, err := c.t.ResolveParent(link); err == nil {
		if e, ok := c.t.Get(real); ok && e.Type == rootfs.TypeSymlink &&
			(e.Target == target || e.Target == "/run/systemd/resolve/stub-resolv.conf") {
			return nil
		}
	}
	if err := c.symlink(link, target); err != nil {
		return err
	}
	c.applied("systemd-resolved: %s → %s", link, target)
	return nil
}

func timezone(c *configurator, p *Package) error {
	const zone = "Etc/UTC"
	if !c.exists("/usr/share/zoneinfo/" + zone) {
		c.warn("tzdata: /usr/share/zoneinfo/%s is missing; time zone not set", zone)
		return nil
	}
	if !c.lexists("/etc/localtime") {
		if err := c.symlink("/etc/localtime", "/usr/share/zoneinfo/"+zone); err != nil {
			return err
		}
	}
	if !c.lexists("/etc/timezone") {
		if err := c.writeFile("/etc/timezone", 0o644, 0, 0, []byte(zone+"\n")); err != nil {
			return err
		}
	}
	c.applied("tzdata: /etc/localtime → %s (debconf's default)", zone)
	return nil
}

// updateShells is debianutils' update-shells on a fresh install.
func updateShells(c *configurator, p *Package) error {
	const (
		etc      = "/etc/shells"
		template = "/usr/share/debianutils/shells"
		pkgDir   = "/usr/share/debianutils/shells.d"
		state    = "/var/lib/shells.state"
	)
	source := etc
	if !c.exists(etc) {
		source = template
	}
	var pkgShells []string
	seen := map[string]bool{}
	addPkg := func(s string) {
		if !seen[s] {
			seen[s] = true
			pkgShells = append(pkgShells, s)
		}
	}
	files := []string{template}
	if real, e, err := c.t.Resolve(pkgDir); err == nil && e.Type == rootfs.TypeDir {
		for _, n := range c.t.Children(real) {
			files = append(files, pkgDir+"/"+n)
		}
	}
	for _, f := range files {
		b, ok, err := c.readFile(f)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			line, _, _ = strings.Cut(line, "#")
			if line = strings.TrimSpace(line); line == "" {
				continue
			}
			addPkg(line)
			if dir, _, err := c.t.Resolve(path.Dir(line)); err == nil {
				if real := path.Join(dir, path.Base(line)); real != line {
					addPkg(real)
				}
			}
		}
	}
	var out strings.Builder
	etcShells := map[string]bool{}
	src, ok, err := c.readFile(source)
	if err != nil {
		return err
	}
	if ok {
		for _, line := range strings.Split(strings.TrimSuffix(string(src), "\n"), "\n") {
			shell, _, _ := strings.Cut(line, "#")
			if shell == "" || !etcShells[shell] {
				out.WriteString(line + "\n")
				etcShells[shell] = true
			}
		}
	}
	var st strings.Builder
	for _, s := range pkgShells {
		st.WriteString(s + "\n")
		if !etcShells[s] {
			out.WriteString(s + "\n")
			etcShells[s] = true
		}
	}
	if err := c.writeFile(etc, 0o644, 0, 0, []byte(out.String())); err != nil {
		return err
	}
	if err := c.writeFile(state, 0o644, 0, 0, []byte(st.String())); err != nil {
		return err
	}
	c.applied("debianutils: /etc/shells with %s", strings.Join(pkgShells, " "))
	return nil
}
