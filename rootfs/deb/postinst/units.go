package postinst

import (
	"fmt"
	"strings"

	"keel/rootfs/systemd"
)

// Effect 5: systemd units, with keel/rootfs/systemd instead of systemctl.
//
//   - `deb-systemd-helper enable 'UNIT'`, which dh_installsystemd writes
//     into postinst, enables UNIT the way deb-systemd-helper does when
//     systemctl is installed: `systemctl preset --preset-mode=enable-only`,
//     so Debian's preset files decide (90-systemd.preset disables
//     systemd-networkd-wait-online.service, ...). Inside an `if
//     deb-systemd-helper debian-installed 'UNIT'; then` block the unit is
//     one a package ships disabled (ssh.socket): that condition is false on
//     a fresh install, so the block is not entered.
//   - `systemctl [--root=...] enable UNIT...` is applied only where every
//     condition on the way is known to hold on a fresh install (systemd's
//     postinst: `if [ -z "$2" ]` for getty@tty1.service and
//     remote-fs.target, `dpkg --compare-versions "$2" lt 245.4-4~` for
//     systemd-pstore.service). Under a condition keel cannot decide it is
//     reported instead.
//   - user units (--user, --global) are not enabled and are reported.
//   - update-rc.d, invoke-rc.d, deb-systemd-invoke and the other
//     systemctl verbs act on a running system and are ignored.

func (c *configurator) units() error {
	seen := map[string]bool{}
	enabled := func(pkg, unit string, ch *systemd.Changes) {
		for _, n := range ch.Notes {
			c.log.Debug("enabling unit", "package", pkg, "unit", unit, "note", n)
		}
		if !seen[unit] {
			seen[unit] = true
			c.rep.Units = append(c.rep.Units, fmt.Sprintf("%s (%s)", unit, pkg))
		}
	}
	for _, inv := range c.invocationsOf("deb-systemd-helper", "systemctl") {
		args, ok := inv.args()
		if !ok {
			// Keep the known words, so the verb can still be told apart.
			args = args[:0]
			for _, a := range inv.argv[1:] {
				if a.known {
					args = append(args, a.s)
				} else {
					args = append(args, "?")
				}
			}
		}
		verb, units, user := systemctlArgs(args)
		if verb == "?" {
			verb = "enable" // could be; say so below
		}
		switch {
		case inv.name() == "deb-systemd-helper" && verb != "enable":
			inv.handled = true // was-enabled, unmask, update-state: state of an installed system
			continue
		case inv.name() == "systemctl" && verb != "enable" && verb != "preset" && verb != "mask":
			inv.handled = true // daemon-reload, start, is-active, ...: a running system's business
			continue
		}
		inv.handled = true
		if !ok {
			c.warn("%s: %s: a unit name is not known at build time; not run", inv.where(), inv.text())
			continue
		}
		if user {
			c.warn("%s: %s: user units are not enabled by keel; not run", inv.where(), inv.text())
			continue
		}
		if inv.name() == "systemctl" && inv.state != always {
			c.warn("%s: %s: runs only under a condition keel cannot decide; not run", inv.where(), inv.text())
			continue
		}
		for _, u := range units {
			var ch *systemd.Changes
			var err error
			switch {
			case verb == "mask":
				ch, err = systemd.Mask(c.t, u, c.opts.Epoch)
			case inv.name() == "deb-systemd-helper" || verb == "preset":
				ch, err = systemd.Preset(c.t, u, c.opts.Epoch)
			default:
				ch, err = systemd.Enable(c.t, u, c.opts.Epoch)
			}
			if err != nil {
				c.warn("%s: %s %s: %v", inv.where(), inv.name(), verb, err)
				continue
			}
			if verb == "mask" {
				c.applied("%s: masked %s", inv.pkg.Name, u)
				continue
			}
			// No links: disabled by a preset, static, or enabled already.
			if len(ch.Links) > 0 {
				enabled(inv.pkg.Name, u, ch)
			}
		}
	}
	for _, inv := range c.invocationsOf("update-rc.d", "invoke-rc.d", "deb-systemd-invoke", "service") {
		inv.handled = true
	}
	return nil
}

// systemctlArgs splits a systemctl or deb-systemd-helper command line:
// its verb, the unit names after it, and whether it is about user units.
func systemctlArgs(args []string) (verb string, units []string, user bool) {
	for _, a := range args {
		switch {
		case a == "--user" || a == "--global":
			user = true
		case strings.HasPrefix(a, "-"):
		case verb == "":
			verb = a
		default:
			units = append(units, a)
		}
	}
	return verb, units, user
}
