package deb

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseIndex(t *testing.T) {
	// More stanzas than one batch of the parallel parse: order is kept.
	var b strings.Builder
	for i := range 1300 {
		fmt.Fprintf(&b, "Package: p%04d\nVersion: 1:%d.0~rc1-1\nArchitecture: amd64\nDepends: libc6 (>= 2.36), a | b\nProvides: v (= 1)\nSize: %d\nSHA256: AB%062d\n\n", i, i, i, 0)
	}
	ps, err := ParseIndex(strings.NewReader(b.String()), "bookworm")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1300 {
		t.Fatalf("%d packages", len(ps))
	}
	for i, p := range ps {
		if p.Name != fmt.Sprintf("p%04d", i) || p.Size != int64(i) || p.Origin != "bookworm" {
			t.Fatalf("package %d: %+v", i, p)
		}
	}
	p := ps[7]
	if p.Version.Epoch != 1 || p.Version.String() != "1:7.0~rc1-1" || !strings.HasPrefix(p.SHA256, "ab") ||
		len(p.Depends.Relations) != 2 || len(p.Depends.Relations[1].Possibilities) != 2 || p.Provides.Relations[0].Possibilities[0].Version.Number != "1" {
		t.Errorf("package 7: %+v", p)
	}

	for _, c := range []struct{ name, index, want string }{
		{"no version", "Package: a\nArchitecture: all\n", "stanza 1: a: bad Version"},
		{"bad version", "Package: a\nVersion: 1.0\nArchitecture: all\n\nPackage: b\nVersion: :x\nArchitecture: all\n", "stanza 2: b: bad Version"},
		{"no architecture", "Package: a\nVersion: 1\n", "stanza 1: a: no Architecture"},
		{"no name", "Version: 1\nArchitecture: all\n", "stanza 1: no Package field"},
		{"bad relation", "Package: a\nVersion: 1\nArchitecture: all\nDepends: b (>> \n", "a: bad Depends"},
		{"bad size", "Package: a\nVersion: 1\nArchitecture: all\nSize: -3\n", `a: bad Size "-3"`},
		{"not a stanza", "garbage line\n", "stanza 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseIndex(strings.NewReader(c.index), "x")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}
