package postinst

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"keel/rootfs"
)

// Effect 4: dpkg-statoverride --add [--update] USER GROUP MODE PATH. The
// override is recorded in /var/lib/dpkg/statoverride ("USER GROUP MODE
// PATH", mode in octal, sorted by path) so dpkg applies it again on
// upgrades, and, with --update, the file's owner and mode are set in the
// tree. dbus uses it for its setuid launch helper (root messagebus 4754).

type override struct {
	user, group string
	mode        uint32
	path        string
}

func (c *configurator) statoverrides() error {
	var list []override
	for _, inv := range c.invocationsOf("dpkg-statoverride") {
		args, ok := inv.args()
		if !ok {
			inv.handled = true
			c.warn("%s: dpkg-statoverride: %s is not known at build time; not run", inv.where(), unknownArg(inv))
			continue
		}
		o, update, isAdd, err := parseStatoverride(args)
		if !isAdd {
			// --list is a question; --remove has nothing to undo on a fresh install.
			inv.handled = true
			continue
		}
		inv.handled = true
		if err != nil {
			c.warn("%s: dpkg-statoverride: %v; not run", inv.where(), err)
			continue
		}
		uid, ok1 := c.db.resolveUser(o.user)
		gid, ok2 := c.db.resolveGroup(o.group)
		if !ok1 || !ok2 {
			c.warn("%s: dpkg-statoverride: no user %s or group %s; not run", inv.where(), o.user, o.group)
			continue
		}
		replaced := false
		for i := range list {
			if list[i].path == o.path {
				list[i], replaced = o, true
			}
		}
		if !replaced {
			list = append(list, o)
		}
		if !update {
			continue
		}
		real, e, err := c.t.Resolve(o.path)
		if err != nil {
			c.warn("%s: dpkg-statoverride --update: %s is not in the tree", inv.where(), o.path)
			continue
		}
		// Entries may be shared by hard links; the override applies to
		// the inode, as chown/chmod would.
		e.UID, e.GID, e.Mode = uint32(uid), uint32(gid), o.mode
		c.log.Debug("statoverride", "path", real, "owner", o.user+":"+o.group, "mode", fmt.Sprintf("%o", o.mode))
		c.applied("%s: %s %s:%s %o (dpkg-statoverride)", inv.pkg.Name, o.path, o.user, o.group, o.mode)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].path < list[j].path })
	var b strings.Builder
	for _, o := range list {
		fmt.Fprintf(&b, "%s %s %o %s\n", o.user, o.group, o.mode, o.path)
	}
	return c.writeFile(dpkgDir+"/statoverride", 0o644, 0, 0, []byte(b.String()))
}

func parseStatoverride(args []string) (o override, update, isAdd bool, err error) {
	var pos []string
	for _, a := range args {
		switch {
		case a == "--add":
			isAdd = true
		case a == "--update":
			update = true
		case a == "--quiet" || a == "--force" || strings.HasPrefix(a, "--force-") || strings.HasPrefix(a, "--root=") || strings.HasPrefix(a, "--admindir="):
		case a == "--list" || a == "--remove":
			return o, false, false, nil
		case strings.HasPrefix(a, "-"):
			return o, false, isAdd, fmt.Errorf("option %s not supported", a)
		default:
			pos = append(pos, a)
		}
	}
	if !isAdd {
		return o, false, false, nil
	}
	if len(pos) != 4 {
		return o, false, true, fmt.Errorf("--add needs USER GROUP MODE PATH")
	}
	m, err := strconv.ParseUint(pos[2], 8, 32)
	if err != nil || m > rootfs.ModePerm {
		return o, false, true, fmt.Errorf("bad mode %q", pos[2])
	}
	if !path.IsAbs(pos[3]) || strings.ContainsAny(pos[3], "\n") {
		return o, false, true, fmt.Errorf("bad path %q", pos[3])
	}
	if strings.ContainsAny(pos[0]+pos[1], " \n") {
		return o, false, true, fmt.Errorf("bad owner %s:%s", pos[0], pos[1])
	}
	return override{user: pos[0], group: pos[1], mode: uint32(m), path: rootfs.Clean(pos[3])}, update, true, nil
}
