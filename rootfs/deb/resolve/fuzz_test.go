package resolve

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"keel/rootfs/deb"
)

// bytesource hands out fuzz input a byte at a time, then zeros.
type bytesource []byte

func (b *bytesource) next(n int) int {
	if len(*b) == 0 {
		return 0
	}
	v := (*b)[0]
	*b = (*b)[1:]
	return int(v) % n
}

// fuzzIndex builds a small Packages index from fuzz input: up to eight
// packages over six names and two virtual names, with every kind of
// relation, then parses it like a real one.
func fuzzIndex(src *bytesource) (string, []string, string) {
	names := []string{"a", "b", "c", "d", "e", "f"}
	virtuals := []string{"v", "w"}
	versions := []string{"1.0", "1:0.9", "1.0~rc1", "2.0-1"}
	ops := []string{"<<", "<=", "=", ">=", ">>"}
	poss := func() string {
		s := ""
		if src.next(4) == 0 {
			s = virtuals[src.next(2)]
		} else {
			s = names[src.next(len(names))]
		}
		switch src.next(6) {
		case 0:
			s += ":any"
		case 1:
			s += ":native"
		}
		if src.next(3) == 0 {
			s += fmt.Sprintf(" (%s %s)", ops[src.next(len(ops))], versions[src.next(len(versions))])
		}
		return s
	}
	field := func(max, alts int) string {
		var rels []string
		for range src.next(max + 1) {
			var ps []string
			for range 1 + src.next(alts) {
				ps = append(ps, poss())
			}
			rels = append(rels, strings.Join(ps, " | "))
		}
		return strings.Join(rels, ", ")
	}
	var b strings.Builder
	for range 1 + src.next(8) {
		fmt.Fprintf(&b, "Package: %s\nVersion: %s\n", names[src.next(len(names))], versions[src.next(len(versions))])
		fmt.Fprintf(&b, "Architecture: %s\n", []string{"amd64", "amd64", "all", "arm64"}[src.next(4)])
		if ma := []string{"", "", "same", "foreign", "allowed"}[src.next(5)]; ma != "" {
			fmt.Fprintf(&b, "Multi-Arch: %s\n", ma)
		}
		fmt.Fprintf(&b, "Priority: %s\n", []string{"required", "important", "standard", "optional", "extra"}[src.next(5)])
		if src.next(4) == 0 {
			b.WriteString("Essential: yes\n")
		}
		for _, f := range []struct {
			name      string
			max, alts int
		}{{"Depends", 2, 3}, {"Pre-Depends", 1, 2}, {"Conflicts", 1, 1}, {"Breaks", 1, 1}} {
			if s := field(f.max, f.alts); s != "" {
				fmt.Fprintf(&b, "%s: %s\n", f.name, s)
			}
		}
		if src.next(3) == 0 {
			v := virtuals[src.next(2)]
			if src.next(2) == 0 {
				v += " (= " + versions[src.next(len(versions))] + ")"
			}
			fmt.Fprintf(&b, "Provides: %s\n", v)
		}
		b.WriteString("\n")
	}
	var reqs []string
	for range 1 + src.next(3) {
		r := append(names, virtuals...)[src.next(len(names)+len(virtuals))]
		if src.next(4) == 0 {
			r += "=" + versions[src.next(len(versions))]
		}
		reqs = append(reqs, r)
	}
	return b.String(), reqs, bases[src.next(len(bases))]
}

// FuzzResolve resolves random small indexes: Resolve never panics, every
// result passes check, and when it says a request cannot be satisfied, no
// set of packages from the index satisfies it either (found by trying
// every subset).
func FuzzResolve(f *testing.F) {
	for _, seed := range []string{
		"",
		"\x07\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f",
		"\x03\x00\x00\x02\x00\x00\x01\x01\x00\x00\x00\x00\x01\x00\x01\x00\x00\x01\x00\x02\x00\x00\x00\x00\x01\x00\x02",
		strings.Repeat("\x05\x01", 40),
		strings.Repeat("\x07\x03\x02", 40),
		strings.Repeat("\xff\x10\x21\x32\x43", 30),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		src := bytesource(data)
		text, specs, base := fuzzIndex(&src)
		idx, err := deb.ParseIndex(strings.NewReader(text), "fuzz")
		if err != nil {
			t.Fatalf("generated index does not parse: %v\n%s", err, text)
		}
		reqs := requests(specs...)
		o := Options{Arch: "amd64", Base: base, Origin: "fuzz"}
		res, err := Resolve(idx, reqs, o)
		var ue *UnsatError
		switch {
		case err == nil:
			if err := check(idx, reqs, o, res); err != nil {
				t.Fatalf("%v\nrequests %v base %q\n%s", err, specs, base, text)
			}
		case errors.As(err, &ue):
			if ue.GaveUp {
				t.Fatalf("gave up on a tiny index: %v\n%s", err, text)
			}
			if set := bruteForce(idx, reqs, o); set != nil {
				t.Fatalf("%v, but %v is a solution\nrequests %v base %q\n%s", err, set, specs, base, text)
			}
		case strings.Contains(err.Error(), "pre-dependency cycle"):
		default:
			t.Fatalf("unexpected error %v\n%s", err, text)
		}
	})
}

// bruteForce tries every subset of the index and returns one that
// checkSet accepts, or nil.
func bruteForce(idx []*deb.Package, reqs []Request, o Options) []*deb.Package {
	if len(idx) > 12 {
		return nil
	}
	for mask := 0; mask < 1<<len(idx); mask++ {
		var set []*deb.Package
		for i, p := range idx {
			if mask&(1<<i) != 0 {
				set = append(set, p)
			}
		}
		if checkSet(idx, reqs, o, set) == nil {
			return set
		}
	}
	return nil
}
