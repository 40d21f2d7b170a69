package resolve

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"keel/rootfs/deb"
)

// syntheticIndex is shaped like Debian's main index: n packages; the
// first 3000 are libraries depending on lower ones, a hundred of them
// Priority: required; the rest are programs depending on libraries and on
// their own data package (arch all, no dependencies). Some relations are
// alternatives, versioned or virtual; a few Pre-Depends, Conflicts on
// packages that are gone, a second version of one package in ten and a
// foreign-architecture copy of one in twenty.
func syntheticIndex(tb testing.TB, n int) []*deb.Package {
	const libs = 3000
	r := rand.New(rand.NewPCG(7, uint64(n)))
	name := func(i int) string { return fmt.Sprintf("pkg%05d", i) }
	lib := func(below int) int { u := r.Float64(); return int(float64(min(below, libs)) * u * u) }
	var b strings.Builder
	stanza := func(i int, ver, arch string) {
		data := i >= libs && i%4 == 3
		if data {
			arch = "all"
		}
		fmt.Fprintf(&b, "Package: %s\nVersion: %s\nArchitecture: %s\n", name(i), ver, arch)
		switch {
		case i < libs && r.IntN(30) == 0:
			b.WriteString("Priority: required\n")
		case i < libs:
			b.WriteString("Priority: optional\n")
		default:
			fmt.Fprintf(&b, "Priority: %s\n", []string{"important", "standard", "optional", "optional", "optional", "extra"}[r.IntN(6)])
		}
		if i > 0 && !data {
			var rels []string
			if i >= libs && i|3 < n {
				rels = append(rels, name(i|3))
			}
			for range r.IntN(5) {
				switch k := r.IntN(10); {
				case k == 0:
					rels = append(rels, fmt.Sprintf("%s | %s", name(lib(i)), name(lib(i))))
				case k == 1:
					rels = append(rels, fmt.Sprintf("%s (>= 1.0~rc1)", name(lib(i))))
				case k == 2 && i >= libs:
					rels = append(rels, fmt.Sprintf("virt%03d", r.IntN(300)))
				default:
					rels = append(rels, name(lib(i)))
				}
			}
			if len(rels) > 0 {
				fmt.Fprintf(&b, "Depends: %s\n", strings.Join(rels, ", "))
			}
			if r.IntN(50) == 0 {
				fmt.Fprintf(&b, "Pre-Depends: %s\n", name(r.IntN(min(i, 50))))
			}
		}
		if r.IntN(100) == 0 {
			fmt.Fprintf(&b, "Conflicts: old-%s, %s (<< 0.1)\n", name(i), name(r.IntN(n)))
		}
		if i < libs && r.IntN(10) == 0 {
			fmt.Fprintf(&b, "Provides: virt%03d (= 1.0)\n", r.IntN(300))
		}
		b.WriteString("\n")
	}
	for i := range n {
		stanza(i, "1.0-1", "amd64")
		if r.IntN(10) == 0 {
			stanza(i, "1:0.9-1", "amd64")
		}
		if r.IntN(20) == 0 {
			stanza(i, "2.0-1", "arm64")
		}
	}
	for v := range 300 { // every virtual package has a provider
		fmt.Fprintf(&b, "Package: provider%03d\nVersion: 1.0\nArchitecture: all\nProvides: virt%03d\n\n", v, v)
	}
	idx, err := deb.ParseIndex(strings.NewReader(b.String()), "synthetic")
	if err != nil {
		tb.Fatal(err)
	}
	return idx
}

// BenchmarkResolve resolves 200 programs and a required base from a
// synthetic index of 63,000 packages (the size of Debian's main index).
func BenchmarkResolve(b *testing.B) {
	idx := syntheticIndex(b, 63_000)
	var specs []string
	for i := range 200 {
		specs = append(specs, fmt.Sprintf("pkg%05d", 62_800+i))
	}
	reqs := requests(specs...)
	o := Options{Arch: "amd64", Base: "required"}
	res, err := Resolve(idx, reqs, o)
	if err != nil {
		b.Fatal(err)
	}
	if err := check(idx, reqs, o, res); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Resolve(idx, reqs, o); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(res.Packages)), "packages")
}

// BenchmarkRealIndex resolves a systemd server from the host's apt lists.
func BenchmarkRealIndex(b *testing.B) {
	idx := realIndex(b)
	reqs := requests("systemd", "openssh-server", "systemd-resolved", "udev", "dbus")
	o := Options{Arch: "amd64", Base: "required"}
	for b.Loop() {
		if _, err := Resolve(idx, reqs, o); err != nil {
			b.Fatal(err)
		}
	}
}
