package postinst

import (
	"fmt"
	"sort"
	"strings"
)

// Effect 9, the report: every command of a preinst or postinst that runs
// on a fresh install and that no effect above applied is a warning,
// "postinst of foo: not run: ucf, db_get", one line per script, each
// command named once. Commands that need nothing done in an image are
// left out (silent below); those that are not needed in an image, because
// the system does their work at boot or the image does not need it, are
// named once, together (harmless below), with the dpkg triggers, which
// keel does not run either.

// silent commands only ask questions, print, or act on a running
// system.
var silent = map[string]bool{
	// shell builtins and plain utilities
	"echo": true, "printf": true, "true": true, "false": true, ":": true, "test": true, "[": true,
	"[[": true, "getent": true, "command": true, "which": true, "type": true, "hash": true,
	"grep": true, "egrep": true, "fgrep": true, "sed": true, "awk": true, "cat": true, "head": true,
	"tail": true, "cut": true, "tr": true, "sort": true, "uniq": true, "wc": true, "basename": true,
	"dirname": true, "readlink": true, "realpath": true, "dpkg-realpath": true, "stat": true,
	"id": true, "uname": true, "date": true, "mktemp": true, "md5sum": true, "sha1sum": true,
	"sha256sum": true, "cmp": true, "diff": true, "ls": true, "pidof": true, "sleep": true,
	"trap": true, "wait": true, "cd": true, "sync": true, "logger": true,
	// dpkg's questions and upgrade-only helpers
	"dpkg": true, "dpkg-query": true, "dpkg-architecture": true, "dpkg-maintscript-helper": true,
	// a running system's service management
	"update-rc.d": true, "invoke-rc.d": true, "deb-systemd-invoke": true, "service": true,
	"start-stop-daemon": true,
}

// harmless commands are not run because an image does not need them run
// at build time.
var harmless = map[string]bool{
	"ldconfig":                true, // the linker finds Debian's libraries without the cache
	"systemd-tmpfiles":        true, // systemd-tmpfiles-setup.service does it at boot
	"journalctl":              true, // journal-catalog-update.service rebuilds the catalog
	"update-initramfs":        true, // keel builds its own initrd
	"dpkg-trigger":            true,
	"update-menus":            true,
	"update-mime":             true,
	"update-desktop-database": true,
	"gtk-update-icon-cache":   true,
	"fc-cache":                true,
	"mandb":                   true,
	"install-info":            true,
	"update-info-dir":         true,
	"update-grub":             true,
	"bootctl":                 true, // keel installs the boot loader itself
	"kernel-install":          true,
}

const debconfModule = "/usr/share/debconf/confmodule"

func (c *configurator) report() {
	type scriptKey struct{ pkg, script string }
	type entry struct {
		label       string
		conditional bool // every time the script runs it, under a condition
	}
	var order []scriptKey
	notRun := map[scriptKey][]*entry{}
	harmlessBy := map[string]map[string]bool{} // command → packages
	var harmlessOrder []string
	addHarmless := func(name, pkg string) {
		if harmlessBy[name] == nil {
			harmlessBy[name] = map[string]bool{}
			harmlessOrder = append(harmlessOrder, name)
		}
		harmlessBy[name][pkg] = true
	}
	for _, inv := range c.invs {
		if inv.handled {
			continue
		}
		name := inv.name()
		pkg := inv.pkg.Name
		if c.covered[pkg][name] {
			continue
		}
		args, _ := inv.args()
		switch {
		case name == "." || name == "source":
			if len(args) == 1 && args[0] == debconfModule {
				addHarmless("debconf", pkg)
				continue
			}
		case strings.HasPrefix(name, "db_"):
			addHarmless("debconf", pkg)
			continue
		case harmless[name]:
			addHarmless(name, pkg)
			continue
		case silent[name] && len(inv.writes) == 0 && !(name == "sed" && hasInPlace(args)):
			continue
		}
		label := name
		switch {
		case name == "":
			label = "a command named by a variable"
		case len(inv.writes) > 0:
			label += " > FILE"
		}
		key := scriptKey{pkg, inv.script}
		if _, ok := notRun[key]; !ok {
			order = append(order, key)
		}
		var e *entry
		for _, old := range notRun[key] {
			if old.label == label {
				e = old
			}
		}
		if e == nil {
			e = &entry{label: label, conditional: true}
			notRun[key] = append(notRun[key], e)
		}
		e.conditional = e.conditional && inv.state == maybe && name != ""
	}
	warnings := append([]string(nil), c.unparsed...)
	for _, k := range order {
		var labels []string
		for _, e := range notRun[k] {
			if e.conditional {
				labels = append(labels, e.label+" (conditional)")
			} else {
				labels = append(labels, e.label)
			}
		}
		warnings = append(warnings, fmt.Sprintf("%s of %s: not run: %s", k.script, k.pkg, strings.Join(labels, ", ")))
	}
	var parts []string
	for _, name := range harmlessOrder {
		pkgs := sortedKeys(harmlessBy[name])
		if len(pkgs) > 3 {
			parts = append(parts, fmt.Sprintf("%s (%d packages)", name, len(pkgs)))
		} else {
			parts = append(parts, fmt.Sprintf("%s (%s)", name, strings.Join(pkgs, ", ")))
		}
	}
	var triggered []string
	for _, p := range c.pkgs {
		if strings.Contains(p.Scripts["triggers"], "interest") {
			triggered = append(triggered, p.Name)
		}
	}
	if len(triggered) > 0 {
		sort.Strings(triggered)
		parts = append(parts, "dpkg triggers of "+strings.Join(triggered, ", "))
	}
	if len(parts) > 0 {
		warnings = append(warnings, "not run, not needed in an image: "+strings.Join(parts, "; "))
	}
	// Warnings made by the effects come after the per-script lines.
	c.rep.Warnings = append(warnings, c.rep.Warnings...)
}

func hasInPlace(args []string) bool {
	for _, a := range args {
		if a == "-i" || strings.HasPrefix(a, "--in-place") || strings.HasPrefix(a, "-i") && !strings.HasPrefix(a, "-i-") {
			return true
		}
	}
	return false
}
