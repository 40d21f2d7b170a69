package postinst

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"keel/rootfs"
)

// Effect 7: plain file commands — mkdir, touch, ln, cp, chmod, chown,
// chgrp, rm, rmdir — where the script certainly runs them on a fresh
// install and every argument is known: base-files' /etc/profile,
// /root/.profile, /var/run → /run and /usr/local dirs, libc-bin's
// /etc/nsswitch.conf, debianutils' /etc/shells, login's /etc/subuid,
// systemd's /var/log/journal. They run in install order with the umask
// the script set. Paths under /run, /proc, /sys, /dev and /tmp are
// skipped: those are filled at runtime. A command under a condition keel cannot decide,
// or with an argument it cannot know, is reported, not guessed.

var fileCommands = map[string]func(*configurator, *invocation, []string) error{
	"mkdir": (*configurator).cmdMkdir,
	"touch": (*configurator).cmdTouch,
	"ln":    (*configurator).cmdLn,
	"cp":    (*configurator).cmdCp,
	"chmod": (*configurator).cmdChmod,
	"chown": (*configurator).cmdChown,
	"chgrp": (*configurator).cmdChown,
	"rm":    (*configurator).cmdRm,
	"rmdir": (*configurator).cmdRmdir,
}

// errSkip marks a command that has nothing to do in an image.
var errSkip = errors.New("skipped")

func (c *configurator) files() error {
	for _, inv := range c.invs {
		if c.covered[inv.pkg.Name][inv.name()] {
			continue
		}
		if len(inv.writes) == 1 && inv.state == always && !inv.inSubst {
			if err := c.redirected(inv); err != errSkip {
				inv.handled = true
				if err != nil {
					c.warn("%s: %s > %s: %v; not run", inv.where(), inv.text(), inv.writes[0].target.s, err)
				}
				continue
			}
		}
		run, ok := fileCommands[inv.name()]
		if !ok || inv.state != always || inv.inSubst || len(inv.writes) > 0 {
			continue
		}
		args, ok := inv.args()
		if !ok {
			continue
		}
		err := run(c, inv, args)
		switch {
		case err == errSkip:
			inv.handled = true
		case err != nil:
			inv.handled = true
			c.warn("%s: %s: %v; not run", inv.where(), inv.text(), err)
		default:
			inv.handled = true
			c.log.Debug("file command", "package", inv.pkg.Name, "command", inv.text())
		}
	}
	return nil
}

// shortFlags splits "-pf" style flags off the arguments; long options
// must be in allowed (with their value after "=" when they take one).
func shortFlags(args []string, short string, long ...string) (map[string]bool, []string, error) {
	flags := map[string]bool{}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return flags, append(rest, args[i+1:]...), nil
		case strings.HasPrefix(a, "--"):
			name, _, _ := strings.Cut(a, "=")
			ok := false
			for _, l := range long {
				ok = ok || l == name
			}
			if !ok {
				return nil, nil, fmt.Errorf("option %s not supported", a)
			}
			flags[a] = true
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for _, f := range a[1:] {
				if !strings.ContainsRune(short, f) {
					return nil, nil, fmt.Errorf("option -%c not supported", f)
				}
				flags[string(f)] = true
			}
		default:
			rest = append(rest, a)
		}
	}
	return flags, rest, nil
}

// imagePath checks a path a command writes: absolute, and not one of the
// runtime filesystems.
func imagePath(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("relative path %q", p)
	}
	p = rootfs.Clean(p)
	for _, dir := range []string{"/run", "/proc", "/sys", "/dev", "/tmp"} {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			return "", errSkip
		}
	}
	return p, nil
}

func (c *configurator) defaultMode(base uint32, inv *invocation) uint32 {
	umask := 0o022
	if inv.umask >= 0 {
		umask = inv.umask
	}
	return base &^ uint32(umask)
}

func (c *configurator) cmdMkdir(inv *invocation, args []string) error {
	var mode = c.defaultMode(0o777, inv)
	var rest []string
	parents := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-p" || a == "--parents":
			parents = true
		case a == "-v" || a == "-Z" || a == "--verbose":
		case a == "-m" || strings.HasPrefix(a, "--mode=") || strings.HasPrefix(a, "-m"):
			v := strings.TrimPrefix(strings.TrimPrefix(a, "--mode="), "-m")
			if a == "-m" {
				if i+1 >= len(args) {
					return fmt.Errorf("-m needs a mode")
				}
				i++
				v = args[i]
			}
			m, err := strconv.ParseUint(v, 8, 32)
			if err != nil || m > rootfs.ModePerm {
				return fmt.Errorf("mode %q not supported", v)
			}
			mode = uint32(m)
		case strings.HasPrefix(a, "-") && len(a) > 1 && strings.Trim(a[1:], "pvZ") == "":
			parents = parents || strings.Contains(a, "p")
		case strings.HasPrefix(a, "-") && len(a) > 1:
			return fmt.Errorf("option %s not supported", a)
		default:
			rest = append(rest, a)
		}
	}
	if len(rest) == 0 {
		return fmt.Errorf("no directory")
	}
	for _, d := range rest {
		p, err := imagePath(d)
		if err != nil {
			if err == errSkip {
				continue
			}
			return err
		}
		if c.exists(p) {
			if !parents {
				return fmt.Errorf("%s exists", p)
			}
			continue
		}
		parent := path.Dir(p)
		if !c.exists(parent) && !parents {
			return fmt.Errorf("%s does not exist", parent)
		}
		if _, err := c.t.MkdirAllTime(parent, c.defaultMode(0o777, inv)|0o300, c.opts.Epoch); err != nil {
			return err
		}
		if _, err := c.t.MkdirAllTime(p, mode, c.opts.Epoch); err != nil {
			return err
		}
	}
	return nil
}

func (c *configurator) cmdTouch(inv *invocation, args []string) error {
	flags, rest, err := shortFlags(args, "acmh", "--no-create", "--no-dereference")
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return fmt.Errorf("no file")
	}
	for _, f := range rest {
		p, err := imagePath(f)
		if err != nil {
			if err == errSkip {
				continue
			}
			return err
		}
		if c.lexists(p) || flags["c"] || flags["--no-create"] {
			continue // times are the build's, set by the clamp
		}
		if err := c.writeFile(p, c.defaultMode(0o666, inv), 0, 0, nil); err != nil {
			return err
		}
	}
	return nil
}

func (c *configurator) cmdLn(inv *invocation, args []string) error {
	flags, rest, err := shortFlags(args, "sfnTv", "--symbolic", "--force", "--no-dereference", "--no-target-directory", "--verbose")
	if err != nil {
		return err
	}
	symbolic := flags["s"] || flags["--symbolic"]
	force := flags["f"] || flags["--force"]
	noDeref := flags["n"] || flags["T"] || flags["--no-dereference"] || flags["--no-target-directory"]
	if len(rest) != 2 {
		return fmt.Errorf("only ln TARGET LINK is supported")
	}
	target, link := rest[0], rest[1]
	p, err := imagePath(link)
	if err != nil {
		return err
	}
	// "ln -s target dir" makes dir/base(target), unless -n or -T.
	if !noDeref {
		if _, e, err := c.t.Resolve(p); err == nil && e.Type == rootfs.TypeDir {
			p = path.Join(p, path.Base(target))
		}
	}
	if c.lexists(p) {
		real, _ := c.t.ResolveParent(p)
		e, _ := c.t.Get(real)
		if !force {
			if e.Type == rootfs.TypeSymlink && e.Target == target {
				return nil
			}
			return fmt.Errorf("%s exists", p)
		}
		if e.Type == rootfs.TypeDir {
			return fmt.Errorf("%s is a directory", p)
		}
	}
	if symbolic {
		return c.symlink(p, target)
	}
	src := target
	if !path.IsAbs(src) {
		return fmt.Errorf("relative hard link target %q", src)
	}
	realSrc, _, err := c.t.Resolve(src)
	if err != nil {
		return fmt.Errorf("%s does not exist", src)
	}
	real, err := c.place(p)
	if err != nil {
		return err
	}
	c.t.Remove(real)
	return c.t.Link(real, realSrc)
}

func (c *configurator) cmdCp(inv *invocation, args []string) error {
	flags, rest, err := shortFlags(args, "pafdPZv", "--preserve", "--preserve=mode,ownership,timestamps", "--archive", "--force", "--no-dereference", "--remove-destination")
	if err != nil {
		return err
	}
	if len(rest) != 2 {
		return fmt.Errorf("only cp SOURCE DEST is supported")
	}
	preserve := flags["p"] || flags["a"] || flags["--archive"] || flags["--preserve"] || flags["--preserve=mode,ownership,timestamps"]
	noDeref := flags["a"] || flags["d"] || flags["P"] || flags["--archive"] || flags["--no-dereference"]
	if !path.IsAbs(rest[0]) {
		return fmt.Errorf("relative path %q", rest[0])
	}
	var src *rootfs.Entry
	if noDeref {
		real, err := c.t.ResolveParent(rest[0])
		if err == nil {
			src, _ = c.t.Get(real)
		}
	} else if _, e, err := c.t.Resolve(rest[0]); err == nil {
		src = e
	}
	if src == nil {
		return fmt.Errorf("%s does not exist", rest[0])
	}
	if src.Type != rootfs.TypeFile && src.Type != rootfs.TypeSymlink {
		return fmt.Errorf("%s is a %s", rest[0], src.Type)
	}
	dst, err := imagePath(rest[1])
	if err != nil {
		return err
	}
	if _, e, err := c.t.Resolve(dst); err == nil && e.Type == rootfs.TypeDir {
		dst = path.Join(dst, path.Base(rest[0]))
	}
	n := *src
	n.Xattrs = nil
	n.Mtime = c.opts.Epoch
	if !preserve {
		n.UID, n.GID = 0, 0
		n.Mode = src.Mode & c.defaultMode(0o777, inv)
		if src.Type == rootfs.TypeSymlink {
			n.Mode = 0o777
		}
	} else {
		n.Mtime = src.Mtime
	}
	real, err := c.place(dst)
	if err != nil {
		return err
	}
	if e, ok := c.t.Get(real); ok && e.Type == rootfs.TypeDir {
		return fmt.Errorf("%s is a directory", dst)
	}
	return c.t.Add(real, &n)
}

// parseMode applies an octal or simple symbolic mode ("u+x", "a-w",
// "g=rx") to old.
func parseMode(s string, old uint32) (uint32, error) {
	if m, err := strconv.ParseUint(s, 8, 32); err == nil {
		if m > rootfs.ModePerm {
			return 0, fmt.Errorf("bad mode %q", s)
		}
		return uint32(m), nil
	}
	mode := old
	for _, clause := range strings.Split(s, ",") {
		i := 0
		var who uint32
		for i < len(clause) && strings.IndexByte("ugoa", clause[i]) >= 0 {
			switch clause[i] {
			case 'u':
				who |= 0o4700
			case 'g':
				who |= 0o2070
			case 'o':
				who |= 0o1007
			case 'a':
				who |= 0o7777
			}
			i++
		}
		if who == 0 {
			who = 0o7777
		}
		if i >= len(clause) || strings.IndexByte("+-=", clause[i]) < 0 {
			return 0, fmt.Errorf("mode %q not supported", s)
		}
		op := clause[i]
		var bits uint32
		for _, p := range clause[i+1:] {
			switch p {
			case 'r':
				bits |= 0o444
			case 'w':
				bits |= 0o222
			case 'x':
				bits |= 0o111
			case 'X':
				if old&0o111 != 0 {
					bits |= 0o111
				}
			case 's':
				bits |= 0o6000
			case 't':
				bits |= 0o1000
			default:
				return 0, fmt.Errorf("mode %q not supported", s)
			}
		}
		bits &= who
		switch op {
		case '+':
			mode |= bits
		case '-':
			mode &^= bits
		case '=':
			mode = mode&^(who&0o777) | bits
		}
	}
	return mode, nil
}

func (c *configurator) cmdChmod(inv *invocation, args []string) error {
	var rest []string
	for _, a := range args {
		if a == "-v" || a == "--verbose" || a == "-f" {
			continue
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 && strings.IndexAny(a[1:], "rwxXst") != 0 {
			return fmt.Errorf("option %s not supported", a)
		}
		rest = append(rest, a)
	}
	if len(rest) < 2 {
		return fmt.Errorf("chmod MODE FILE... expected")
	}
	for _, f := range rest[1:] {
		p, err := imagePath(f)
		if err != nil {
			if err == errSkip {
				continue
			}
			return err
		}
		_, e, err := c.t.Resolve(p)
		if err != nil {
			return fmt.Errorf("%s does not exist", p)
		}
		m, err := parseMode(rest[0], e.Mode)
		if err != nil {
			return err
		}
		e.Mode = m
	}
	return nil
}

// cmdChown is chown OWNER[:GROUP] and chgrp GROUP, names resolved in the
// accounts effect 2 wrote.
func (c *configurator) cmdChown(inv *invocation, args []string) error {
	flags, rest, err := shortFlags(args, "hfv", "--no-dereference")
	if err != nil {
		return err
	}
	if len(rest) < 2 {
		return fmt.Errorf("OWNER FILE... expected")
	}
	owner, group := rest[0], ""
	if inv.name() == "chgrp" {
		owner, group = "", rest[0]
	} else if o, g, ok := strings.Cut(owner, ":"); ok {
		owner, group = o, g
	} else if o, g, ok := strings.Cut(owner, "."); ok && c.db.user(owner) == nil {
		owner, group = o, g
	}
	uid, gid := -1, -1
	if owner != "" {
		id, ok := c.db.resolveUser(owner)
		if !ok {
			return fmt.Errorf("no user %s", owner)
		}
		uid = id
	}
	if group != "" {
		id, ok := c.db.resolveGroup(group)
		if !ok {
			return fmt.Errorf("no group %s", group)
		}
		gid = id
	}
	for _, f := range rest[1:] {
		p, err := imagePath(f)
		if err != nil {
			if err == errSkip {
				continue
			}
			return err
		}
		var e *rootfs.Entry
		if flags["h"] || flags["--no-dereference"] {
			if real, err := c.t.ResolveParent(p); err == nil {
				e, _ = c.t.Get(real)
			}
		} else if _, re, err := c.t.Resolve(p); err == nil {
			e = re
		}
		if e == nil {
			return fmt.Errorf("%s does not exist", p)
		}
		if uid >= 0 {
			e.UID = uint32(uid)
		}
		if gid >= 0 {
			e.GID = uint32(gid)
		}
	}
	return nil
}

func (c *configurator) cmdRm(inv *invocation, args []string) error {
	flags, rest, err := shortFlags(args, "fv", "--force")
	if err != nil {
		return err
	}
	for _, f := range rest {
		p, err := imagePath(f)
		if err != nil {
			if err == errSkip {
				continue
			}
			return err
		}
		real, err := c.t.ResolveParent(p)
		if err != nil {
			continue
		}
		e, ok := c.t.Get(real)
		if !ok {
			if !flags["f"] && !flags["--force"] {
				return fmt.Errorf("%s does not exist", p)
			}
			continue
		}
		if e.Type == rootfs.TypeDir {
			return fmt.Errorf("%s is a directory", p)
		}
		c.t.Remove(real)
	}
	return nil
}

func (c *configurator) cmdRmdir(inv *invocation, args []string) error {
	flags, rest, err := shortFlags(args, "pv", "--ignore-fail-on-non-empty")
	if err != nil {
		return err
	}
	if flags["p"] {
		return fmt.Errorf("rmdir -p not supported")
	}
	for _, f := range rest {
		p, err := imagePath(f)
		if err != nil {
			if err == errSkip {
				continue
			}
			return err
		}
		real, err := c.t.ResolveParent(p)
		if err != nil {
			return fmt.Errorf("%s does not exist", p)
		}
		e, ok := c.t.Get(real)
		if !ok || e.Type != rootfs.TypeDir {
			return fmt.Errorf("%s is not a directory", p)
		}
		if len(c.t.Children(real)) > 0 {
			if flags["--ignore-fail-on-non-empty"] {
				continue
			}
			return fmt.Errorf("%s is not empty", p)
		}
		c.t.Remove(real)
	}
	return nil
}

// redirected writes the output of ": > FILE" (base-files' way of creating
// an empty /var/log/wtmp) and "echo TEXT > FILE"; errSkip for any other
// command.
func (c *configurator) redirected(inv *invocation) error {
	w := inv.writes[0]
	args, ok := inv.args()
	name := inv.name()
	if !ok || !w.target.known || (name != ":" && name != "true" && name != "echo") {
		return errSkip
	}
	p, err := imagePath(w.target.s)
	if err != nil {
		if err == errSkip {
			return nil
		}
		return err
	}
	var text string
	if name == "echo" {
		newline := "\n"
		if len(args) > 0 && args[0] == "-n" {
			args, newline = args[1:], ""
		}
		joined := strings.Join(args, " ")
		if strings.Contains(joined, "\\") {
			return fmt.Errorf("echo with backslash escapes is not supported")
		}
		text = joined + newline
	}
	mode := c.defaultMode(0o666, inv)
	var uid, gid uint32
	var old []byte
	target := p
	if real, e, err := c.t.Resolve(p); err == nil {
		// Through a link, to the file it names, keeping its owner and mode.
		if e.Type != rootfs.TypeFile {
			return fmt.Errorf("%s is a %s", p, e.Type)
		}
		mode, uid, gid, target = e.Mode, e.UID, e.GID, real
		if w.appends {
			if old, _, err = c.readFile(p); err != nil {
				return err
			}
		}
	}
	return c.writeFile(target, mode, uid, gid, append(old, text...))
}
