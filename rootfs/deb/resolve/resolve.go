// Package resolve chooses the Debian binary packages to install for a
// profile: the requested packages and everything they depend on, from a
// repository's Packages index, in an order dpkg could unpack them.
//
// It behaves like apt with --no-install-recommends installing into an
// empty system of one architecture:
//
//   - Depends and Pre-Depends are followed; Recommends and Suggests are
//     not. Alternatives (a | b), version relations with Debian ordering,
//     virtual packages through Provides (an unversioned Provides does not
//     satisfy a versioned relation; "Provides: foo (= 1.2)" does), the
//     qualifiers :any and :native, and architecture "all" are understood.
//     Only packages of one architecture (and "all") are installed, so
//     "foo:any" is met by the package foo there is, Multi-Arch: allowed
//     or not, and a qualifier naming another architecture is never met.
//   - One version per name. Among several versions (suites merged) the
//     highest is tried first, preferring one that also satisfies the
//     version relations on that name still waiting to be looked at; a
//     request "name=version" must match exactly.
//   - Choices are deterministic. A relation already satisfied by the
//     selection stays so (an alternative or provider already selected
//     wins). Otherwise the alternatives are tried in the order written,
//     as apt does; for each, the real package (highest version first),
//     then its providers by Priority (required, important, standard,
//     optional, extra, then none) and by name.
//   - Conflicts and Breaks, direct, versioned or through a provided name,
//     are never violated; a package never conflicts with itself (Conflicts
//     on a virtual package it provides is how Debian says "only one
//     provider"). A candidate that would conflict with the selection is
//     passed over for the next.
//
// The search takes relations in the order they are met (the requests,
// then breadth-first through what they pull in) and backtracks
// chronologically: every choice among alternatives, providers and versions
// is remembered, and when a relation cannot be satisfied the latest choice
// with options left is revised. That is complete (if some set of packages
// satisfies every request and relation, it is found) but can be
// exponential on adversarial indexes, so it gives up after 100,000
// selections (a real resolution makes about one per package and rarely
// revises any) and then reports the first problem it met. It finds a
// solution, not the smallest: when "a | b" was met by a and a later
// relation needs b, both stay, as with apt. Candidates that can never be
// installed because a dependency is missing from the index altogether are
// ruled out before the search, which keeps real indexes free of
// backtracking. Dependency cycles are fine; a Pre-Depends cycle cannot be
// unpacked and is an error.
package resolve

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"keel/rootfs/deb"

	"pault.ag/go/debian/dependency"
	"pault.ag/go/debian/version"
)

// Request asks for one package.
type Request struct {
	Name    string // package or virtual package name
	Version string // "" or an exact version
	Why     string // where the request comes from, for messages: "packages[3]"
}

// String is "name" or "name=version", as a profile writes it.
func (r Request) String() string {
	if r.Version != "" {
		return r.Name + "=" + r.Version
	}
	return r.Name
}

// Options say what the requests are resolved against.
type Options struct {
	// Arch is the build's architecture ("amd64"): packages of it and of
	// "all" are installable.
	Arch string
	// Base adds a base system to the requests, as mmdebstrap's variants:
	// "essential" (every Essential: yes package), "required" (those and
	// every Priority: required), "important" (and Priority: important), or
	// "" for nothing.
	Base string
	// Origin names the index in messages ("bookworm").
	Origin string
	Logger *slog.Logger

	budget int // selections tried before giving up; 0: maxChoices
}

// maxChoices bounds the search: real resolutions need a few hundred
// selections, one per package, and rarely revise any.
const maxChoices = 100_000

// bases are the values of Options.Base.
var bases = []string{"", "essential", "required", "important"}

// Result is what to install.
type Result struct {
	// Packages in unpack order: every package after what it pre-depends
	// on, and after what it depends on except where a dependency cycle
	// had to be broken; ties by name.
	Packages []*deb.Package
	// Reasons say, by package name, why each package is there.
	Reasons map[string]Reason
}

// Reason is why a package was selected.
type Reason struct {
	Request  string // Why of the request it serves, directly or not
	Parent   string // package whose relation pulled it in; "" when requested
	Relation string // that relation as written, or the request ("name=version")
}

// Why is the chain from the request to the package,
// "packages[0]: openssh-server → libssl3 → libc6"; "" for a package not
// in the result.
func (r *Result) Why(name string) string {
	var chain []string
	for n := name; len(chain) <= len(r.Reasons); {
		reason, ok := r.Reasons[n]
		if !ok {
			return ""
		}
		chain = append(chain, n)
		if reason.Parent == "" {
			slices.Reverse(chain)
			return reason.Request + ": " + strings.Join(chain, " → ")
		}
		n = reason.Parent
	}
	return ""
}

// UnsatError is a request that cannot be satisfied, with the chain of
// relations that leads from it to the problem.
type UnsatError struct {
	Request string   // Why of the request
	Path    []string // the request, the packages it pulls in, the relation that fails
	Reason  string   // why that relation fails
	// Tries is how many selections the search made; when GaveUp, it
	// stopped at its bound rather than after trying everything, and
	// Reason is the first problem it met.
	Tries  int
	GaveUp bool
}

func (e *UnsatError) Error() string {
	s := e.Request + ": " + strings.Join(e.Path, " → ") + ": " + e.Reason
	if e.GaveUp {
		s += fmt.Sprintf(" (gave up after %d choices)", e.Tries)
	}
	return s
}

// Resolve chooses the packages to install for reqs from index. An
// unsatisfiable request is an *UnsatError.
func Resolve(index []*deb.Package, reqs []Request, o Options) (*Result, error) {
	if o.Arch == "" {
		return nil, errors.New("resolve: no architecture")
	}
	if !slices.Contains(bases, o.Base) {
		return nil, fmt.Errorf("resolve: unknown base %q (known: essential, required, important)", o.Base)
	}
	if o.Origin == "" {
		o.Origin = "the index"
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ix, err := newIndex(index, o.Arch, o.Origin)
	if err != nil {
		return nil, fmt.Errorf("resolve: architecture %q: %w", o.Arch, err)
	}
	reqs = append(slices.Clip(reqs), baseRequests(ix, o.Base)...)
	s := &solver{
		ix:        ix,
		reqs:      reqs,
		log:       log,
		budget:    o.budget,
		sel:       map[string]*cand{},
		provided:  map[string][]*cand{},
		against:   map[string][]against{},
		picks:     map[string]pick{},
		versioned: map[string][]int{},
	}
	if s.budget <= 0 {
		s.budget = maxChoices
	}
	for i, r := range reqs {
		if r.Name == "" {
			return nil, fmt.Errorf("%s: no package name", r.Why)
		}
		poss := dependency.Possibility{Name: r.Name}
		if r.Version != "" {
			if _, err := version.Parse(r.Version); err != nil {
				return nil, fmt.Errorf("%s: %s: bad version: %w", r.Why, r, err)
			}
			poss.Version = &dependency.VersionRelation{Operator: "=", Number: r.Version}
		}
		s.enqueue(obligation{req: i, rel: relation{text: r.String(), alts: []dependency.Possibility{poss}}})
	}
	if err := s.solve(); err != nil {
		return nil, err
	}
	pkgs, err := s.order()
	if err != nil {
		return nil, err
	}
	res := &Result{Reasons: map[string]Reason{}}
	for _, c := range pkgs {
		res.Packages = append(res.Packages, c.p)
		pk := s.picks[c.p.Name]
		r := Reason{Request: reqs[pk.req].Why, Relation: pk.rel}
		if pk.owner != nil {
			r.Parent = pk.owner.p.Name
		}
		res.Reasons[c.p.Name] = r
	}
	log.Debug("resolved", "requests", len(reqs), "packages", len(pkgs), "choices", s.tries)
	return res, nil
}

// baseRequests are the packages of a base variant, by name.
func baseRequests(ix *index, base string) []Request {
	if base == "" {
		return nil
	}
	var names []string
	for name, cs := range ix.byName {
		// The newest version decides. An index that reuses it (two stanzas
		// of one version, which only a hand-made one has) puts the name in
		// the base if any of them would: taking the first, in the order
		// byVersionDesc settles such ties in, left out an Essential one.
		for _, c := range cs {
			p := c.p
			if version.Compare(p.Version, cs[0].p.Version) != 0 {
				break
			}
			if p.Essential ||
				(base != "essential" && p.Priority == "required") ||
				(base == "important" && p.Priority == "important") {
				names = append(names, name)
				break
			}
		}
	}
	slices.Sort(names)
	reqs := make([]Request, len(names))
	for i, n := range names {
		reqs[i] = Request{Name: n, Why: "base: " + base}
	}
	return reqs
}

// solver holds the search state. The selection only grows between
// backtracks; everything added is recorded on the trail so that a
// backtrack can take it off again in reverse order.
type solver struct {
	ix     *index
	reqs   []Request
	log    *slog.Logger
	budget int

	sel       map[string]*cand     // by name
	provided  map[string][]*cand   // selected providers by provided name
	against   map[string][]against // selected packages' Conflicts/Breaks by the name they name
	picks     map[string]pick      // why each selected package was chosen
	trail     []*cand              // selection order
	queue     []obligation         // relations to satisfy, in the order met
	stack     []choice             // choices with options left
	versioned map[string][]int     // queue positions of one-alternative versioned relations, by name
	first     *UnsatError          // the first problem met, reported if nothing works
	tries     int
}

// obligation is a relation of a selected package (owner), or a request
// (owner nil); req is the request it serves.
type obligation struct {
	owner *cand
	req   int
	rel   relation
}

type pick struct {
	owner *cand
	req   int
	rel   string
}

type against struct {
	by *cand
	conflict
}

// choice is a point where the search chose among several candidates and
// can come back to take the next.
type choice struct {
	ob           int // obligation index
	trail, queue int // lengths to go back to
	opts         []*cand
	next         int
}

func (s *solver) solve() error {
	for head := 0; head < len(s.queue); head++ {
		ob := s.queue[head]
		if s.satisfied(ob.rel) {
			continue
		}
		opts, fails := s.options(head)
		if len(opts) > 0 {
			if len(opts) > 1 {
				s.stack = append(s.stack, choice{ob: head, trail: len(s.trail), queue: len(s.queue), opts: opts, next: 1})
			}
			s.choose(opts[0], ob)
			continue
		}
		if s.first == nil {
			s.first = s.explain(ob, fails)
		}
		var ok bool
		if head, ok = s.backtrack(); !ok {
			s.first.Tries = s.tries
			return s.first
		}
	}
	return nil
}

// backtrack revises the latest choice with options left and returns the
// obligation the search continues after.
func (s *solver) backtrack() (int, bool) {
	for len(s.stack) > 0 {
		if s.tries >= s.budget {
			s.first.GaveUp = true
			return 0, false
		}
		ch := &s.stack[len(s.stack)-1]
		s.undo(ch.trail)
		s.dequeue(ch.queue)
		if ch.next < len(ch.opts) {
			c := ch.opts[ch.next]
			ch.next++
			ob := s.queue[ch.ob]
			s.log.Debug("resolve: trying another choice", "relation", ob.rel.text, "package", c.p.String())
			s.choose(c, ob)
			return ch.ob, true
		}
		s.stack = s.stack[:len(s.stack)-1]
	}
	return 0, false
}

func (s *solver) choose(c *cand, ob obligation) {
	s.ix.ready(c)
	s.tries++
	name := c.p.Name
	s.sel[name] = c
	for _, n := range c.provNames {
		s.provided[n] = append(s.provided[n], c)
	}
	for _, cf := range c.conflicts {
		s.against[cf.poss.Name] = append(s.against[cf.poss.Name], against{c, cf})
	}
	s.picks[name] = pick{owner: ob.owner, req: ob.req, rel: ob.rel.text}
	s.trail = append(s.trail, c)
	for _, r := range c.pre {
		s.enqueue(obligation{owner: c, req: ob.req, rel: r})
	}
	for _, r := range c.deps {
		s.enqueue(obligation{owner: c, req: ob.req, rel: r})
	}
}

func (s *solver) enqueue(ob obligation) {
	if a := ob.rel.alts; len(a) == 1 && a[0].Version != nil {
		s.versioned[a[0].Name] = append(s.versioned[a[0].Name], len(s.queue))
	}
	s.queue = append(s.queue, ob)
}

// dequeue shortens the queue to n obligations.
func (s *solver) dequeue(n int) {
	for i := len(s.queue) - 1; i >= n; i-- {
		if a := s.queue[i].rel.alts; len(a) == 1 && a[0].Version != nil {
			v := s.versioned[a[0].Name]
			s.versioned[a[0].Name] = v[:len(v)-1]
		}
	}
	s.queue = s.queue[:n]
}

// undo takes selections off the trail down to length n. Lists were
// appended to in trail order, so each entry to remove is the last one.
func (s *solver) undo(n int) {
	for len(s.trail) > n {
		c := s.trail[len(s.trail)-1]
		s.trail = s.trail[:len(s.trail)-1]
		delete(s.sel, c.p.Name)
		delete(s.picks, c.p.Name)
		for _, n := range c.provNames {
			s.provided[n] = s.provided[n][:len(s.provided[n])-1]
		}
		for i := len(c.conflicts) - 1; i >= 0; i-- {
			n := c.conflicts[i].poss.Name
			s.against[n] = s.against[n][:len(s.against[n])-1]
		}
	}
}

func (s *solver) satisfied(r relation) bool {
	for i := range r.alts {
		if s.satisfier(&r.alts[i]) != nil {
			return true
		}
	}
	return false
}

// satisfier is a selected package that satisfies poss, the real package
// before providers, providers by name.
func (s *solver) satisfier(poss *dependency.Possibility) *cand {
	if !s.ix.qualifierOK(poss) {
		return nil
	}
	if c := s.sel[poss.Name]; c != nil && versionOK(poss, c.p.Version) {
		return c
	}
	var best *cand
	for _, c := range s.provided[poss.Name] {
		if provides(c, poss) && (best == nil || c.p.Name < best.p.Name) {
			best = c
		}
	}
	return best
}

// failure says why one alternative of a relation has no candidate: about
// the alternative itself (cand false: "not in bookworm"), or about each
// candidate that was passed over (cand true: full sentences naming it).
type failure struct {
	name   string
	cand   bool
	texts  []string
	broken *brokenInfo // when the one candidate of that name can never be installed
}

// options lists the candidates that could satisfy the relation at head,
// best first, and why the others cannot.
func (s *solver) options(head int) ([]*cand, []failure) {
	rel := s.queue[head].rel
	var opts []*cand
	var fails []failure
	for i := range rel.alts {
		poss := &rel.alts[i]
		f := failure{name: poss.Name, cand: true}
		found := false // some candidate matched name, version and arch
		if s.ix.qualifierOK(poss) {
			var real []*cand
			for _, c := range s.ix.byName[poss.Name] {
				if versionOK(poss, c.p.Version) {
					real = append(real, c)
				}
			}
			if sel := s.sel[poss.Name]; sel != nil && len(real) > 0 {
				found = true
				f.texts = append(f.texts, fmt.Sprintf("%s %s is already selected (by %s)", sel.p.Name, sel.p.Version, s.selectedBy(sel)))
				real = nil
			}
			for _, c := range s.preferSeen(poss.Name, real, head) {
				found = true
				if s.consider(c, &f) {
					opts = append(opts, c)
				}
			}
			for _, c := range s.ix.providers[poss.Name] {
				if !provides(c, poss) {
					continue
				}
				found = true
				if sel := s.sel[c.p.Name]; sel != nil {
					if sel != c {
						f.texts = append(f.texts, fmt.Sprintf("%s %s is already selected (by %s), not %s", sel.p.Name, sel.p.Version, s.selectedBy(sel), c.p.Version))
					}
					continue
				}
				if s.consider(c, &f) {
					opts = append(opts, c)
				}
			}
		}
		if !found {
			f = failure{name: poss.Name, texts: []string{s.ix.missing(poss)}}
		}
		fails = append(fails, f)
	}
	// A package can be met through two alternatives; keep its first place.
	seen := map[*cand]bool{}
	opts = slices.DeleteFunc(opts, func(c *cand) bool {
		if seen[c] {
			return true
		}
		seen[c] = true
		return false
	})
	return opts, fails
}

// consider reports whether c can join the selection, noting in f why
// not.
func (s *solver) consider(c *cand, f *failure) bool {
	s.ix.ready(c)
	if b := s.ix.brokenOf(c); b != nil {
		if f.broken == nil && c.p.Name == f.name {
			f.broken = b
		}
		f.texts = append(f.texts, c.p.Name+" → "+strings.Join(b.path, " → ")+": "+b.reason)
		return false
	}
	if why := s.conflicts(c); why != "" {
		f.texts = append(f.texts, why)
		return false
	}
	return true
}

// preferSeen moves the versions that also satisfy the version relations
// on name still queued after head to the front, so that the highest
// version every known relation accepts is tried first.
func (s *solver) preferSeen(name string, cs []*cand, head int) []*cand {
	if len(cs) < 2 {
		return cs
	}
	var rels []*dependency.VersionRelation
	pos := s.versioned[name]
	for i := len(pos) - 1; i >= 0 && pos[i] > head; i-- {
		rels = append(rels, s.queue[pos[i]].rel.alts[0].Version)
	}
	if len(rels) == 0 {
		return cs
	}
	fits := func(c *cand) bool {
		for _, r := range rels {
			if !r.SatisfiedBy(c.p.Version) {
				return false
			}
		}
		return true
	}
	var good, rest []*cand
	for _, c := range cs {
		if fits(c) {
			good = append(good, c)
		} else {
			rest = append(rest, c)
		}
	}
	return append(good, rest...)
}

// conflicts says how c would conflict with the selection, or "".
func (s *solver) conflicts(c *cand) string {
	verb := func(cf conflict) string {
		if cf.breaks {
			return "breaks"
		}
		return "conflicts with"
	}
	// What c conflicts with.
	for i := range c.conflicts {
		cf := c.conflicts[i]
		if q := s.sel[cf.poss.Name]; q != nil && q.p.Name != c.p.Name && versionOK(&cf.poss, q.p.Version) {
			return fmt.Sprintf("%s %s %s (selected by %s)", c.p.Name, verb(cf), q.p.Name, s.selectedBy(q))
		}
		for _, q := range s.provided[cf.poss.Name] {
			if q.p.Name != c.p.Name && provides(q, &cf.poss) {
				return fmt.Sprintf("%s %s %s (provided by %s, selected by %s)", c.p.Name, verb(cf), cf.poss.Name, q.p.Name, s.selectedBy(q))
			}
		}
	}
	// What conflicts with c, by its name or a name it provides.
	for _, a := range s.against[c.p.Name] {
		if a.by.p.Name != c.p.Name && versionOK(&a.poss, c.p.Version) {
			return fmt.Sprintf("%s (selected by %s) %s %s", a.by.p.Name, s.selectedBy(a.by), verb(a.conflict), c.p.Name)
		}
	}
	for _, n := range c.provNames {
		for _, a := range s.against[n] {
			if a.by.p.Name != c.p.Name && provides(c, &a.poss) {
				return fmt.Sprintf("%s (selected by %s) %s %s, which %s provides", a.by.p.Name, s.selectedBy(a.by), verb(a.conflict), n, c.p.Name)
			}
		}
	}
	return ""
}

// selectedBy names who selected c: a request ("packages[0]") or the
// package that pulled it in.
func (s *solver) selectedBy(c *cand) string {
	pk := s.picks[c.p.Name]
	if pk.owner == nil {
		return s.reqs[pk.req].Why
	}
	return pk.owner.p.Name
}

// explain turns the failures of an obligation's alternatives into an
// error showing the chain from the request.
func (s *solver) explain(ob obligation, fails []failure) *UnsatError {
	req := s.reqs[ob.req]
	e := &UnsatError{Request: req.Why, Path: []string{req.String()}}
	var chain []string
	for c := ob.owner; c != nil; c = s.picks[c.p.Name].owner {
		chain = append(chain, c.p.Name)
		if len(chain) > len(s.trail) {
			break // cannot happen: owners are selected before what they pull in
		}
	}
	slices.Reverse(chain)
	if len(chain) > 0 && chain[0] == req.Name {
		chain = chain[1:]
	}
	e.Path = append(e.Path, chain...)
	if ob.owner != nil {
		e.Path = append(e.Path, ob.rel.text)
	}
	for i := range fails {
		fails[i].texts = slices.Compact(fails[i].texts)
	}
	if len(fails) == 1 {
		f := fails[0]
		if f.broken != nil && len(f.texts) == 1 {
			// "libwrap0 → libnsl2 (>= 1.0): not in bookworm" reads as
			// part of the chain.
			e.Path = append(e.Path, f.broken.path...)
			e.Reason = f.broken.reason
			return e
		}
		e.Reason = list(f.texts, 3)
		return e
	}
	parts := make([]string, len(fails))
	for i, f := range fails {
		if f.cand {
			parts[i] = list(f.texts, 3)
		} else {
			parts[i] = f.name + ": " + strings.Join(f.texts, ", ")
		}
	}
	e.Reason = "none of them can be installed: "
	if len(fails) == 2 {
		e.Reason = "neither can be installed: "
	}
	e.Reason += strings.Join(parts, "; ")
	return e
}
