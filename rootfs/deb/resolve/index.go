package resolve

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"keel/rootfs/deb"

	"pault.ag/go/debian/dependency"
	"pault.ag/go/debian/version"
)

// cand is one installable package with its relations prepared once: arch
// restrictions applied, Provides versions parsed.
type cand struct {
	p         *deb.Package
	rank      int // of Priority: 0 required ... 5 unknown
	provides  []provide
	provNames []string // distinct names in provides, in order

	// Prepared only for the candidates the search looks at (see ready).
	prepared  bool
	pre, deps []relation
	conflicts []conflict // Conflicts then Breaks
}

type provide struct {
	name string
	ver  *version.Version // nil: unversioned (or not "="), satisfies only unversioned relations
}

// relation is one comma-separated item of a Depends-like field: its
// alternatives, and its text for messages.
type relation struct {
	text string
	alts []dependency.Possibility
}

type conflict struct {
	poss   dependency.Possibility
	breaks bool
}

// index is the repository as the solver sees it: only this architecture's
// and "all" packages, by name (best version first) and by provided name.
type index struct {
	origin    string
	archName  string
	arch      dependency.Arch
	byName    map[string][]*cand
	providers map[string][]*cand
	otherArch map[string][]string // names only built for other architectures

	broken   map[*cand]*brokenInfo // memo of brokenOf
	checking map[*cand]bool
}

var priorities = map[string]int{"required": 0, "important": 1, "standard": 2, "optional": 3, "extra": 4}

func rank(priority string) int {
	if r, ok := priorities[priority]; ok {
		return r
	}
	return len(priorities)
}

func newIndex(pkgs []*deb.Package, archName, origin string) (*index, error) {
	arch, err := dependency.ParseArch(archName)
	if err != nil {
		return nil, err
	}
	ix := &index{
		origin:    origin,
		archName:  archName,
		arch:      *arch,
		byName:    make(map[string][]*cand, len(pkgs)),
		providers: map[string][]*cand{},
		otherArch: map[string][]string{},
		broken:    map[*cand]*brokenInfo{},
		checking:  map[*cand]bool{},
	}
	// One allocation for all candidates: most of the index is never looked
	// at, and building it is most of the time a resolution takes.
	cands := make([]cand, 0, len(pkgs))
	for _, p := range pkgs {
		if p == nil || p.Name == "" {
			continue
		}
		if p.Architecture != archName && p.Architecture != "all" {
			if !slices.Contains(ix.otherArch[p.Name], p.Architecture) {
				ix.otherArch[p.Name] = append(ix.otherArch[p.Name], p.Architecture)
			}
			continue
		}
		cands = append(cands, cand{p: p, rank: rank(p.Priority)})
		c := &cands[len(cands)-1]
		c.parseProvides()
		ix.byName[p.Name] = append(ix.byName[p.Name], c)
	}
	for name, cs := range ix.byName {
		slices.SortFunc(cs, byVersionDesc)
		// The same name and version in two merged suites is the same
		// package (an archive never reuses a version): keep one. An index
		// that does reuse one gets both, as different candidates.
		cs = slices.CompactFunc(cs, func(a, b *cand) bool {
			return version.Compare(a.p.Version, b.p.Version) == 0 && fields(a.p) == fields(b.p)
		})
		ix.byName[name] = cs
		for _, c := range cs {
			for _, n := range c.provNames {
				ix.providers[n] = append(ix.providers[n], c)
			}
		}
	}
	for _, cs := range ix.providers {
		slices.SortFunc(cs, func(a, b *cand) int {
			if a.rank != b.rank {
				return a.rank - b.rank
			}
			if c := strings.Compare(a.p.Name, b.p.Name); c != 0 {
				return c
			}
			return byVersionDesc(a, b)
		})
	}
	for _, archs := range ix.otherArch {
		slices.Sort(archs)
	}
	return ix, nil
}

// byVersionDesc orders the versions of one name best first; equal versions
// by origin, file name and hash so that the order never depends on the
// index's order.
func byVersionDesc(a, b *cand) int {
	if c := version.Compare(b.p.Version, a.p.Version); c != 0 {
		return c
	}
	if c := strings.Compare(a.p.Origin, b.p.Origin); c != 0 {
		return c
	}
	if c := strings.Compare(a.p.Filename, b.p.Filename); c != 0 {
		return c
	}
	if c := strings.Compare(a.p.SHA256, b.p.SHA256); c != 0 {
		return c
	}
	// Only hand-made indexes get here (a real archive gives one version
	// one file): compare what the resolver reads, so that the choice
	// still never depends on the index's order.
	return strings.Compare(fields(a.p), fields(b.p))
}

func fields(p *deb.Package) string {
	return fmt.Sprintf("%s|%s|%s|%t|%s|%s|%s|%s|%s", p.Architecture, p.MultiArch, p.Priority, p.Essential,
		p.PreDepends, p.Depends, p.Conflicts, p.Breaks, p.Provides)
}

func (c *cand) parseProvides() {
	for _, r := range c.p.Provides.Relations {
		for _, poss := range r.Possibilities {
			if poss.Substvar || poss.Name == "" {
				continue
			}
			pv := provide{name: poss.Name}
			if poss.Version != nil && poss.Version.Operator == "=" {
				if v, err := version.Parse(poss.Version.Number); err == nil {
					pv.ver = &v
				}
			}
			c.provides = append(c.provides, pv)
			if !slices.Contains(c.provNames, poss.Name) {
				c.provNames = append(c.provNames, poss.Name)
			}
		}
	}
}

// ready prepares c's relations the first time the search looks at it: a
// resolution touches a few thousand of the index's tens of thousands of
// packages.
func (ix *index) ready(c *cand) *cand {
	if c.prepared {
		return c
	}
	c.prepared = true
	p := c.p
	c.pre = ix.relations(p.PreDepends)
	c.deps = ix.relations(p.Depends)
	for _, f := range []struct {
		dep    dependency.Dependency
		breaks bool
	}{{p.Conflicts, false}, {p.Breaks, true}} {
		for _, r := range f.dep.Relations {
			for _, poss := range r.Possibilities {
				if ix.applies(poss) {
					c.conflicts = append(c.conflicts, conflict{poss, f.breaks})
				}
			}
		}
	}
	return c
}

// relations keeps the alternatives that apply to this architecture; a
// relation left with none does not apply at all (as dpkg-gencontrol would
// have reduced it).
func (ix *index) relations(d dependency.Dependency) []relation {
	var out []relation
	for _, r := range d.Relations {
		var alts []dependency.Possibility
		for _, poss := range r.Possibilities {
			if ix.applies(poss) {
				alts = append(alts, poss)
			}
		}
		if len(alts) > 0 {
			out = append(out, relation{text: dependency.Relation{Possibilities: alts}.String(), alts: alts})
		}
	}
	return out
}

func (ix *index) applies(poss dependency.Possibility) bool {
	if poss.Substvar || poss.Name == "" {
		return false
	}
	return poss.Architectures == nil || poss.Architectures.Matches(&ix.arch)
}

// qualifierOK reports whether an arch qualifier can be met at all. Every
// candidate is of the build's architecture or "all", so "name:native" and
// a qualifier naming this architecture always can. "name:any" can too:
// dpkg lets a Multi-Arch: allowed package satisfy it from any
// architecture, and in a single-architecture system the package of the
// build's own architecture is the one that is there, whatever its
// Multi-Arch. A qualifier naming another architecture cannot be met.
func (ix *index) qualifierOK(poss *dependency.Possibility) bool {
	a := poss.Arch
	if a == nil || *a == dependency.Any || a.CPU == "native" {
		return true
	}
	return a.Is(&ix.arch)
}

func versionOK(poss *dependency.Possibility, v version.Version) bool {
	return poss.Version == nil || poss.Version.SatisfiedBy(v)
}

// provides reports whether c provides what poss names, at a version poss
// accepts: an unversioned Provides satisfies only an unversioned relation.
func provides(c *cand, poss *dependency.Possibility) bool {
	for _, pv := range c.provides {
		if pv.name != poss.Name {
			continue
		}
		if poss.Version == nil {
			return true
		}
		if pv.ver != nil && poss.Version.SatisfiedBy(*pv.ver) {
			return true
		}
	}
	return false
}

// brokenInfo says why a package can never be installed from this index:
// the chain of relations down to one that nothing in the index satisfies.
type brokenInfo struct {
	path   []string
	reason string
}

// brokenOf finds packages that no selection could install because a
// dependency, directly or through every candidate, is missing from the
// index. It ignores conflicts and versions already selected, so it only
// ever rules out what the search would fail on anyway, and spares the
// search from backtracking over them. A package met again while being
// checked (a dependency cycle) counts as installable for that check,
// which can only make the answer more permissive.
func (ix *index) brokenOf(c *cand) *brokenInfo {
	if b, ok := ix.broken[c]; ok {
		return b
	}
	if ix.checking[c] {
		return nil
	}
	ix.checking[c] = true
	ix.ready(c)
	var res *brokenInfo
	for _, r := range slices.Concat(c.pre, c.deps) {
		if res = ix.relationBroken(c, r); res != nil {
			break
		}
	}
	delete(ix.checking, c)
	ix.broken[c] = res
	return res
}

func (ix *index) relationBroken(c *cand, r relation) *brokenInfo {
	var inner *brokenInfo
	anyCand := false
	for i := range r.alts {
		poss := &r.alts[i]
		if !ix.qualifierOK(poss) {
			continue
		}
		for _, d := range ix.byName[poss.Name] {
			if !versionOK(poss, d.p.Version) {
				continue
			}
			anyCand = true
			b := ix.brokenOf(d)
			if b == nil {
				return nil
			}
			if inner == nil {
				inner = b
			}
		}
		for _, d := range ix.providers[poss.Name] {
			if !provides(d, poss) {
				continue
			}
			anyCand = true
			if d == c {
				return nil
			}
			b := ix.brokenOf(d)
			if b == nil {
				return nil
			}
			if inner == nil {
				inner = b
			}
		}
	}
	if !anyCand {
		reason := "none of them is in " + ix.origin
		if len(r.alts) == 1 {
			reason = ix.missing(&r.alts[0])
		}
		return &brokenInfo{path: []string{r.text}, reason: reason}
	}
	return &brokenInfo{path: append([]string{r.text}, inner.path...), reason: inner.reason}
}

// missing says why nothing in the index matches poss, ignoring the
// selection: the name is absent (or built only for other architectures),
// or no version of it fits.
func (ix *index) missing(poss *dependency.Possibility) string {
	if !ix.qualifierOK(poss) {
		return "architecture " + poss.Arch.String() + " is not " + ix.archName
	}
	real, provs := ix.byName[poss.Name], ix.providers[poss.Name]
	if len(real) == 0 && len(provs) == 0 {
		if archs := ix.otherArch[poss.Name]; len(archs) > 0 {
			return "not in " + ix.origin + " for " + ix.archName + " (only " + strings.Join(archs, ", ") + ")"
		}
		return "not in " + ix.origin
	}
	var has []string
	if len(real) > 0 {
		var vs []string
		for _, c := range real {
			vs = append(vs, c.p.Version.String())
		}
		has = append(has, "has "+list(vs, 4))
	}
	if len(provs) > 0 {
		var ps []string
		for _, c := range provs {
			for _, pv := range c.provides {
				if pv.name != poss.Name {
					continue
				}
				if pv.ver == nil {
					ps = append(ps, c.p.Name+" without a version")
				} else {
					ps = append(ps, c.p.Name+" (= "+pv.ver.String()+")")
				}
			}
		}
		has = append(has, "provided by "+list(slices.Compact(ps), 4))
	}
	return "no such version in " + ix.origin + " (" + strings.Join(has, "; ") + ")"
}

// list joins at most n items, saying how many more there are.
func list(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + " and " + strconv.Itoa(len(items)-n) + " more"
}
