package postinst

import (
	"fmt"
	"strings"
)

// The account commands of maintainer scripts: adduser/addgroup (Debian's
// adduser 3.134), useradd/groupadd/usermod/gpasswd (shadow 4.13). Only
// what a package does at install time is supported: system accounts,
// system groups and group membership.

// adduser.conf's defaults.
const (
	firstSystemID = 100
	lastSystemID  = 999
	firstID       = 1000
	lastID        = 59999
	// shadow's SYS_UID_MIN default for useradd -r / groupadd -r.
	shadowSysMin = 101
)

func (c *configurator) scriptAccounts(db *acctDB) {
	for _, inv := range c.invs {
		var err error
		switch inv.name() {
		case "adduser", "addgroup":
			err = c.adduser(db, inv)
		case "useradd":
			err = c.useradd(db, inv)
		case "groupadd":
			err = c.groupadd(db, inv)
		case "usermod":
			err = c.usermod(db, inv)
		case "gpasswd":
			err = c.gpasswd(db, inv)
		default:
			continue
		}
		inv.handled = true
		if err != nil {
			c.warn("%s: %s: %v; not run", inv.where(), inv.text(), err)
		}
	}
}

// getopt parses command-line options: "--name", "--name=value", "-x",
// "-xVALUE", "-abc". long maps option names (without dashes, short ones
// as single letters) to whether they take a value; short letters are
// mapped to long names by alias.
func getopt(args []string, long map[string]bool, alias map[string]string) (map[string]string, []string, error) {
	opts := map[string]string{}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return opts, append(pos, args[i+1:]...), nil
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			takes, ok := long[name]
			if !ok {
				return nil, nil, fmt.Errorf("option --%s not supported", name)
			}
			if takes && !hasVal {
				if i+1 >= len(args) {
					return nil, nil, fmt.Errorf("option --%s needs a value", name)
				}
				i++
				val = args[i]
			}
			opts[name] = val
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for j := 1; j < len(a); j++ {
				name, ok := alias[a[j:j+1]]
				if !ok {
					return nil, nil, fmt.Errorf("option -%c not supported", a[j])
				}
				if long[name] {
					val := a[j+1:]
					if val == "" {
						if i+1 >= len(args) {
							return nil, nil, fmt.Errorf("option -%c needs a value", a[j])
						}
						i++
						val = args[i]
					}
					opts[name] = val
					break
				}
				opts[name] = ""
			}
		default:
			pos = append(pos, a)
		}
	}
	return opts, pos, nil
}

var adduserOpts = map[string]bool{
	"system": false, "group": false, "quiet": false, "debug": false, "verbose": false,
	"disabled-password": false, "disabled-login": false, "no-create-home": false,
	"force-badname": false, "allow-badname": false, "allow-bad-names": false,
	"add_extra_groups": false, "add-extra-groups": false,
	"home": true, "shell": true, "ingroup": true, "gid": true, "uid": true,
	"gecos": true, "comment": true, "firstuid": true, "lastuid": true, "firstgid": true, "lastgid": true,
	"conf": true,
}

var adduserShort = map[string]string{"q": "quiet", "d": "debug", "c": "conf"}

func (c *configurator) adduser(db *acctDB, inv *invocation) error {
	args, ok := inv.args()
	if !ok {
		return fmt.Errorf("arguments not known at build time")
	}
	opts, pos, err := getopt(args, adduserOpts, adduserShort)
	if err != nil {
		return err
	}
	_, system := opts["system"]
	_, group := opts["group"]
	if inv.name() == "addgroup" {
		group = true
		if len(pos) == 1 {
			return c.addGroupCmd(db, inv, pos[0], opts, system)
		}
	}
	switch {
	case len(pos) == 2 && !system && !group:
		// "adduser USER GROUP": membership.
		if db.user(pos[0]) == nil || db.group(pos[1]) == nil {
			return fmt.Errorf("no user %s or group %s", pos[0], pos[1])
		}
		db.addMember(pos[1], pos[0])
		return nil
	case len(pos) != 1:
		return fmt.Errorf("expected one name, got %q", pos)
	case group && !system:
		return c.addGroupCmd(db, inv, pos[0], opts, false)
	case !system:
		return fmt.Errorf("creating a non-system user is not supported at build time")
	}
	name := pos[0]
	if !validAccount(name) {
		return fmt.Errorf("bad user name %q", name)
	}
	if db.user(name) != nil {
		return nil
	}
	uidLo, uidHi, err := rangeOpts(opts, "firstuid", "lastuid", firstSystemID, lastSystemID)
	if err != nil {
		return err
	}
	gidLo, gidHi, err := rangeOpts(opts, "firstgid", "lastgid", firstSystemID, lastSystemID)
	if err != nil {
		return err
	}
	uid := -1
	if s, ok := opts["uid"]; ok {
		if uid, err = parseID(s); err != nil {
			return err
		}
		if db.userByID(uid) != nil {
			return fmt.Errorf("uid %d is in use", uid)
		}
	} else if uid = firstFree(db.userByID, uidLo, uidHi); uid < 0 {
		return fmt.Errorf("no free uid in %d-%d", uidLo, uidHi)
	}
	var gid int
	newGroup := ""
	switch {
	case opts["gid"] != "":
		if gid, err = parseID(opts["gid"]); err != nil {
			return err
		}
	case opts["ingroup"] != "":
		g := db.group(opts["ingroup"])
		if g == nil {
			return fmt.Errorf("group %s does not exist", opts["ingroup"])
		}
		gid = g.gid
	case group:
		if g := db.group(name); g != nil {
			gid = g.gid
		} else if gid = firstFree(db.groupByID, gidLo, gidHi); gid < 0 {
			return fmt.Errorf("no free gid in %d-%d", gidLo, gidHi)
		} else {
			newGroup = name
		}
	default:
		gid = 65534
		if g := db.group("nogroup"); g != nil {
			gid = g.gid
		}
	}
	home := firstNonEmpty(opts["home"], "/nonexistent")
	shell := firstNonEmpty(opts["shell"], "/usr/sbin/nologin")
	gecos := firstNonEmpty(opts["gecos"], opts["comment"])
	if strings.ContainsAny(home+shell+gecos, ":\n") {
		return fmt.Errorf("a field contains ':' or a newline")
	}
	if newGroup != "" {
		db.addGroup(&grEntry{name: newGroup, pw: "x", gid: gid}, "!")
		c.rep.Groups = append(c.rep.Groups, fmt.Sprintf("%s (gid %d, %s)", newGroup, gid, inv.pkg.Name))
	}
	db.addUser(&pwEntry{name: name, pw: "x", uid: uid, gid: gid, gecos: gecos, home: home, shell: shell}, "!", false)
	c.rep.Users = append(c.rep.Users, fmt.Sprintf("%s (uid %d, %s)", name, uid, inv.pkg.Name))
	return nil
}

func (c *configurator) addGroupCmd(db *acctDB, inv *invocation, name string, opts map[string]string, system bool) error {
	if !validAccount(name) {
		return fmt.Errorf("bad group name %q", name)
	}
	if db.group(name) != nil {
		return nil
	}
	lo, hi := firstID, lastID
	if system {
		lo, hi = firstSystemID, lastSystemID
	}
	lo, hi, err := rangeOpts(opts, "firstgid", "lastgid", lo, hi)
	if err != nil {
		return err
	}
	gid := -1
	if s, ok := opts["gid"]; ok {
		if gid, err = parseID(s); err != nil {
			return err
		}
		if db.groupByID(gid) != nil {
			return fmt.Errorf("gid %d is in use", gid)
		}
	} else if gid = firstFree(db.groupByID, lo, hi); gid < 0 {
		return fmt.Errorf("no free gid in %d-%d", lo, hi)
	}
	db.addGroup(&grEntry{name: name, pw: "x", gid: gid}, "!")
	c.rep.Groups = append(c.rep.Groups, fmt.Sprintf("%s (gid %d, %s)", name, gid, inv.pkg.Name))
	return nil
}

var useraddOpts = map[string]bool{
	"system": false, "uid": true, "gid": true, "groups": true, "home-dir": true, "shell": true,
	"comment": true, "create-home": false, "no-create-home": false, "user-group": false,
	"no-user-group": false, "non-unique": false, "key": true, "password": true, "no-log-init": false,
	"inactive": true, "expiredate": true, "skel": true, "base-dir": true,
}

var useraddShort = map[string]string{
	"r": "system", "u": "uid", "g": "gid", "G": "groups", "d": "home-dir", "s": "shell", "c": "comment",
	"m": "create-home", "M": "no-create-home", "U": "user-group", "N": "no-user-group", "o": "non-unique",
	"K": "key", "p": "password", "l": "no-log-init", "f": "inactive", "e": "expiredate", "k": "skel", "b": "base-dir",
}

func (c *configurator) useradd(db *acctDB, inv *invocation) error {
	args, ok := inv.args()
	if !ok {
		return fmt.Errorf("arguments not known at build time")
	}
	opts, pos, err := getopt(args, useraddOpts, useraddShort)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("expected one name, got %q", pos)
	}
	name := pos[0]
	if !validAccount(name) {
		return fmt.Errorf("bad user name %q", name)
	}
	if db.user(name) != nil {
		return fmt.Errorf("user %s exists", name)
	}
	_, system := opts["system"]
	uid := -1
	if s, ok := opts["uid"]; ok {
		if uid, err = parseID(s); err != nil {
			return err
		}
	} else if system {
		uid = highestFree(db.userByID, shadowSysMin, lastSystemID)
	} else {
		uid = firstFree(db.userByID, firstID, lastID)
	}
	if uid < 0 {
		return fmt.Errorf("no free uid")
	}
	gid := -1
	newGroup := ""
	_, noUserGroup := opts["no-user-group"]
	switch {
	case opts["gid"] != "":
		var ok bool
		if gid, ok = db.resolveGroup(opts["gid"]); !ok {
			return fmt.Errorf("group %s does not exist", opts["gid"])
		}
	case noUserGroup:
		gid = 100
		if g := db.group("users"); g != nil {
			gid = g.gid
		}
	default:
		// USERGROUPS_ENAB (Debian's login.defs): a group of the user's name,
		// with the uid's number when free.
		if db.group(name) != nil {
			return fmt.Errorf("group %s exists; use -g", name)
		}
		switch {
		case db.groupByID(uid) == nil:
			gid = uid
		case system:
			gid = highestFree(db.groupByID, shadowSysMin, lastSystemID)
		default:
			gid = firstFree(db.groupByID, firstID, lastID)
		}
		if gid < 0 {
			return fmt.Errorf("no free gid")
		}
		newGroup = name
	}
	home := firstNonEmpty(opts["home-dir"], firstNonEmpty(opts["base-dir"], "/home")+"/"+name)
	shell := firstNonEmpty(opts["shell"], "/bin/sh")
	pw := firstNonEmpty(opts["password"], "!")
	if strings.ContainsAny(home+shell+opts["comment"]+pw, ":\n") {
		return fmt.Errorf("a field contains ':' or a newline")
	}
	var groups []string
	if g := opts["groups"]; g != "" {
		groups = strings.Split(g, ",")
		for _, gr := range groups {
			if db.group(gr) == nil {
				return fmt.Errorf("group %s does not exist", gr)
			}
		}
	}
	if newGroup != "" {
		db.addGroup(&grEntry{name: newGroup, pw: "x", gid: gid}, "!")
		c.rep.Groups = append(c.rep.Groups, fmt.Sprintf("%s (gid %d, %s)", newGroup, gid, inv.pkg.Name))
	}
	db.addUser(&pwEntry{name: name, pw: "x", uid: uid, gid: gid, gecos: opts["comment"], home: home, shell: shell}, pw, !system)
	for _, gr := range groups {
		db.addMember(gr, name)
	}
	c.rep.Users = append(c.rep.Users, fmt.Sprintf("%s (uid %d, %s)", name, uid, inv.pkg.Name))
	return nil
}

var groupaddOpts = map[string]bool{
	"system": false, "gid": true, "force": false, "key": true, "non-unique": false, "password": true, "users": true,
}

var groupaddShort = map[string]string{"r": "system", "g": "gid", "f": "force", "K": "key", "o": "non-unique", "p": "password", "U": "users"}

func (c *configurator) groupadd(db *acctDB, inv *invocation) error {
	args, ok := inv.args()
	if !ok {
		return fmt.Errorf("arguments not known at build time")
	}
	opts, pos, err := getopt(args, groupaddOpts, groupaddShort)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("expected one name, got %q", pos)
	}
	name := pos[0]
	if !validAccount(name) {
		return fmt.Errorf("bad group name %q", name)
	}
	if db.group(name) != nil {
		return nil // -f succeeds; without it the script would have failed on a real system too
	}
	_, system := opts["system"]
	_, force := opts["force"]
	gid := -1
	if s, ok := opts["gid"]; ok {
		if gid, err = parseID(s); err != nil {
			return err
		}
		if db.groupByID(gid) != nil {
			if !force {
				return fmt.Errorf("gid %d is in use", gid)
			}
			gid = -1
		}
	}
	if gid < 0 {
		if system {
			gid = highestFree(db.groupByID, shadowSysMin, lastSystemID)
		} else {
			gid = firstFree(db.groupByID, firstID, lastID)
		}
	}
	if gid < 0 {
		return fmt.Errorf("no free gid")
	}
	pw := firstNonEmpty(opts["password"], "!")
	g := &grEntry{name: name, pw: "x", gid: gid}
	if u := opts["users"]; u != "" {
		g.members = strings.Split(u, ",")
	}
	db.addGroup(g, pw)
	c.rep.Groups = append(c.rep.Groups, fmt.Sprintf("%s (gid %d, %s)", name, gid, inv.pkg.Name))
	return nil
}

// usermod: only "-a -G GROUPS USER".
func (c *configurator) usermod(db *acctDB, inv *invocation) error {
	args, ok := inv.args()
	if !ok {
		return fmt.Errorf("arguments not known at build time")
	}
	opts, pos, err := getopt(args, map[string]bool{"append": false, "groups": true}, map[string]string{"a": "append", "G": "groups"})
	if err != nil {
		return err
	}
	if _, app := opts["append"]; !app || opts["groups"] == "" || len(pos) != 1 {
		return fmt.Errorf("only usermod -a -G GROUPS USER is supported")
	}
	if db.user(pos[0]) == nil {
		return fmt.Errorf("no user %s", pos[0])
	}
	for _, g := range strings.Split(opts["groups"], ",") {
		if !db.addMember(g, pos[0]) {
			return fmt.Errorf("no group %s", g)
		}
	}
	return nil
}

// gpasswd: only "-a USER GROUP".
func (c *configurator) gpasswd(db *acctDB, inv *invocation) error {
	args, ok := inv.args()
	if !ok {
		return fmt.Errorf("arguments not known at build time")
	}
	if len(args) != 3 || (args[0] != "-a" && args[0] != "--add") {
		return fmt.Errorf("only gpasswd -a USER GROUP is supported")
	}
	if db.user(args[1]) == nil || !db.addMember(args[2], args[1]) {
		return fmt.Errorf("no user %s or group %s", args[1], args[2])
	}
	return nil
}

func rangeOpts(opts map[string]string, loName, hiName string, lo, hi int) (int, int, error) {
	var err error
	if s, ok := opts[loName]; ok {
		if lo, err = parseID(s); err != nil {
			return 0, 0, err
		}
	}
	if s, ok := opts[hiName]; ok {
		if hi, err = parseID(s); err != nil {
			return 0, 0, err
		}
	}
	return lo, hi, nil
}

func firstFree[T any](used func(int) *T, lo, hi int) int {
	for id := lo; id <= hi; id++ {
		if used(id) == nil {
			return id
		}
	}
	return -1
}

func highestFree[T any](used func(int) *T, lo, hi int) int {
	for id := hi; id >= lo; id-- {
		if used(id) == nil {
			return id
		}
	}
	return -1
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
