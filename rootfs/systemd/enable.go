package systemd

import (
	"fmt"
	"path"
	"strings"

	"keel/rootfs"
)

// Link is one enablement symlink: Path in the tree, pointing at Target.
type Link struct {
	Path, Target string
}

// Changes is what an operation did, for logs: the links it created (links
// that already existed as wanted are not repeated) or removed, and notes
// systemctl would print without failing (an Also= unit that does not
// exist, a unit with no [Install] section).
type Changes struct {
	Links   []Link
	Removed []string
	Notes   []string
}

func (c *Changes) note(format string, args ...any) {
	c.Notes = append(c.Notes, fmt.Sprintf(format, args...))
}

// Enable does what `systemctl --root=ROOT enable UNIT` does on the tree:
// for the unit and, recursively, every unit its Also= names, an alias link
// per Alias= and a link in TARGET.wants/, TARGET.requires/ or
// TARGET.upholds/ per WantedBy=, RequiredBy=, UpheldBy=, all under
// /etc/systemd/system and pointing at the unit file by its search-path
// name. A template is enabled through its DefaultInstance=, or named with
// an instance. Enabling twice changes nothing the second time. An Also=
// unit that cannot be enabled is a note, not an error, as with systemctl.
func Enable(t *rootfs.Tree, unit string, epoch int64) (*Changes, error) {
	return enable(t, []string{unit}, epoch, false)
}

// Preset does what `systemctl preset --preset-mode=enable-only UNIT` does,
// which is how Debian's deb-systemd-helper enables a package's units when
// systemctl is installed: the unit is enabled unless a preset file
// disables it; a preset that lists instances of a template enables those.
// Templates with no default instance and no listed instances are skipped
// silently, as systemctl does.
func Preset(t *rootfs.Tree, unit string, epoch int64) (*Changes, error) {
	p, err := LoadPresets(t)
	if err != nil {
		return nil, err
	}
	on, instances := p.Query(unit)
	if !on {
		return &Changes{Notes: []string{unit + ": disabled by preset"}}, nil
	}
	names := []string{unit}
	if len(instances) > 0 {
		n, err := parseName(unit)
		if err != nil {
			return nil, err
		}
		names = names[:0]
		for _, i := range instances {
			names = append(names, n.withInstance(i))
		}
	}
	return enable(t, names, epoch, true)
}

type pending struct {
	name      string
	auxiliary bool // named by Also=: failures are notes
}

func enable(t *rootfs.Tree, units []string, epoch int64, preset bool) (*Changes, error) {
	ch := &Changes{}
	var queue []pending
	for _, u := range units {
		queue = append(queue, pending{name: u})
	}
	done := map[string]bool{}
	for i := 0; i < len(queue); i++ {
		item := queue[i]
		u, err := Find(t, item.name)
		if err != nil {
			if item.auxiliary {
				ch.note("failed to enable auxiliary unit %s, ignoring: %v", item.name, err)
				continue
			}
			return ch, fmt.Errorf("enabling %s: %w", item.name, err)
		}
		if done[u.Name] {
			continue
		}
		done[u.Name] = true
		n, _ := parseName(u.Name)
		for _, a := range u.Install.Also {
			also, err := expand(a, specName(n, u.Install))
			if err != nil {
				ch.note("%s: Also=%s: %v", u.Name, a, err)
				continue
			}
			queue = append(queue, pending{name: also, auxiliary: true})
		}
		if u.Install.Empty() {
			ch.note("%s has no installation config ([Install] section); nothing to enable", u.Name)
			continue
		}
		if err := apply(t, u, n, epoch, preset || item.auxiliary, ch); err != nil {
			if item.auxiliary {
				ch.note("failed to enable auxiliary unit %s, ignoring: %v", u.Name, err)
				continue
			}
			return ch, fmt.Errorf("enabling %s: %w", u.Name, err)
		}
	}
	return ch, nil
}

// apply writes one unit's links: aliases first, then wants, requires and
// upholds links, in systemctl's order.
func apply(t *rootfs.Tree, u *Unit, n name, epoch int64, lenient bool, ch *Changes) error {
	spec := specName(n, u.Install)
	for _, a := range u.Install.Alias {
		dst, err := expand(a, spec)
		if err != nil {
			return fmt.Errorf("Alias=%s: %w", a, err)
		}
		dst, err = verifyAlias(n, dst)
		if err != nil {
			return err
		}
		if dst == u.Name {
			continue
		}
		if err := link(t, path.Join(ConfigDir, dst), u.Path, epoch, ch); err != nil {
			return err
		}
	}
	src := n.String()
	targetsMustBeTemplated := false
	if n.isTemplate() {
		if u.Install.DefaultInstance != "" {
			src = n.withInstance(u.Install.DefaultInstance)
			if !ValidName(src) {
				return fmt.Errorf("DefaultInstance=%s: %q: %w", u.Install.DefaultInstance, src, ErrInvalidName)
			}
		} else {
			// Without an instance, only templated targets can take the
			// template itself (foo@.target.wants/bar@.service).
			targetsMustBeTemplated = true
		}
	}
	for _, dep := range []struct {
		list   []string
		suffix string
	}{{u.Install.WantedBy, ".wants"}, {u.Install.RequiredBy, ".requires"}, {u.Install.UpheldBy, ".upholds"}} {
		for _, w := range dep.list {
			dst, err := expand(w, spec)
			if err != nil {
				return fmt.Errorf("%s: %w", w, err)
			}
			dn, err := parseName(dst)
			if err != nil {
				return err
			}
			if targetsMustBeTemplated && !dn.template {
				if lenient {
					continue
				}
				return fmt.Errorf("%s is a template with no DefaultInstance=; name an instance (%s)", u.Name, n.withInstance("INSTANCE"))
			}
			if err := link(t, path.Join(ConfigDir, dst+dep.suffix, src), u.Path, epoch, ch); err != nil {
				return err
			}
		}
	}
	return nil
}

// specName is the name specifiers are resolved against: for a template
// with a DefaultInstance=, its default instance (WantedBy=foo-%i.target of
// bar@.service with DefaultInstance=x is foo-x.target), as systemctl does.
func specName(n name, in Install) name {
	if n.isTemplate() && in.DefaultInstance != "" {
		if dn, err := parseName(n.withInstance(in.DefaultInstance)); err == nil {
			return dn
		}
	}
	return n
}

// verifyAlias checks an Alias= name as systemctl does: same unit type,
// and a template's alias a template; an instance's template alias gets the
// instance.
func verifyAlias(n name, dst string) (string, error) {
	an, err := parseName(dst)
	if err != nil {
		return "", fmt.Errorf("Alias=%s: %w", dst, err)
	}
	if an.suffix != n.suffix {
		return "", fmt.Errorf("Alias=%s would change the unit type of %s", dst, n)
	}
	switch {
	case n.isInstance() && an.isTemplate():
		return an.withInstance(n.instance), nil
	case !n.template && an.template, n.template && !an.template:
		return "", fmt.Errorf("Alias=%s: a template and a plain unit cannot alias each other (%s)", dst, n)
	}
	return dst, nil
}

// link creates p → target unless p already is that link.
func link(t *rootfs.Tree, p, target string, epoch int64, ch *Changes) error {
	dir, err := t.MkdirAllTime(path.Dir(p), 0o755, epoch)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path.Dir(p), err)
	}
	real := path.Join(dir, path.Base(p))
	if e, ok := t.Get(real); ok {
		if e.Type == rootfs.TypeSymlink && sameTarget(t, path.Dir(p), e.Target, target) {
			return nil
		}
		what := e.Type.String()
		if e.Type == rootfs.TypeSymlink {
			what = "link to " + e.Target
		}
		return fmt.Errorf("%s: %w (a %s)", p, ErrExists, what)
	}
	if err := t.Add(real, &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: target, Mtime: epoch}); err != nil {
		return err
	}
	ch.Links = append(ch.Links, Link{Path: p, Target: target})
	return nil
}

// sameTarget reports whether an existing link target names the same unit
// file as want: the same string, or the same entry once the tree's links
// are followed (a relative "../ssh.service" and "/lib/systemd/system/..."
// written by another tool).
func sameTarget(t *rootfs.Tree, dir, have, want string) bool {
	if have == want {
		return true
	}
	if !path.IsAbs(have) {
		have = path.Join(dir, have)
	}
	_, a, errA := t.Resolve(have)
	_, b, errB := t.Resolve(want)
	return errA == nil && errB == nil && a == b
}

// Disable removes what Enable would have created for the unit and its
// Also= units: every symlink under /etc/systemd/system (directly or in a
// .wants/.requires/.upholds directory) that is named after the unit, one
// of its instances or one of its aliases and points at its file.
func Disable(t *rootfs.Tree, unit string) (*Changes, error) {
	ch := &Changes{}
	queue := []pending{{name: unit}}
	done := map[string]bool{}
	for i := 0; i < len(queue); i++ {
		u, err := Find(t, queue[i].name)
		if err != nil {
			if queue[i].auxiliary {
				continue
			}
			return ch, fmt.Errorf("disabling %s: %w", queue[i].name, err)
		}
		if done[u.Name] {
			continue
		}
		done[u.Name] = true
		n, _ := parseName(u.Name)
		for _, a := range u.Install.Also {
			if also, err := expand(a, specName(n, u.Install)); err == nil {
				queue = append(queue, pending{name: also, auxiliary: true})
			}
		}
		names := map[string]bool{u.Name: true}
		for _, a := range u.Install.Alias {
			if dst, err := expand(a, specName(n, u.Install)); err == nil {
				if dst, err = verifyAlias(n, dst); err == nil {
					names[dst] = true
				}
			}
		}
		matches := func(linkName string) bool {
			if names[linkName] {
				return true
			}
			// Instances of a template point at the template's file.
			ln, err := parseName(linkName)
			return err == nil && n.isTemplate() && ln.isInstance() && ln.templateName() == u.Name
		}
		removeLinks(t, u, matches, ch)
	}
	return ch, nil
}

func removeLinks(t *rootfs.Tree, u *Unit, matches func(string) bool, ch *Changes) {
	root, e, err := t.Resolve(ConfigDir)
	if err != nil || e.Type != rootfs.TypeDir {
		return
	}
	check := func(dir, linkDir, name string) {
		p := path.Join(dir, name)
		e, ok := t.Get(p)
		if !ok || e.Type != rootfs.TypeSymlink || !matches(name) {
			return
		}
		if path.Base(e.Target) != path.Base(u.Path) && !sameTarget(t, linkDir, e.Target, u.Path) {
			return
		}
		if err := t.Remove(p); err == nil {
			ch.Removed = append(ch.Removed, path.Join(linkDir, name))
		}
	}
	for _, name := range t.Children(root) {
		sub := path.Join(root, name)
		se, _ := t.Get(sub)
		if se.Type == rootfs.TypeDir && (strings.HasSuffix(name, ".wants") || strings.HasSuffix(name, ".requires") || strings.HasSuffix(name, ".upholds")) {
			for _, child := range t.Children(sub) {
				check(sub, path.Join(ConfigDir, name), child)
			}
			continue
		}
		check(root, ConfigDir, name)
	}
}

// Mask links /etc/systemd/system/UNIT to /dev/null, as `systemctl mask`
// does. A unit file of keel's own at that path is not replaced.
func Mask(t *rootfs.Tree, unit string, epoch int64) (*Changes, error) {
	if !ValidName(unit) {
		return nil, fmt.Errorf("masking %q: %w", unit, ErrInvalidName)
	}
	ch := &Changes{}
	if err := link(t, path.Join(ConfigDir, unit), "/dev/null", epoch, ch); err != nil {
		return ch, fmt.Errorf("masking %s: %w", unit, err)
	}
	return ch, nil
}
