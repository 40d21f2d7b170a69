package postinst

// What the evaluator knows of a command's exit status: test(1), dpkg
// --compare-versions, deb-systemd-helper's questions on a fresh install,
// and file tests answered by the tree.

import (
	"path"
	"strconv"
	"strings"

	"pault.ag/go/debian/version"

	"keel/rootfs"
)

// status is the exit status of a command that ran, where it can be
// known: the test builtin, dpkg --compare-versions, deb-systemd-helper's
// questions about a fresh install; commands whose effects keel applies
// are taken to succeed (under set -e a failure would have stopped dpkg).
func (ev *evaluator) status(inv *invocation) tri {
	args, allKnown := inv.args()
	switch inv.name() {
	case "true", ":":
		return stTrue
	case "false":
		return stFalse
	case "test", "[":
		if !allKnown {
			return stUnknown
		}
		if inv.name() == "[" {
			if len(args) == 0 || args[len(args)-1] != "]" {
				return stUnknown
			}
			args = args[:len(args)-1]
		}
		return ev.test(args)
	case "dpkg":
		if allKnown && len(args) == 4 && args[0] == "--compare-versions" {
			return compareVersions(args[1], args[2], args[3])
		}
		return stUnknown
	case "systemctl":
		verb, _, _ := systemctlArgs(args)
		switch verb {
		case "enable", "disable", "preset", "mask", "unmask", "daemon-reload", "daemon-reexec",
			"start", "stop", "restart", "try-restart", "reload", "reload-or-restart":
			if allKnown {
				return stTrue
			}
		}
		return stUnknown
	case "deb-systemd-helper":
		verb, _ := dshVerb(args)
		switch verb {
		case "debian-installed":
			return stFalse // no state file yet: the package was never installed
		case "was-enabled":
			return stTrue // defaults to true on a fresh install
		case "enable", "unmask", "update-state", "purge", "disable", "mask", "reenable":
			return stTrue
		}
		return stUnknown
	}
	if allKnown && succeeds[inv.name()] {
		return stTrue
	}
	return stUnknown
}

// succeeds are the commands keel applies or deliberately skips; scripts
// testing them ("cmd || true") see them succeed.
var succeeds = map[string]bool{
	"mkdir": true, "touch": true, "ln": true, "cp": true, "chmod": true, "chown": true, "chgrp": true,
	"rm": true, "rmdir": true, "update-alternatives": true, "adduser": true, "addgroup": true,
	"useradd": true, "groupadd": true, "usermod": true, "gpasswd": true, "pam-auth-update": true,
	"systemd-sysusers": true, "dpkg-maintscript-helper": true, "update-rc.d": true,
	"deb-systemd-invoke": true, "invoke-rc.d": true, "echo": true, "printf": true,
}

func dshVerb(args []string) (string, []string) {
	for i, a := range args {
		if !strings.HasPrefix(a, "-") {
			return a, args[i+1:]
		}
	}
	return "", nil
}

// compareVersions is dpkg --compare-versions: an empty version is earlier
// than any other, except for the -nl operators, where it is later.
func compareVersions(a, op, b string) tri {
	cmp := func() (int, bool) {
		switch {
		case a == "" && b == "":
			return 0, true
		case a == "" || b == "":
			lesser := -1
			if strings.HasSuffix(op, "-nl") {
				lesser = 1
			}
			if a == "" {
				return lesser, true
			}
			return -lesser, true
		}
		va, err1 := version.Parse(a)
		vb, err2 := version.Parse(b)
		if err1 != nil || err2 != nil {
			return 0, false
		}
		return version.Compare(va, vb), true
	}
	c, ok := cmp()
	if !ok {
		return stUnknown
	}
	switch strings.TrimSuffix(op, "-nl") {
	case "lt", "<<", "<":
		return triOf(c < 0)
	case "le", "<=":
		return triOf(c <= 0)
	case "eq", "=":
		return triOf(c == 0)
	case "ne":
		return triOf(c != 0)
	case "ge", ">=":
		return triOf(c >= 0)
	case "gt", ">>", ">":
		return triOf(c > 0)
	}
	return stUnknown
}

// test evaluates the arguments of test(1).
func (ev *evaluator) test(args []string) tri {
	tp := &testParser{ev: ev, args: args}
	r := tp.or()
	if tp.i != len(args) {
		return stUnknown
	}
	return r
}

type testParser struct {
	ev   *evaluator
	args []string
	i    int
}

func (tp *testParser) peek(n int) (string, bool) {
	if tp.i+n < len(tp.args) {
		return tp.args[tp.i+n], true
	}
	return "", false
}

func (tp *testParser) or() tri {
	r := tp.and()
	for {
		if a, ok := tp.peek(0); !ok || a != "-o" {
			return r
		}
		tp.i++
		r2 := tp.and()
		switch {
		case r == stTrue || r2 == stTrue:
			r = stTrue
		case r == stFalse && r2 == stFalse:
			r = stFalse
		default:
			r = stUnknown
		}
	}
}

func (tp *testParser) and() tri {
	r := tp.not()
	for {
		if a, ok := tp.peek(0); !ok || a != "-a" {
			return r
		}
		tp.i++
		r2 := tp.not()
		switch {
		case r == stFalse || r2 == stFalse:
			r = stFalse
		case r == stTrue && r2 == stTrue:
			r = stTrue
		default:
			r = stUnknown
		}
	}
}

func (tp *testParser) not() tri {
	if a, ok := tp.peek(0); ok && a == "!" {
		if _, more := tp.peek(1); more {
			tp.i++
			return tp.not().not()
		}
	}
	return tp.primary()
}

var unaryTests = map[string]bool{
	"-z": true, "-n": true, "-e": true, "-f": true, "-d": true, "-L": true, "-h": true, "-x": true,
	"-r": true, "-w": true, "-s": true, "-S": true, "-b": true, "-c": true, "-p": true, "-g": true,
	"-u": true, "-k": true, "-t": true, "-O": true, "-G": true,
}

func (tp *testParser) primary() tri {
	a, ok := tp.peek(0)
	if !ok {
		return stFalse
	}
	if op, ok := tp.peek(1); ok && isBinaryTest(op) {
		if b, ok := tp.peek(2); ok {
			tp.i += 3
			return binaryTest(a, op, b)
		}
	}
	if a == "(" {
		tp.i++
		r := tp.or()
		if c, ok := tp.peek(0); ok && c == ")" {
			tp.i++
			return r
		}
		return stUnknown
	}
	if unaryTests[a] {
		if b, ok := tp.peek(1); ok {
			tp.i += 2
			switch a {
			case "-z":
				return triOf(b == "")
			case "-n":
				return triOf(b != "")
			case "-t":
				return stFalse
			}
			return tp.ev.fileTest(a, b)
		}
	}
	tp.i++
	return triOf(a != "")
}

func isBinaryTest(op string) bool {
	switch op {
	case "=", "==", "!=", "<", ">", "-eq", "-ne", "-lt", "-le", "-gt", "-ge", "-nt", "-ot", "-ef":
		return true
	}
	return false
}

func binaryTest(a, op, b string) tri {
	switch op {
	case "=", "==":
		return triOf(a == b)
	case "!=":
		return triOf(a != b)
	case "<":
		return triOf(a < b)
	case ">":
		return triOf(a > b)
	case "-eq", "-ne", "-lt", "-le", "-gt", "-ge":
		x, err1 := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
		y, err2 := strconv.ParseInt(strings.TrimSpace(b), 10, 64)
		if err1 != nil || err2 != nil {
			return stUnknown
		}
		switch op {
		case "-eq":
			return triOf(x == y)
		case "-ne":
			return triOf(x != y)
		case "-lt":
			return triOf(x < y)
		case "-le":
			return triOf(x <= y)
		case "-gt":
			return triOf(x > y)
		default:
			return triOf(x >= y)
		}
	}
	return stUnknown
}

// fileTest answers test's file operators from the tree, which holds what
// dpkg unpacked. /run is empty at build time (no systemd is running, so
// [ -d /run/systemd/system ] is false); /proc, /sys and /dev are not
// known.
func (ev *evaluator) fileTest(op, p string) tri {
	if !path.IsAbs(p) {
		return stUnknown
	}
	p = rootfs.Clean(p)
	for _, dir := range []string{"/proc", "/sys", "/dev"} {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			return stUnknown
		}
	}
	if p == "/run" || strings.HasPrefix(p, "/run/") {
		return triOf(p == "/run" && (op == "-e" || op == "-d"))
	}
	if op == "-L" || op == "-h" {
		real, err := ev.tree.ResolveParent(p)
		if err != nil {
			return stFalse
		}
		e, ok := ev.tree.Get(real)
		return triOf(ok && e.Type == rootfs.TypeSymlink)
	}
	_, e, err := ev.tree.Resolve(p)
	if err != nil {
		return stFalse
	}
	switch op {
	case "-e", "-r", "-w":
		return stTrue
	case "-f":
		return triOf(e.Type == rootfs.TypeFile)
	case "-d":
		return triOf(e.Type == rootfs.TypeDir)
	case "-x":
		return triOf(e.Type == rootfs.TypeDir || e.Mode&0o111 != 0)
	case "-s":
		return triOf(e.Type != rootfs.TypeFile || e.Size > 0)
	case "-S":
		return triOf(e.Type == rootfs.TypeSocket)
	case "-b":
		return triOf(e.Type == rootfs.TypeBlockDev)
	case "-c":
		return triOf(e.Type == rootfs.TypeCharDev)
	case "-p":
		return triOf(e.Type == rootfs.TypeFifo)
	case "-u":
		return triOf(e.Mode&0o4000 != 0)
	case "-g":
		return triOf(e.Mode&0o2000 != 0)
	case "-k":
		return triOf(e.Mode&0o1000 != 0)
	}
	return stUnknown
}
