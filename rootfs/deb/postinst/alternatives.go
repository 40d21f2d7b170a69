package postinst

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"keel/rootfs"
)

// Effect 3: update-alternatives --install LINK NAME PATH PRIORITY
// [--slave LINK NAME PATH]... calls. Per NAME the choice with the highest
// priority wins; on a tie the first one installed stays, as
// update-alternatives keeps the current choice unless another is strictly
// better. LINK → /etc/alternatives/NAME → PATH, and the same for each
// slave of the winning choice whose file exists.
// /var/lib/dpkg/alternatives/NAME records every choice in
// update-alternatives' format (slaves sorted by name, choices by path). A
// choice whose PATH is not in the tree is dropped (update-alternatives
// refuses it); a LINK that is a real file is not replaced.

type altChoice struct {
	path     string
	priority int
	slaves   map[string]string // slave name → path
}

type altGroup struct {
	name    string
	link    string
	slaves  map[string]string // slave name → link
	choices []*altChoice      // in installation order
}

const altDir = "/etc/alternatives"

func (c *configurator) alternatives() error {
	groups := map[string]*altGroup{}
	for _, inv := range c.invocationsOf("update-alternatives") {
		inv.handled = true
		args, ok := inv.args()
		if !ok {
			c.warn("%s: update-alternatives: %s is not known at build time; not run", inv.where(), unknownArg(inv))
			continue
		}
		if err := c.parseAlternative(groups, inv, args); err != nil {
			c.warn("%s: update-alternatives: %v; not run", inv.where(), err)
		}
	}
	for _, name := range sortedKeys(groups) {
		if err := c.installAlternative(groups[name]); err != nil {
			return fmt.Errorf("alternative %s: %w", name, err)
		}
	}
	return nil
}

func unknownArg(inv *invocation) string {
	for i, a := range inv.argv {
		if !a.known {
			return fmt.Sprintf("argument %d", i)
		}
	}
	return "an argument"
}

func (c *configurator) parseAlternative(groups map[string]*altGroup, inv *invocation, args []string) error {
	i := 0
	for i < len(args) && args[i] != "--install" {
		switch a := args[i]; {
		case a == "--quiet" || a == "--verbose" || a == "--force" || a == "--debug" || a == "--skip-auto":
			i++
		case a == "--remove" || a == "--remove-all" || a == "--auto":
			return nil // nothing to undo on a fresh install
		case strings.HasPrefix(a, "--"):
			return fmt.Errorf("%s is not supported", a)
		default:
			return fmt.Errorf("unexpected %q", a)
		}
	}
	if i == len(args) {
		return fmt.Errorf("no --install")
	}
	rest := args[i+1:]
	if len(rest) < 4 {
		return fmt.Errorf("--install needs LINK NAME PATH PRIORITY")
	}
	link, name, file, prio := rest[0], rest[1], rest[2], rest[3]
	priority, err := strconv.Atoi(prio)
	if err != nil {
		return fmt.Errorf("priority %q is not a number", prio)
	}
	if err := checkAltName(name); err != nil {
		return err
	}
	if !path.IsAbs(link) || !path.IsAbs(file) {
		return fmt.Errorf("link and path must be absolute")
	}
	ch := &altChoice{path: rootfs.Clean(file), priority: priority, slaves: map[string]string{}}
	g := groups[name]
	if g == nil {
		g = &altGroup{name: name, slaves: map[string]string{}}
		groups[name] = g
	}
	g.link = rootfs.Clean(link)
	rest = rest[4:]
	for len(rest) > 0 {
		if rest[0] != "--slave" || len(rest) < 4 {
			return fmt.Errorf("unexpected %q after --install", rest[0])
		}
		sl, sn, sp := rest[1], rest[2], rest[3]
		if err := checkAltName(sn); err != nil {
			return err
		}
		if !path.IsAbs(sl) || !path.IsAbs(sp) {
			return fmt.Errorf("slave link and path must be absolute")
		}
		g.slaves[sn] = rootfs.Clean(sl)
		ch.slaves[sn] = rootfs.Clean(sp)
		rest = rest[4:]
	}
	if !c.exists(ch.path) {
		return fmt.Errorf("alternative path %s does not exist", ch.path)
	}
	for j, old := range g.choices {
		if old.path == ch.path {
			g.choices[j] = ch
			return nil
		}
	}
	g.choices = append(g.choices, ch)
	return nil
}

func checkAltName(n string) error {
	if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/ \n") {
		return fmt.Errorf("bad alternative name %q", n)
	}
	return nil
}

func (c *configurator) installAlternative(g *altGroup) error {
	if len(g.choices) == 0 {
		return nil
	}
	best := g.choices[0]
	for _, ch := range g.choices[1:] {
		if ch.priority > best.priority {
			best = ch
		}
	}
	if err := c.altLink(g.link, g.name, best.path); err != nil {
		return err
	}
	for _, sn := range sortedKeys(g.slaves) {
		sp, ok := best.slaves[sn]
		if !ok || !c.exists(sp) {
			continue // update-alternatives skips a slave whose file is missing
		}
		if err := c.altLink(g.slaves[sn], sn, sp); err != nil {
			return err
		}
	}
	c.rep.Alternatives = append(c.rep.Alternatives, fmt.Sprintf("%s → %s", g.name, best.path))
	// The database file.
	var b strings.Builder
	b.WriteString("auto\n" + g.link + "\n")
	slaveNames := sortedKeys(g.slaves)
	for _, sn := range slaveNames {
		b.WriteString(sn + "\n" + g.slaves[sn] + "\n")
	}
	b.WriteString("\n")
	choices := append([]*altChoice(nil), g.choices...)
	sort.Slice(choices, func(i, j int) bool { return choices[i].path < choices[j].path })
	for _, ch := range choices {
		b.WriteString(ch.path + "\n" + strconv.Itoa(ch.priority) + "\n")
		for _, sn := range slaveNames {
			b.WriteString(ch.slaves[sn] + "\n")
		}
	}
	b.WriteString("\n")
	return c.writeFile(dpkgDir+"/alternatives/"+g.name, 0o644, 0, 0, []byte(b.String()))
}

// altLink makes link → /etc/alternatives/name → target.
func (c *configurator) altLink(link, name, target string) error {
	if err := c.symlink(altDir+"/"+name, target); err != nil {
		return err
	}
	real, err := c.t.ResolveParent(link)
	if err != nil {
		c.warn("alternative %s: %s: its directory does not exist; link not made", name, link)
		return nil
	}
	if e, ok := c.t.Get(real); ok && e.Type != rootfs.TypeSymlink {
		c.warn("alternative %s: not replacing %s (a %s) with a link", name, link, e.Type)
		return nil
	}
	return c.symlink(real, altDir+"/"+name)
}
