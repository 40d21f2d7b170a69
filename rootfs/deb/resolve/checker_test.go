package resolve

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"keel/rootfs/deb"

	"pault.ag/go/debian/dependency"
	"pault.ag/go/debian/version"
)

// check verifies a result against the index and the requests without the
// resolver's own machinery: the packages come from the index, are
// installable on the architecture, one per name; every request, base
// package and relation is satisfied by the set; nothing conflicts; and
// every package comes after something that satisfies each of its
// Pre-Depends.
func check(idx []*deb.Package, reqs []Request, o Options, res *Result) error {
	if err := checkSet(idx, reqs, o, res.Packages); err != nil {
		return err
	}
	have := names(res.Packages)
	pos := map[*deb.Package]int{}
	for i, p := range res.Packages {
		pos[p] = i
	}
	for i, p := range res.Packages {
		for _, r := range p.PreDepends.Relations {
			alts := applicable(r, o.Arch)
			if len(alts) == 0 {
				continue
			}
			if !slices.ContainsFunc(have.satisfiers(alts, o.Arch), func(q *deb.Package) bool { return pos[q] < i || q == p }) {
				return fmt.Errorf("%s pre-depends on %s, which comes later", p, r)
			}
		}
		if _, ok := res.Reasons[p.Name]; !ok {
			return fmt.Errorf("%s: no reason", p)
		}
	}
	return nil
}

// checkSet is check without the order: is pkgs an installable set?
func checkSet(idx []*deb.Package, reqs []Request, o Options, pkgs []*deb.Package) error {
	inIndex := map[*deb.Package]bool{}
	for _, p := range idx {
		inIndex[p] = true
	}
	byName := map[string]*deb.Package{}
	for _, p := range pkgs {
		if !inIndex[p] {
			return fmt.Errorf("%s is not from the index", p)
		}
		if p.Architecture != o.Arch && p.Architecture != "all" {
			return fmt.Errorf("%s is not installable on %s", p, o.Arch)
		}
		if byName[p.Name] != nil {
			return fmt.Errorf("%s twice", p.Name)
		}
		byName[p.Name] = p
	}
	have := names(pkgs)
	var errs []error
	for _, r := range slices.Concat(reqs, checkBase(idx, o)) {
		poss := dependency.Possibility{Name: r.Name}
		if r.Version != "" {
			poss.Version = &dependency.VersionRelation{Operator: "=", Number: r.Version}
		}
		if len(have.satisfiers([]dependency.Possibility{poss}, o.Arch)) == 0 {
			errs = append(errs, fmt.Errorf("%s: %s not satisfied", r.Why, r))
		}
	}
	for _, p := range pkgs {
		for _, r := range slices.Concat(p.PreDepends.Relations, p.Depends.Relations) {
			alts := applicable(r, o.Arch)
			if len(alts) > 0 && len(have.satisfiers(alts, o.Arch)) == 0 {
				errs = append(errs, fmt.Errorf("%s: %s not satisfied", p, r))
			}
		}
		for _, r := range slices.Concat(p.Conflicts.Relations, p.Breaks.Relations) {
			for _, q := range have.satisfiers(applicable(r, o.Arch), o.Arch) {
				if q.Name != p.Name {
					errs = append(errs, fmt.Errorf("%s conflicts with %s (%s)", p, q, r))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// nameSet finds packages of a set by their names and provided names.
type nameSet map[string][]*deb.Package

func names(pkgs []*deb.Package) nameSet {
	m := nameSet{}
	for _, p := range pkgs {
		m[p.Name] = append(m[p.Name], p)
		for _, pr := range p.Provides.GetAllPossibilities() {
			if !slices.Contains(m[pr.Name], p) {
				m[pr.Name] = append(m[pr.Name], p)
			}
		}
	}
	return m
}

// satisfiers are the packages of the set that satisfy one of alts.
func (m nameSet) satisfiers(alts []dependency.Possibility, arch string) []*deb.Package {
	var out []*deb.Package
	for _, poss := range alts {
		for _, q := range m[poss.Name] {
			if satisfiesAny(q, []dependency.Possibility{poss}, arch) && !slices.Contains(out, q) {
				out = append(out, q)
			}
		}
	}
	return out
}

// checkBase lists the base packages by the rule in Options.Base, from the
// newest version of each name: a name is in the base if any stanza of
// that version is (an index may repeat a version, in any order).
func checkBase(idx []*deb.Package, o Options) []Request {
	newest := map[string][]*deb.Package{}
	for _, p := range idx {
		if p.Architecture != o.Arch && p.Architecture != "all" {
			continue
		}
		switch n := newest[p.Name]; {
		case n == nil || version.Compare(p.Version, n[0].Version) > 0:
			newest[p.Name] = []*deb.Package{p}
		case version.Compare(p.Version, n[0].Version) == 0:
			newest[p.Name] = append(n, p)
		}
	}
	var out []Request
	for name, ps := range newest {
		if o.Base != "" && slices.ContainsFunc(ps, func(p *deb.Package) bool {
			return p.Essential || o.Base != "essential" && p.Priority == "required" || o.Base == "important" && p.Priority == "important"
		}) {
			out = append(out, Request{Name: name, Why: "base"})
		}
	}
	return out
}

func applicable(r dependency.Relation, arch string) []dependency.Possibility {
	var out []dependency.Possibility
	for _, poss := range r.Possibilities {
		if poss.Architectures != nil && len(poss.Architectures.Architectures) > 0 {
			a, _ := dependency.ParseArch(arch)
			if !poss.Architectures.Matches(a) {
				continue
			}
		}
		out = append(out, poss)
	}
	return out
}

// satisfiesAny: does package q satisfy one of the alternatives?
func satisfiesAny(q *deb.Package, alts []dependency.Possibility, arch string) bool {
	for _, poss := range alts {
		if poss.Arch != nil {
			if s := poss.Arch.String(); s != "any" && s != "native" && s != arch {
				continue
			}
		}
		if q.Name == poss.Name && (poss.Version == nil || poss.Version.SatisfiedBy(q.Version)) {
			return true
		}
		for _, pr := range q.Provides.GetAllPossibilities() {
			if pr.Name != poss.Name {
				continue
			}
			if poss.Version == nil {
				return true
			}
			if pr.Version != nil && pr.Version.Operator == "=" {
				if v, err := version.Parse(pr.Version.Number); err == nil && poss.Version.SatisfiedBy(v) {
					return true
				}
			}
		}
	}
	return false
}

// TestCheckerFails proves the checker can fail: each broken result is
// refused.
func TestCheckerFails(t *testing.T) {
	idx := loadFixture(t, "cycles.packages")
	idx = append(idx, loadFixture(t, "conflicts.packages")...)
	get := func(name string) *deb.Package {
		for _, p := range idx {
			if p.Name == name {
				return p
			}
		}
		t.Fatalf("no %s", name)
		return nil
	}
	o := Options{Arch: "amd64"}
	res := func(names ...string) *Result {
		r := &Result{Reasons: map[string]Reason{}}
		for _, n := range names {
			r.Packages = append(r.Packages, get(n))
			r.Reasons[n] = Reason{}
		}
		return r
	}
	for _, tc := range []struct {
		name string
		reqs []string
		res  *Result
		want string
	}{
		{"good", []string{"aapp"}, res("bbb", "zlib", "aapp"), ""},
		{"missing dependency", []string{"aapp"}, res("zlib", "aapp"), "bbb not satisfied"},
		{"missing request", []string{"aapp", "x"}, res("bbb", "zlib", "aapp"), "packages[1]: x not satisfied"},
		{"pre-depends after", []string{"aapp"}, res("bbb", "aapp", "zlib"), "pre-depends on zlib, which comes later"},
		{"conflict", []string{"bar", "libwrap0"}, res("bar", "libwrap0"), "conflicts with bar"},
		{"twice", []string{"bbb"}, res("bbb", "bbb"), "bbb twice"},
		{"not from the index", []string{"bbb"}, &Result{Packages: []*deb.Package{{Name: "bbb", Architecture: "amd64"}}}, "not from the index"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := check(idx, requests(tc.reqs...), o, tc.res)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("check: %v, want an error with %q", err, tc.want)
			}
		})
	}
}
