package postinst

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"strings"
)

// Busybox's applet links, read from the binary without running it (it may
// be built for another architecture). Busybox keeps two tables made at
// its build (applets/applet_tables.c):
//
//   - applet_names: the applet names, NUL-separated, sorted, starting
//     with "[\0[[\0" in every configuration that has test;
//   - applet_install_loc: where `busybox --install` puts each applet, 4
//     bits per applet, two applets a byte (low nibble first): 0 "/",
//     1 /bin, 2 /sbin, 3 /usr/bin, 4 /usr/sbin.
//
// The names are found by their start and checked to be sorted. The
// location table has no marker; it is found as the one run of
// ceil(n/2) bytes whose nibbles are all ≤ 4 and that puts the applets
// whose home is fixed where they belong (ash and sh in /bin, reboot in
// /sbin, awk in /usr/bin, chroot in /usr/sbin; at least two of them must
// be built in). When it is not found, or not unique, every applet goes to
// /usr/bin, which on a merged-/usr tree is also /bin.

type applet struct {
	name string
	dir  string // "/bin", "/sbin", "/usr/bin", "/usr/sbin", or "/" for the root
}

var appletDirs = []string{"/", "/bin", "/sbin", "/usr/bin", "/usr/sbin"}

// errNoApplets is returned for a binary with no applet table.
var errNoApplets = errors.New("no busybox applet table found")

// anchors are applets whose install location is the same in every
// busybox configuration.
var anchors = map[string]byte{"ash": 1, "sh": 1, "reboot": 2, "awk": 3, "chroot": 4}

// busyboxApplets reads the applet list of a busybox binary; located is
// false when the location table was not found and every dir is /usr/bin.
func busyboxApplets(bin []byte) (applets []applet, located bool, err error) {
	names, err := appletNames(bin)
	if err != nil {
		return nil, false, err
	}
	locs := installLocations(bin, names)
	for i, n := range names {
		a := applet{name: n, dir: "/usr/bin"}
		if locs != nil {
			a.dir = appletDirs[locs[i]]
		}
		applets = append(applets, a)
	}
	return applets, locs != nil, nil
}

func appletNames(bin []byte) ([]string, error) {
	start := []byte("[\x00[[\x00")
	var best []string
	for off := 0; ; {
		i := bytes.Index(bin[off:], start)
		if i < 0 {
			break
		}
		names := readNames(bin[off+i:])
		if len(names) > len(best) {
			best = names
		}
		off += i + 1
	}
	if len(best) < 3 {
		return nil, errNoApplets
	}
	return best, nil
}

// readNames reads NUL-terminated names while they are plausible applet
// names in strictly increasing order.
func readNames(b []byte) []string {
	var out []string
	for len(b) > 0 {
		end := bytes.IndexByte(b, 0)
		if end <= 0 || end > 64 {
			break
		}
		name := string(b[:end])
		if !plausibleApplet(name) || len(out) > 0 && name <= out[len(out)-1] {
			break
		}
		out = append(out, name)
		b = b[end+1:]
	}
	return out
}

func plausibleApplet(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("[]_.-+", c) >= 0) {
			return false
		}
	}
	return true
}

// installLocations finds applet_install_loc for names; nil when it is
// not found or not unique.
func installLocations(bin []byte, names []string) []byte {
	n := len(names)
	size := (n + 1) / 2
	type anchor struct {
		idx int
		loc byte
	}
	var as []anchor
	for i, name := range names {
		if loc, ok := anchors[name]; ok {
			as = append(as, anchor{i, loc})
		}
	}
	if len(as) < 2 || size == 0 {
		return nil
	}
	nibble := func(table []byte, i int) byte {
		if i%2 == 0 {
			return table[i/2] & 0x0f
		}
		return table[i/2] >> 4
	}
	var found []byte
	for off := 0; off+size <= len(bin); off++ {
		table := bin[off : off+size]
		ok := true
		for _, a := range as {
			if nibble(table, a.idx) != a.loc {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		for _, b := range table {
			if b&0x0f > 4 || b>>4 > 4 {
				ok = false
				break
			}
		}
		// With an odd count the last byte's high nibble is unused: 0.
		if !ok || n%2 == 1 && table[size-1]>>4 != 0 {
			continue
		}
		if found != nil && !bytes.Equal(found, table) {
			return nil
		}
		found = table
	}
	if found == nil {
		return nil
	}
	locs := make([]byte, n)
	for i := range locs {
		locs[i] = nibble(found, i)
	}
	return locs
}

// busyboxLinks makes a link to the busybox binary for every applet whose
// path nothing else occupies, like `busybox --install -s`.
func busyboxLinks(c *configurator, p *Package) error {
	var bin string
	for _, f := range p.Files {
		lp := listPath(f)
		if path.Base(lp) == "busybox" && strings.HasSuffix(path.Dir(lp), "bin") {
			bin = lp
			break
		}
	}
	if bin == "" {
		c.warn("%s: no busybox binary among its files; no applet links", p.Name)
		return nil
	}
	data, ok, err := c.readFile(bin)
	if err != nil {
		return err
	}
	if !ok {
		c.warn("%s: %s is not in the tree; no applet links", p.Name, bin)
		return nil
	}
	applets, located, err := busyboxApplets(data)
	if err != nil {
		c.warn("%s: %s: %v; no applet links", p.Name, bin, err)
		return nil
	}
	if !located {
		c.warn("%s: busybox's applet locations not found in %s; every applet linked in /usr/bin", p.Name, bin)
	}
	target, _, err := c.t.Resolve(bin)
	if err != nil {
		return err
	}
	made := 0
	for _, a := range applets {
		if a.dir == "/" {
			continue // linuxrc and the like: an initramfs's business
		}
		link := path.Join(a.dir, a.name)
		if c.lexists(link) {
			continue
		}
		if _, err := c.t.ResolveParent(link); err != nil {
			if err := c.mkdir(a.dir, 0o755); err != nil {
				return err
			}
		}
		if err := c.symlink(link, target); err != nil {
			return fmt.Errorf("applet %s: %w", a.name, err)
		}
		made++
	}
	c.applied("%s: %d applet links to %s", p.Name, made, target)
	return nil
}
