package postinst

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"keel/rootfs"
)

// sysusersPath is systemd 252's search path for sysusers.d on Debian 12
// (runtime directory left out), in precedence order.
var sysusersPath = []string{"/etc/sysusers.d", "/usr/local/lib/sysusers.d", "/usr/lib/sysusers.d", "/lib/sysusers.d"}

// systemUIDMax is the top of the system id range systemd-sysusers
// allocates from, downwards.
const systemUIDMax = 999

type sysItem struct {
	name               string
	uid, gid           int
	uidSet, gidSet     bool
	groupName          string // "u name uid:group"
	gecos, home, shell string
	strict             bool // the group was named: it must exist
	created            bool // a group this run created
	source             string
}

type sysusersRun struct {
	c           *configurator
	db          *acctDB
	groups      []*sysItem
	users       []*sysItem
	members     map[string][]string // group → users
	memberOrder []string
	ranges      [][2]int
	cursor      int // the allocation cursor: ids are taken below it
}

func (c *configurator) sysusers(db *acctDB) error {
	files, err := c.sysusersFiles()
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return nil
	}
	r := &sysusersRun{c: c, db: db, members: map[string][]string{}, cursor: -1}
	for _, f := range files {
		b, ok, err := c.readFile(f)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		for i, line := range strings.Split(string(b), "\n") {
			if err := r.parseLine(line, fmt.Sprintf("%s:%d", f, i+1)); err != nil {
				c.warn("sysusers: %s:%d: %v; line ignored", f, i+1, err)
			}
		}
	}
	r.implicit()
	if len(r.ranges) == 0 {
		r.ranges = [][2]int{{1, systemUIDMax}}
	}
	for _, g := range r.groups {
		if err := r.addGroup(g); err != nil {
			c.warn("sysusers: %s: group %s: %v", g.source, g.name, err)
		}
	}
	for _, u := range r.users {
		if err := r.addUser(u); err != nil {
			c.warn("sysusers: %s: user %s: %v", u.source, u.name, err)
		}
	}
	for _, g := range r.memberOrder {
		for _, u := range r.members[g] {
			if !db.addMember(g, u) {
				c.warn("sysusers: m %s %s: no group %s", u, g, g)
			}
		}
	}
	return nil
}

// sysusersFiles lists the configuration files in the order systemd reads
// them: by file name, the first directory of sysusersPath winning. A file
// linked to /dev/null masks the name.
func (c *configurator) sysusersFiles() ([]string, error) {
	byName := map[string]string{}
	for _, dir := range sysusersPath {
		real, e, err := c.t.Resolve(dir)
		if err != nil || e.Type != rootfs.TypeDir {
			continue
		}
		for _, name := range c.t.Children(real) {
			if !strings.HasSuffix(name, ".conf") {
				continue
			}
			if _, ok := byName[name]; !ok {
				byName[name] = path.Join(dir, name)
			}
		}
	}
	names := sortedKeys(byName)
	var out []string
	for _, n := range names {
		p := byName[n]
		if real, err := c.t.ResolveParent(p); err == nil {
			if e, ok := c.t.Get(real); ok && e.Type == rootfs.TypeSymlink && rootfs.Clean(e.Target) == "/dev/null" {
				continue
			}
		}
		out = append(out, p)
	}
	return out, nil
}

func (r *sysusersRun) parseLine(line, source string) error {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return nil
	}
	f, err := splitQuoted(line)
	if err != nil {
		return err
	}
	for len(f) < 6 {
		f = append(f, "-")
	}
	typ, name, id := f[0], f[1], f[2]
	opt := func(s string) string {
		if s == "-" {
			return ""
		}
		return s
	}
	if strings.Contains(strings.Join(f[1:], " "), "%") {
		return errors.New("specifiers are not supported")
	}
	for _, field := range []string{f[1], f[3], f[4], f[5]} {
		if strings.ContainsAny(field, ":\n") {
			return fmt.Errorf("%q: a field may not contain ':'", field)
		}
	}
	switch typ {
	case "g":
		if !validAccount(name) {
			return fmt.Errorf("bad group name %q", name)
		}
		it := &sysItem{name: name, source: source}
		if id != "-" {
			n, err := parseID(id)
			if err != nil {
				return err
			}
			it.gid, it.gidSet = n, true
		}
		for _, g := range r.groups {
			if g.name == name {
				return nil // the first definition wins
			}
		}
		r.groups = append(r.groups, it)
	case "u":
		if !validAccount(name) {
			return fmt.Errorf("bad user name %q", name)
		}
		it := &sysItem{name: name, gecos: opt(f[3]), home: opt(f[4]), shell: opt(f[5]), source: source}
		if id != "-" {
			uidPart, gidPart, hasGID := strings.Cut(id, ":")
			if strings.HasPrefix(uidPart, "/") {
				r.c.warn("sysusers: %s: ids taken from files are not supported; %s gets a free one", source, name)
			} else {
				n, err := parseID(uidPart)
				if err != nil {
					return err
				}
				it.uid, it.uidSet = n, true
			}
			if hasGID {
				if n, err := parseID(gidPart); err == nil {
					// A number must name an existing group.
					it.gid, it.gidSet, it.strict = n, true, true
				} else if validAccount(gidPart) {
					it.groupName = gidPart
				} else {
					return fmt.Errorf("bad group %q", gidPart)
				}
			}
		}
		for _, u := range r.users {
			if u.name == name {
				return nil
			}
		}
		r.users = append(r.users, it)
	case "m":
		group := f[2]
		if !validAccount(name) || !validAccount(group) {
			return fmt.Errorf("bad member line %q", line)
		}
		if _, ok := r.members[group]; !ok {
			r.memberOrder = append(r.memberOrder, group)
		}
		r.members[group] = append(r.members[group], name)
	case "r":
		lo, hi, isRange := strings.Cut(id, "-")
		a, err := parseID(lo)
		if err != nil {
			return err
		}
		b := a
		if isRange {
			if b, err = parseID(hi); err != nil {
				return err
			}
		}
		if b < a {
			return fmt.Errorf("bad range %q", id)
		}
		r.ranges = append(r.ranges, [2]int{a, b})
	default:
		return fmt.Errorf("unknown line type %q", typ)
	}
	return nil
}

// implicit adds the users and groups "m" lines name but nothing defines,
// as systemd-sysusers does.
func (r *sysusersRun) implicit() {
	for _, g := range r.memberOrder {
		for _, u := range r.members[g] {
			found := false
			for _, it := range r.users {
				found = found || it.name == u
			}
			if !found {
				r.users = append(r.users, &sysItem{name: u, source: "m line"})
			}
		}
		found := false
		for _, it := range r.users {
			found = found || it.name == g
		}
		for _, it := range r.groups {
			found = found || it.name == g
		}
		if !found {
			r.groups = append(r.groups, &sysItem{name: g, source: "m line"})
		}
	}
}

// next returns the next free candidate below the cursor within the
// ranges, highest first.
func (r *sysusersRun) next() (int, bool) {
	best := -1
	for _, rg := range r.ranges {
		cand := rg[1]
		if r.cursor >= 0 && cand >= r.cursor {
			cand = r.cursor - 1
		}
		if cand >= rg[0] && cand > best {
			best = cand
		}
	}
	if best < 0 {
		return 0, false
	}
	r.cursor = best
	return best, true
}

func (r *sysusersRun) findGroup(name string) *sysItem {
	for _, g := range r.groups {
		if g.name == name {
			return g
		}
	}
	return nil
}

// addGroup is systemd-sysusers' add_group for a "g" line or for the group
// of a "u" line.
func (r *sysusersRun) addGroup(it *sysItem) error {
	if g := r.db.group(it.name); g != nil {
		it.gid, it.gidSet = g.gid, true
		return nil
	}
	if it.gidSet {
		free := r.db.gidFree(it.gid, it.name, false)
		if it.strict {
			if free {
				return fmt.Errorf("please create GID %d", it.gid)
			}
			return nil
		}
		if !free {
			it.gidSet = false
		}
	}
	if !it.gidSet && it.uidSet && r.db.gidFree(it.uid, it.name, true) {
		it.gid, it.gidSet = it.uid, true
	}
	if !it.gidSet {
		for {
			id, ok := r.next()
			if !ok {
				return errors.New("no free group ID")
			}
			if r.db.gidFree(id, it.name, true) {
				it.gid, it.gidSet = id, true
				break
			}
		}
	}
	r.db.addGroup(&grEntry{name: it.name, pw: "x", gid: it.gid}, "!*")
	it.created = true
	r.c.rep.Groups = append(r.c.rep.Groups, fmt.Sprintf("%s (gid %d, sysusers)", it.name, it.gid))
	return nil
}

func (r *sysusersRun) addUser(it *sysItem) error {
	if !it.gidSet {
		name := it.groupName
		if name == "" {
			name = it.name
		}
		if j := r.findGroup(name); j != nil && j.created {
			it.gid, it.gidSet, it.strict = j.gid, j.gidSet, true
		} else if it.groupName != "" {
			g := r.db.group(it.groupName)
			if g == nil {
				return fmt.Errorf("group %s not found", it.groupName)
			}
			it.gid, it.gidSet, it.strict = g.gid, true, true
		} else if err := r.addGroup(it); err != nil {
			return err
		}
	} else if err := r.addGroup(it); err != nil {
		return err
	}
	if u := r.db.user(it.name); u != nil {
		return nil
	}
	if it.uidSet && !r.db.uidFree(it.uid, it.name, !it.strict) {
		it.uidSet = false
	}
	if !it.uidSet && it.gidSet && r.db.uidFree(it.gid, it.name, true) {
		it.uid, it.uidSet = it.gid, true
	}
	if !it.uidSet {
		for {
			id, ok := r.next()
			if !ok {
				return errors.New("no free user ID")
			}
			if r.db.uidFree(id, it.name, true) {
				it.uid, it.uidSet = id, true
				break
			}
		}
	}
	home, shell := it.home, it.shell
	if home == "" {
		home = "/"
		if it.uid == 0 {
			home = "/root"
		}
	}
	if shell == "" {
		shell = "/usr/sbin/nologin"
		if it.uid == 0 {
			shell = "/bin/sh"
		}
	}
	r.db.addUser(&pwEntry{name: it.name, pw: "x", uid: it.uid, gid: it.gid, gecos: it.gecos, home: home, shell: shell}, "!*", false)
	r.c.rep.Users = append(r.c.rep.Users, fmt.Sprintf("%s (uid %d, sysusers)", it.name, it.uid))
	return nil
}

func parseID(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n >= 1<<31-1 {
		return 0, fmt.Errorf("bad id %q", s)
	}
	return n, nil
}

// validAccount accepts the names useradd and systemd accept, which also
// keeps ":" and newlines out of the account files.
func validAccount(s string) bool {
	if s == "" || len(s) > 32 || s[0] == '-' || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' ||
			c == '$' && i == len(s)-1
		if !ok {
			return false
		}
	}
	if _, err := strconv.Atoi(s); err == nil {
		return false // all digits would read as an id
	}
	return true
}

// splitQuoted splits a line at blanks, honouring double and single
// quotes (sysusers.d's GECOS "System Message Bus").
func splitQuoted(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	in := false
	var q byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q != 0:
			if c == q {
				q = 0
			} else if c == '\\' && q == '"' && i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			q, in = c, true
		case c == ' ' || c == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			in = true
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if q != 0 {
		return nil, errors.New("unbalanced quote")
	}
	if in {
		out = append(out, cur.String())
	}
	return out, nil
}
