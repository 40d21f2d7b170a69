package assemble

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"keel/profiles"
	"keel/rootfs"
)

type accountFiles struct {
	passwd, group, shadow []byte
	shadowMode            uint32
	shadowGID             uint32
}

type account struct {
	name   string
	fields []string // the line's fields after the name
	id     int
}

// accounts merges the profile's users and groups into the passwd, group and
// shadow files a base image may have brought: an account the profile names
// is replaced, the others are kept. Lines are sorted by id, then name.
func accounts(t *rootfs.Tree, p *profiles.Profile) (*accountFiles, error) {
	passwd, err := parseDB(t, "/etc/passwd", "uid", "gid")
	if err != nil {
		return nil, fmt.Errorf("the sources' accounts: %w", err)
	}
	group, err := parseDB(t, "/etc/group", "gid")
	if err != nil {
		return nil, fmt.Errorf("the sources' accounts: %w", err)
	}
	shadow, err := parseDB(t, "/etc/shadow")
	if err != nil {
		return nil, fmt.Errorf("the sources' accounts: %w", err)
	}

	groupMembers := map[string][]string{}
	for _, u := range p.Users {
		for _, g := range u.Groups {
			groupMembers[g] = append(groupMembers[g], u.Name)
		}
	}
	setGroup := func(name string, gid int) {
		members := groupMembers[name]
		if old, ok := group[name]; ok && len(old.fields) >= 3 && old.fields[2] != "" {
			members = append(strings.Split(old.fields[2], ","), members...)
		}
		group[name] = account{name: name, id: gid, fields: []string{"x", strconv.Itoa(gid), strings.Join(dedup(members), ",")}}
	}
	if _, ok := group["root"]; !ok {
		setGroup("root", 0)
	}
	for _, g := range p.Groups {
		setGroup(g.Name, g.GID)
	}
	if _, ok := passwd["root"]; !ok {
		passwd["root"] = account{name: "root", id: 0, fields: []string{"x", "0", "0", "root", "/root", "/bin/sh"}}
		shadow["root"] = account{name: "root", fields: []string{"!", "", "0", "99999", "7", "", "", ""}}
	}
	for _, u := range p.Users {
		passwd[u.Name] = account{name: u.Name, id: u.UID, fields: []string{"x", strconv.Itoa(u.UID), strconv.Itoa(u.GID), u.Name, u.Home, u.Shell}}
		shadow[u.Name] = account{name: u.Name, fields: []string{u.Password, "", "0", "99999", "7", "", "", ""}}
		// A user's primary group exists even if the profile lists none.
		found := false
		for _, g := range group {
			if g.id == u.GID {
				found = true
			}
		}
		if !found {
			setGroup(u.Name, u.GID)
		}
	}
	for name := range groupMembers {
		if _, ok := group[name]; !ok {
			return nil, fmt.Errorf("group %s is named by a user but not defined", name)
		}
	}
	// shadow follows passwd's order.
	for name, a := range shadow {
		a.id = 1 << 30
		if u, ok := passwd[name]; ok {
			a.id = u.id
		}
		shadow[name] = a
	}
	f := &accountFiles{passwd: render(passwd), group: render(group), shadow: render(shadow), shadowMode: 0o000}
	// Debian's /etc/shadow is root:shadow 0640; without a shadow group only
	// root may read it at all.
	if g, ok := group["shadow"]; ok {
		f.shadowMode, f.shadowGID = 0o640, uint32(g.id)
	}
	return f, nil
}

// parseDB reads a colon-separated account file from the tree. ids names
// the numeric fields that follow the password field (passwd: uid, gid;
// group: gid); the first is the line's id. A missing or non-numeric id is
// an error naming the file and line: read as 0 it would be root.
func parseDB(t *rootfs.Tree, p string, ids ...string) (map[string]account, error) {
	m := map[string]account{}
	b, ok := readTreeFile(t, p)
	if !ok {
		return m, nil
	}
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 2 || f[0] == "" || strings.HasPrefix(line, "#") {
			continue
		}
		a := account{name: f[0], fields: f[1:], id: -1}
		for j, name := range ids {
			k := 1 + j // after the password field
			if k >= len(a.fields) {
				return nil, fmt.Errorf("%s:%d: %s has no %s field", p, i+1, a.name, name)
			}
			id, err := strconv.ParseUint(a.fields[k], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %s of %s is %q, not a number from 0 to %d", p, i+1, name, a.name, a.fields[k], uint32(1<<32-1))
			}
			if j == 0 {
				a.id = int(id)
			}
		}
		m[f[0]] = a
	}
	return m, nil
}

func render(m map[string]account) []byte {
	list := make([]account, 0, len(m))
	for _, a := range m {
		list = append(list, a)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].id != list[j].id {
			return list[i].id < list[j].id
		}
		return list[i].name < list[j].name
	})
	var b strings.Builder
	for _, a := range list {
		b.WriteString(a.name + ":" + strings.Join(a.fields, ":") + "\n")
	}
	return []byte(b.String())
}

func dedup(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if x != "" && !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
