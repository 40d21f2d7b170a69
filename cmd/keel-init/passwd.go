package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// account is what a service needs to run as a user.
type account struct {
	Name     string
	UID, GID uint32
	Groups   []uint32 // supplementary groups, from /etc/group
	Home     string
}

// lookupUser finds name in passwd(5) data and its supplementary groups in
// group(5) data. There is no NSS in a static PID 1: the files are all there is.
// A damaged line that concerns the user (its own, or a group that lists it)
// is an error naming the line: guessing could run the service as root or
// without a group it needs.
func lookupUser(name string, passwd, group io.Reader) (account, error) {
	a, found := account{}, false
	sc := bufio.NewScanner(passwd)
	for n := 1; sc.Scan(); n++ {
		f := strings.Split(sc.Text(), ":")
		if f[0] != name {
			continue
		}
		if len(f) < 7 {
			return account{}, fmt.Errorf("user %s: /etc/passwd:%d: %d fields, want 7: %q", name, n, len(f), sc.Text())
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			return account{}, fmt.Errorf("user %s: /etc/passwd:%d: bad uid or gid: %q", name, n, sc.Text())
		}
		a, found = account{Name: name, UID: uint32(uid), GID: uint32(gid), Home: f[5]}, true
		break
	}
	if err := sc.Err(); err != nil {
		return account{}, fmt.Errorf("reading /etc/passwd: %w", err)
	}
	if !found {
		return account{}, fmt.Errorf("user %s: not in /etc/passwd", name)
	}
	if group == nil {
		return a, nil
	}
	sc = bufio.NewScanner(group)
	for n := 1; sc.Scan(); n++ {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 {
			continue
		}
		member := false
		for _, m := range strings.Split(f[3], ",") {
			member = member || m == name
		}
		if !member {
			continue
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return account{}, fmt.Errorf("user %s: /etc/group:%d: bad gid of group %s: %q", name, n, f[0], sc.Text())
		}
		if uint32(gid) != a.GID {
			a.Groups = append(a.Groups, uint32(gid))
		}
	}
	if err := sc.Err(); err != nil {
		return account{}, fmt.Errorf("reading /etc/group: %w", err)
	}
	return a, nil
}
