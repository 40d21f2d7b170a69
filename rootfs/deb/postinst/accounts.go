package postinst

import (
	"fmt"
	"strconv"
	"strings"
)

// Effect 2: accounts. In this order:
//
//  1. /etc/passwd and /etc/group are seeded from base-passwd's
//     /usr/share/base-passwd/{passwd,group}.master when base-passwd is
//     installed and the tree has none (its preinst and postinst do that).
//  2. sysusers.d: every *.conf of /etc/sysusers.d, /usr/local/lib/sysusers.d,
//     /usr/lib/sysusers.d and /lib/sysusers.d (a name in an earlier
//     directory hides the same name in a later one), processed as
//     systemd-sysusers 252 does: "g" lines first, then "u" lines, each
//     creating its group; "-" ids are taken from 999 downwards, a user's
//     group sharing its number where free; "m" lines add members; "r"
//     lines restrict the range.
//  3. adduser --system / addgroup --system / useradd / groupadd / usermod
//     -a -G / gpasswd -a calls of the scripts, in install order, for
//     names that do not exist yet: adduser's system ids are the first free
//     from 100 up (FIRST_SYSTEM_UID..LAST_SYSTEM_UID of adduser.conf), a
//     system user without --group gets nogroup; useradd -r and groupadd
//     -r take the highest free id from 999 down, as shadow does.
//
// /etc/shadow and /etc/gshadow get a line for every account, as pwconv and
// grpconv (the passwd package's "shadowconfig on") and the tools above
// write them: base-passwd's accounts keep their "*", sysusers' are "!*",
// adduser/useradd/groupadd ones "!"; the last-change day is the epoch's
// (left empty when that is day 0, which would force a password change).
// passwd and group are 0644, shadow and gshadow 0640 root:shadow when a
// shadow group exists, else 0000, as Debian has them. Lines keep the
// order in which accounts were created, the standard formats keel's own
// account merger reads.

type pwEntry struct {
	name, pw    string
	uid, gid    int
	gecos, home string
	shell       string
}

type grEntry struct {
	name, pw string
	gid      int
	members  []string
}

type acctDB struct {
	users   []*pwEntry
	groups  []*grEntry
	shadow  map[string][]string // fields after the name
	gshadow map[string][]string
	changed bool
	lastchg string
}

func (db *acctDB) user(name string) *pwEntry {
	for _, u := range db.users {
		if u.name == name {
			return u
		}
	}
	return nil
}

func (db *acctDB) userByID(uid int) *pwEntry {
	for _, u := range db.users {
		if u.uid == uid {
			return u
		}
	}
	return nil
}

func (db *acctDB) group(name string) *grEntry {
	for _, g := range db.groups {
		if g.name == name {
			return g
		}
	}
	return nil
}

func (db *acctDB) groupByID(gid int) *grEntry {
	for _, g := range db.groups {
		if g.gid == gid {
			return g
		}
	}
	return nil
}

// addUser appends a user with its shadow line: pw is the shadow password;
// system accounts made by useradd -r and sysusers have no aging fields.
func (db *acctDB) addUser(u *pwEntry, pw string, aging bool) {
	db.users = append(db.users, u)
	if aging {
		db.shadow[u.name] = []string{pw, db.lastchg, "0", "99999", "7", "", "", ""}
	} else {
		db.shadow[u.name] = []string{pw, db.lastchg, "", "", "", "", "", ""}
	}
	db.changed = true
}

func (db *acctDB) addGroup(g *grEntry, pw string) {
	db.groups = append(db.groups, g)
	db.gshadow[g.name] = []string{pw, "", strings.Join(g.members, ",")}
	db.changed = true
}

func (db *acctDB) addMember(group, user string) bool {
	g := db.group(group)
	if g == nil {
		return false
	}
	for _, m := range g.members {
		if m == user {
			return true
		}
	}
	g.members = append(g.members, user)
	if gs, ok := db.gshadow[g.name]; ok && len(gs) == 3 {
		gs[2] = strings.Join(g.members, ",")
	}
	db.changed = true
	return true
}

// uidFree and gidFree are systemd-sysusers' uid_is_ok/gid_is_ok: a number
// is free when no account has it, and, when checking both kinds, no
// account of the other kind with a different name has it either.
func (db *acctDB) uidFree(uid int, name string, checkGroups bool) bool {
	if db.userByID(uid) != nil {
		return false
	}
	if g := db.groupByID(uid); checkGroups && g != nil && g.name != name {
		return false
	}
	return true
}

func (db *acctDB) gidFree(gid int, name string, checkUsers bool) bool {
	if db.groupByID(gid) != nil {
		return false
	}
	if u := db.userByID(gid); checkUsers && u != nil && u.name != name {
		return false
	}
	return true
}

// resolveUser and resolveGroup turn a name or number ("#0" as
// dpkg-statoverride writes it) into an id.
func (db *acctDB) resolveUser(s string) (int, bool) {
	s = strings.TrimPrefix(s, "#")
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return n, true
	}
	if u := db.user(s); u != nil {
		return u.uid, true
	}
	return 0, false
}

func (db *acctDB) resolveGroup(s string) (int, bool) {
	s = strings.TrimPrefix(s, "#")
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return n, true
	}
	if g := db.group(s); g != nil {
		return g.gid, true
	}
	return 0, false
}

func (c *configurator) accounts() error {
	db := &acctDB{shadow: map[string][]string{}, gshadow: map[string][]string{}}
	if day := c.opts.Epoch / 86400; day > 0 {
		db.lastchg = strconv.FormatInt(day, 10)
	}
	c.db = db
	present, err := c.loadAccounts(db)
	if err != nil {
		return err
	}
	if _, ok := c.byName["base-passwd"]; ok {
		seeded, err := c.seedBasePasswd(db, present)
		if err != nil {
			return err
		}
		present = present || seeded
	}
	if err := c.sysusers(db); err != nil {
		return err
	}
	c.scriptAccounts(db)
	for _, inv := range c.invocationsOf("systemd-sysusers") {
		inv.handled = true
	}
	if !present && !db.changed {
		return nil
	}
	return c.writeAccounts(db)
}

// loadAccounts reads the account files a tree already has.
func (c *configurator) loadAccounts(db *acctDB) (bool, error) {
	pw, ok, err := c.readFile("/etc/passwd")
	if err != nil || !ok {
		return false, err
	}
	parsePasswd(db, string(pw))
	if gr, ok, err := c.readFile("/etc/group"); err != nil {
		return false, err
	} else if ok {
		parseGroup(db, string(gr))
	}
	for _, f := range []struct {
		path string
		into map[string][]string
		n    int
	}{{"/etc/shadow", db.shadow, 8}, {"/etc/gshadow", db.gshadow, 3}} {
		b, ok, err := c.readFile(f.path)
		if err != nil {
			return false, err
		}
		if !ok {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			fs := strings.Split(line, ":")
			if len(fs) < 2 || fs[0] == "" {
				continue
			}
			rest := fs[1:]
			for len(rest) < f.n {
				rest = append(rest, "")
			}
			f.into[fs[0]] = rest[:f.n]
		}
	}
	return true, nil
}

func parsePasswd(db *acctDB, text string) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Split(line, ":")
		if len(f) != 7 || f[0] == "" || strings.HasPrefix(line, "#") || db.user(f[0]) != nil {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		db.users = append(db.users, &pwEntry{name: f[0], pw: f[1], uid: uid, gid: gid, gecos: f[4], home: f[5], shell: f[6]})
	}
}

func parseGroup(db *acctDB, text string) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Split(line, ":")
		if len(f) != 4 || f[0] == "" || strings.HasPrefix(line, "#") || db.group(f[0]) != nil {
			continue
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		var members []string
		if f[3] != "" {
			members = strings.Split(f[3], ",")
		}
		db.groups = append(db.groups, &grEntry{name: f[0], pw: f[1], gid: gid, members: members})
	}
}

// seedBasePasswd stands for base-passwd's preinst and postinst ("cp
// /usr/share/base-passwd/passwd.master /etc/passwd" when there is none).
func (c *configurator) seedBasePasswd(db *acctDB, present bool) (bool, error) {
	seeded := false
	if !present {
		b, ok, err := c.readFile("/usr/share/base-passwd/passwd.master")
		if err != nil {
			return false, err
		}
		if ok {
			parsePasswd(db, string(b))
			seeded = true
		}
	}
	if !c.exists("/etc/group") && len(db.groups) == 0 {
		b, ok, err := c.readFile("/usr/share/base-passwd/group.master")
		if err != nil {
			return false, err
		}
		if ok {
			parseGroup(db, string(b))
			seeded = true
		}
	}
	if seeded {
		db.changed = true
		c.applied("base-passwd: /etc/passwd and /etc/group from /usr/share/base-passwd/*.master")
	}
	return seeded, nil
}

// cover marks commands of a package's scripts as stood for by keel.
func (c *configurator) cover(pkg string, cmds ...string) {
	m := c.covered[pkg]
	if m == nil {
		m = map[string]bool{}
		c.covered[pkg] = m
	}
	for _, cmd := range cmds {
		m[cmd] = true
	}
}

func (c *configurator) writeAccounts(db *acctDB) error {
	var passwd, group, shadow, gshadow strings.Builder
	for _, u := range db.users {
		// pwconv: a password in passwd moves to shadow.
		sh, ok := db.shadow[u.name]
		if !ok {
			pw := u.pw
			if pw == "x" || pw == "" {
				pw = "!"
			}
			sh = []string{pw, db.lastchg, "0", "99999", "7", "", "", ""}
		}
		fmt.Fprintf(&passwd, "%s:x:%d:%d:%s:%s:%s\n", u.name, u.uid, u.gid, u.gecos, u.home, u.shell)
		shadow.WriteString(u.name + ":" + strings.Join(sh, ":") + "\n")
	}
	for _, g := range db.groups {
		gs, ok := db.gshadow[g.name]
		if !ok {
			pw := g.pw
			if pw == "x" || pw == "" {
				pw = "!"
			}
			gs = []string{pw, "", strings.Join(g.members, ",")}
		}
		fmt.Fprintf(&group, "%s:x:%d:%s\n", g.name, g.gid, strings.Join(g.members, ","))
		gshadow.WriteString(g.name + ":" + strings.Join(gs, ":") + "\n")
	}
	mode, gid := uint32(0), uint32(0)
	if g := db.group("shadow"); g != nil {
		mode, gid = 0o640, uint32(g.gid)
	}
	for _, f := range []struct {
		path      string
		b         string
		mode, gid uint32
	}{
		{"/etc/passwd", passwd.String(), 0o644, 0},
		{"/etc/group", group.String(), 0o644, 0},
		{"/etc/shadow", shadow.String(), mode, gid},
		{"/etc/gshadow", gshadow.String(), mode, gid},
	} {
		if err := c.writeFile(f.path, f.mode, 0, f.gid, []byte(f.b)); err != nil {
			return err
		}
	}
	return nil
}
