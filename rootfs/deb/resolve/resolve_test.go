package resolve

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"keel/rootfs/deb"
)

func loadFixture(t testing.TB, name string) []*deb.Package {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	idx, err := deb.ParseIndex(f, "bookworm")
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return idx
}

// requests turns "name" and "name=version" into requests from
// packages[i].
func requests(specs ...string) []Request {
	reqs := make([]Request, len(specs))
	for i, s := range specs {
		name, ver, _ := strings.Cut(s, "=")
		reqs[i] = Request{Name: name, Version: ver, Why: fmt.Sprintf("packages[%d]", i)}
	}
	return reqs
}

// listed lists a result as want does: "name", or "name=version" where
// want has a version.
func listed(pkgs []*deb.Package, want []string) []string {
	out := make([]string, len(pkgs))
	for i, p := range pkgs {
		out[i] = p.Name
		if i < len(want) && strings.Contains(want[i], "=") {
			out[i] += "=" + p.Version.String()
		}
	}
	return out
}

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fixture string
		reqs    []string
		base    string
		want    []string // in unpack order
		wantErr string   // the whole message
	}{
		// Alternatives.
		{name: "first alternative", fixture: "alternatives.packages", reqs: []string{"app1"}, want: []string{"liba", "app1"}},
		{name: "selected alternative wins", fixture: "alternatives.packages", reqs: []string{"libb", "app1"}, want: []string{"libb", "app1"}},
		{name: "missing alternative skipped", fixture: "alternatives.packages", reqs: []string{"app2"}, want: []string{"libb", "app2"}},
		{name: "uninstallable alternative skipped", fixture: "alternatives.packages", reqs: []string{"app3"}, want: []string{"libb", "app3"}},
		{name: "alternative of the wrong version skipped", fixture: "alternatives.packages", reqs: []string{"app4"}, want: []string{"libb", "app4"}},
		{name: "request alone", fixture: "alternatives.packages", reqs: []string{"liba"}, want: []string{"liba"}},

		// Virtual packages.
		{name: "single provider", fixture: "virtual.packages", reqs: []string{"editor-user"}, want: []string{"nano", "editor-user"}},
		{name: "provider by priority", fixture: "virtual.packages", reqs: []string{"mailer"}, want: []string{"exim", "mailer"}},
		{name: "providers of one priority by name", fixture: "virtual.packages", reqs: []string{"awk-user"}, want: []string{"gawk", "awk-user"}},
		{name: "selected provider wins", fixture: "virtual.packages", reqs: []string{"postfix", "mailer"}, want: []string{"postfix", "mailer"}},
		{name: "selected provider wins even when requested later", fixture: "virtual.packages", reqs: []string{"mailer", "mawk", "awk-user"}, want: []string{"exim", "mailer", "mawk", "awk-user"}},
		{name: "virtual requested", fixture: "virtual.packages", reqs: []string{"mail-transport-agent"}, want: []string{"exim"}},
		{name: "versioned provides", fixture: "virtual.packages", reqs: []string{"needs-api2"}, want: []string{"foo-two", "needs-api2"}},
		{
			name: "unversioned provides do not satisfy a versioned relation", fixture: "virtual.packages", reqs: []string{"needs-api3"},
			wantErr: "packages[0]: needs-api3 → libfoo-api (>= 3): no such version in bookworm (provided by foo-any without a version, foo-one (= 1), foo-two (= 2))",
		},
		{name: "conflicts with own virtual is no conflict", fixture: "virtual.packages", reqs: []string{"exim"}, want: []string{"exim"}},
		{
			name: "one provider of a conflicting virtual", fixture: "virtual.packages", reqs: []string{"postfix", "exim"},
			wantErr: "packages[1]: exim: exim conflicts with mail-transport-agent (provided by postfix, selected by packages[0])",
		},

		// Versions.
		{name: "epoch wins over a higher version", fixture: "versions.packages", reqs: []string{"epo"}, want: []string{"epo=1:1.0"}},
		{name: "release above its candidate", fixture: "versions.packages", reqs: []string{"wants-final"}, want: []string{"tilde=1.0", "wants-final"}},
		{name: "candidate below its release", fixture: "versions.packages", reqs: []string{"wants-rc"}, want: []string{"tilde=1.0~rc1", "wants-rc"}},
		{name: "highest version", fixture: "versions.packages", reqs: []string{"lib"}, want: []string{"lib=2.0-1"}},
		{name: "<<", fixture: "versions.packages", reqs: []string{"lt"}, want: []string{"lib=1.0-1", "lt"}},
		{name: "<=", fixture: "versions.packages", reqs: []string{"le"}, want: []string{"lib=1.5-1", "le"}},
		{name: "=", fixture: "versions.packages", reqs: []string{"eq"}, want: []string{"lib=1.0-1", "eq"}},
		{name: ">=", fixture: "versions.packages", reqs: []string{"ge"}, want: []string{"lib=2.0-1", "ge"}},
		{name: ">>", fixture: "versions.packages", reqs: []string{"gt"}, want: []string{"lib=2.0-1", "gt"}},
		{name: "highest version every relation seen accepts", fixture: "versions.packages", reqs: []string{"wants-any", "wants-old"}, want: []string{"lib=1.5-1", "wants-any", "wants-old"}},
		{name: "version revised when a later relation rules it out", fixture: "versions.packages", reqs: []string{"wants-any", "indirect"}, want: []string{"lib=1.5-1", "wants-any", "wants-old", "indirect"}},
		{name: "pin", fixture: "versions.packages", reqs: []string{"lib=1.0-1", "wants-any"}, want: []string{"lib=1.0-1", "wants-any"}},
		{name: "pin with epoch", fixture: "versions.packages", reqs: []string{"epo=2.0"}, want: []string{"epo=2.0"}},
		{
			name: "pin of a missing version", fixture: "versions.packages", reqs: []string{"epo", "lt", "lib=9.9"},
			wantErr: "packages[2]: lib=9.9: no such version in bookworm (has 2.0-1, 1.5-1, 1.0-1)",
		},
		{
			name: "pin against a relation", fixture: "versions.packages", reqs: []string{"lib=1.0-1", "needs-new"},
			wantErr: "packages[1]: needs-new → lib (>= 2.0): lib 1.0-1 is already selected (by packages[0])",
		},
		{
			name: "two relations no version meets", fixture: "versions.packages", reqs: []string{"needs-new", "wants-old"},
			wantErr: "packages[1]: wants-old → lib (<< 2.0): lib 2.0-1 is already selected (by needs-new)",
		},

		// Architectures.
		{name: ":any on Multi-Arch: allowed", fixture: "arch.packages", reqs: []string{"pytool"}, want: []string{"python3", "pytool"}},
		{name: ":any and :native on the package itself", fixture: "arch.packages", reqs: []string{"plain-user"}, want: []string{"native-lib", "plain", "plain-user"}},
		{name: "Multi-Arch: foreign", fixture: "arch.packages", reqs: []string{"perl-user"}, want: []string{"perl-base", "perl-user"}},
		{name: "other architecture's newer version ignored", fixture: "arch.packages", reqs: []string{"libz"}, want: []string{"libz=1:1.2.13"}},
		{name: "architecture restriction", fixture: "arch.packages", reqs: []string{"restricted"}, want: []string{"libz", "restricted"}},
		{name: "only another architecture", fixture: "arch.packages", reqs: []string{"only-arm"}, wantErr: "packages[0]: only-arm: not in bookworm for amd64 (only arm64)"},
		{name: "qualifier of another architecture", fixture: "arch.packages", reqs: []string{"wants-i386"}, wantErr: "packages[0]: wants-i386 → libz:i386: architecture i386 is not amd64"},

		// Cycles and order.
		{name: "dependency cycle", fixture: "cycles.packages", reqs: []string{"libc6"}, want: []string{"gcc-12-base", "libc6", "libgcc-s1"}},
		{name: "dependency cycle from the other side", fixture: "cycles.packages", reqs: []string{"libgcc-s1"}, want: []string{"gcc-12-base", "libc6", "libgcc-s1"}},
		{name: "pre-depends before dependants", fixture: "cycles.packages", reqs: []string{"aapp"}, want: []string{"bbb", "zlib", "aapp"}},
		{name: "cycle broken at depends", fixture: "cycles.packages", reqs: []string{"x"}, want: []string{"y", "x"}},
		{name: "pre-depends cycle", fixture: "cycles.packages", reqs: []string{"p2"}, wantErr: "resolve: pre-dependency cycle: p1 → p2 → p1"},

		// Conflicts and Breaks.
		{name: "conflicting alternative passed over", fixture: "conflicts.packages", reqs: []string{"bar", "app"}, want: []string{"bar", "libalt", "app"}},
		{name: "backtrack when a later package conflicts", fixture: "conflicts.packages", reqs: []string{"app", "tool"}, want: []string{"blocker", "libalt", "app", "tool"}},
		{name: "versioned breaks passed over", fixture: "conflicts.packages", reqs: []string{"old-user=1.0", "lib-user"}, want: []string{"old-user=1.0", "other-lib", "lib-user"}},
		{name: "versioned breaks not hit", fixture: "conflicts.packages", reqs: []string{"old-user", "lib-user"}, want: []string{"new-lib", "lib-user", "old-user=2.0"}},
		{name: "versioned conflicts not hit", fixture: "conflicts.packages", reqs: []string{"harmless", "old-user"}, want: []string{"harmless", "old-user"}},
		{
			name: "conflict explained", fixture: "conflicts.packages", reqs: []string{"bar", "openssh-server"},
			wantErr: "packages[1]: openssh-server → libwrap0 | libfoo: neither can be installed: libwrap0 conflicts with bar (selected by packages[0]); libfoo: not in bookworm",
		},
		{
			name: "conflict from the selection explained", fixture: "conflicts.packages", reqs: []string{"tool", "openssh-server"},
			wantErr: "packages[1]: openssh-server → libwrap0 | libfoo: neither can be installed: blocker (selected by tool) conflicts with libwrap0; libfoo: not in bookworm",
		},

		// Unsatisfiable chains.
		{name: "missing dependency", fixture: "unsat.packages", reqs: []string{"openssh-server"}, wantErr: "packages[0]: openssh-server → libssl3 (>= 3.0.9): not in bookworm"},
		{name: "too old dependency", fixture: "unsat.packages", reqs: []string{"openssh-client"}, wantErr: "packages[0]: openssh-client → libcrypt (>= 3.0.9): no such version in bookworm (has 3.0.8-1)"},
		{name: "missing request", fixture: "unsat.packages", reqs: []string{"nosuch"}, wantErr: "packages[0]: nosuch: not in bookworm"},
		{name: "deep chain", fixture: "unsat.packages", reqs: []string{"wants-newer", "nginx"}, wantErr: "packages[1]: nginx → nginx-common → libdeep → libdeeper (>= 2): no such version in bookworm (has 1.5, 1.0)"},
		{name: "virtual whose provider cannot be installed", fixture: "unsat.packages", reqs: []string{"mail-transport-agent"}, wantErr: "packages[0]: mail-transport-agent: exim → libdb5: not in bookworm"},

		// Base systems.
		{name: "no base", fixture: "base.packages", reqs: []string{"busybox-static"}, want: []string{"busybox-static"}},
		{name: "base essential", fixture: "base.packages", reqs: []string{"busybox-static"}, base: "essential", want: []string{"busybox-static", "libc6", "base-files"}},
		{name: "base required", fixture: "base.packages", reqs: []string{"busybox-static"}, base: "required", want: []string{"busybox-static", "libc6", "base-files", "mawk"}},
		{name: "base important", fixture: "base.packages", base: "important", want: []string{"iproute2", "libc6", "base-files", "mawk"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idx := loadFixture(t, tc.fixture)
			reqs := requests(tc.reqs...)
			o := Options{Arch: "amd64", Base: tc.base, Origin: "bookworm"}
			res, err := Resolve(idx, reqs, o)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("resolved %v, want error %q", listed(res.Packages, nil), tc.wantErr)
				}
				if err.Error() != tc.wantErr {
					t.Fatalf("error\n got %q\nwant %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := listed(res.Packages, tc.want); !slices.Equal(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
			if err := check(idx, reqs, o, res); err != nil {
				t.Errorf("check: %v", err)
			}
		})
	}
}

func TestUnsatErrorFields(t *testing.T) {
	idx := loadFixture(t, "unsat.packages")
	_, err := Resolve(idx, requests("openssh-server"), Options{Arch: "amd64", Origin: "bookworm"})
	var ue *UnsatError
	if !errors.As(err, &ue) {
		t.Fatalf("error %v (%T) is not an *UnsatError", err, err)
	}
	want := UnsatError{Request: "packages[0]", Path: []string{"openssh-server", "libssl3 (>= 3.0.9)"}, Reason: "not in bookworm", Tries: 0}
	if ue.Request != want.Request || !slices.Equal(ue.Path, want.Path) || ue.Reason != want.Reason || ue.GaveUp || ue.Tries != want.Tries {
		t.Errorf("got %+v, want %+v", *ue, want)
	}
}

func TestBadInput(t *testing.T) {
	idx := loadFixture(t, "base.packages")
	for _, tc := range []struct {
		name    string
		reqs    []Request
		o       Options
		wantErr string
	}{
		{"no arch", requests("mawk"), Options{}, "resolve: no architecture"},
		{"unknown base", requests("mawk"), Options{Arch: "amd64", Base: "minbase"}, `resolve: unknown base "minbase" (known: essential, required, important)`},
		{"empty name", []Request{{Why: "packages[0]"}}, Options{Arch: "amd64"}, "packages[0]: no package name"},
		{"bad pin", requests("mawk=x.y"), Options{Arch: "amd64"}, "packages[0]: mawk=x.y: bad version: version number does not start with digit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Resolve(idx, tc.reqs, tc.o)
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestReasons(t *testing.T) {
	idx := loadFixture(t, "base.packages")
	res, err := Resolve(idx, requests("busybox-static"), Options{Arch: "amd64", Base: "required"})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"busybox-static": "packages[0]: busybox-static",
		"libc6":          "base: required: base-files → libc6",
		"mawk":           "base: required: mawk",
		"less":           "",
	} {
		if got := res.Why(name); got != want {
			t.Errorf("Why(%s) = %q, want %q", name, got, want)
		}
	}
	if got, want := res.Reasons["libc6"], (Reason{Request: "base: required", Parent: "base-files", Relation: "libc6"}); got != want {
		t.Errorf("Reasons[libc6] = %+v, want %+v", got, want)
	}
}

// TestGivesUp runs a search that must try every combination (each
// package picks one of two alternatives; the last request conflicts with
// all of them) with a small bound.
func TestGivesUp(t *testing.T) {
	var b strings.Builder
	var reqs []string
	for i := range 12 {
		fmt.Fprintf(&b, "Package: p%02d\nVersion: 1\nArchitecture: amd64\nDepends: a%02d | b%02d\n\n", i, i, i)
		fmt.Fprintf(&b, "Package: a%02d\nVersion: 1\nArchitecture: amd64\n\n", i)
		fmt.Fprintf(&b, "Package: b%02d\nVersion: 1\nArchitecture: amd64\n\n", i)
		reqs = append(reqs, fmt.Sprintf("p%02d", i))
	}
	b.WriteString("Package: z\nVersion: 1\nArchitecture: amd64\nDepends: zz\n\nPackage: zz\nVersion: 1\nArchitecture: amd64\nConflicts: a11, b11\n")
	reqs = append(reqs, "z")
	idx, err := deb.ParseIndex(strings.NewReader(b.String()), "test")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Resolve(idx, requests(reqs...), Options{Arch: "amd64", budget: 500})
	var ue *UnsatError
	if !errors.As(err, &ue) || !ue.GaveUp {
		t.Fatalf("error %v, want an *UnsatError that gave up", err)
	}
	if want := fmt.Sprintf("packages[12]: z → zz: zz conflicts with a11 (selected by p11) (gave up after %d choices)", ue.Tries); err.Error() != want || ue.Tries < 500 || ue.Tries > 520 {
		t.Errorf("error\n got %q\nwant %q, about 500 choices", err, want)
	}
	// Without the bound, every combination is tried and then refused.
	_, err = Resolve(idx, requests(reqs...), Options{Arch: "amd64"})
	if !errors.As(err, &ue) || ue.GaveUp {
		t.Fatalf("error %v, want an *UnsatError after a full search", err)
	}
}

// TestDeterministic shuffles the index: the result must not change.
func TestDeterministic(t *testing.T) {
	var idx []*deb.Package
	for _, f := range []string{"alternatives.packages", "virtual.packages", "versions.packages", "cycles.packages", "conflicts.packages", "base.packages"} {
		idx = append(idx, loadFixture(t, f)...)
	}
	reqs := requests("app1", "app3", "mailer", "awk-user", "needs-api2", "wants-any", "indirect", "libc6", "aapp", "x", "app", "tool", "lib-user")
	o := Options{Arch: "amd64", Base: "important"}
	describe := func(res *Result) string {
		var b strings.Builder
		for _, p := range res.Packages {
			fmt.Fprintf(&b, "%s %s\n", p, res.Why(p.Name))
		}
		return b.String()
	}
	first, err := Resolve(idx, reqs, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := check(idx, reqs, o, first); err != nil {
		t.Fatal(err)
	}
	want := describe(first)
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		r.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		res, err := Resolve(idx, reqs, o)
		if err != nil {
			t.Fatal(err)
		}
		if got := describe(res); got != want {
			t.Fatalf("after a shuffle:\n%s\nwant:\n%s", got, want)
		}
	}
}

// TestDuplicateVersions merges two suites that carry the same version.
func TestDuplicateVersions(t *testing.T) {
	a := loadFixture(t, "cycles.packages")
	b := loadFixture(t, "cycles.packages")
	for _, p := range b {
		p.Origin = "bookworm-updates"
	}
	for _, idx := range [][]*deb.Package{slices.Concat(a, b), slices.Concat(b, a)} {
		res, err := Resolve(idx, requests("libc6"), Options{Arch: "amd64"})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range res.Packages {
			if p.Origin != "bookworm" {
				t.Errorf("%s from %s, want the first origin by name", p, p.Origin)
			}
		}
	}
}

// TestLargeShapes resolves a long dependency chain and one big cycle:
// nothing recurses once per package on the goroutine stack more than the
// runtime can grow, and the cycle is ordered in linear time.
func TestLargeShapes(t *testing.T) {
	const n = 20_000
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "Package: chain%05d\nVersion: 1\nArchitecture: amd64\n", i)
		if i+1 < n {
			fmt.Fprintf(&b, "Depends: chain%05d\n", i+1)
		}
		fmt.Fprintf(&b, "\nPackage: ring%05d\nVersion: 1\nArchitecture: amd64\nDepends: ring%05d\n\n", i, (i+1)%n)
	}
	idx, err := deb.ParseIndex(strings.NewReader(b.String()), "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ req, first, second string }{
		{"chain00000", "chain19999", "chain19998"},
		{"ring00000", "ring00000", "ring19999"},
	} {
		reqs := requests(tc.req)
		o := Options{Arch: "amd64"}
		res, err := Resolve(idx, reqs, o)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Packages) != n || res.Packages[0].Name != tc.first || res.Packages[1].Name != tc.second {
			t.Errorf("%s: %d packages starting %s, %s; want %d starting %s, %s", tc.req, len(res.Packages), res.Packages[0].Name, res.Packages[1].Name, n, tc.first, tc.second)
		}
		if err := check(idx, reqs, o, res); err != nil {
			t.Error(err)
		}
	}
}
