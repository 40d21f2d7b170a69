// Package deb holds what keel's Debian source shares between its parts: a
// binary package as a repository's Packages index describes it, and the
// parser of that index. The parts are subpackages: aptsrc (the build
// host's apt configuration), repo (a signed repository: InRelease,
// Packages, downloads into the cache), resolve (dependency resolution),
// debfile (reading .deb files into the tree model) and postinst (what
// maintainer scripts would have done, applied in Go).
//
// Control files, versions and dependency relations are parsed with
// pault.ag/go/debian, not by hand.
package deb

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"pault.ag/go/debian/control"
	"pault.ag/go/debian/dependency"
	"pault.ag/go/debian/version"
)

// Package is one binary package of a repository index.
type Package struct {
	Name         string
	Version      version.Version
	Architecture string // "amd64", "all", ...
	MultiArch    string // "same", "foreign", "allowed" or ""
	Priority     string // "required", "important", "standard", "optional", "extra"
	Essential    bool
	Source       string // source package name ("" when the same as Name)

	// The relations keel resolves with. Recommends, Suggests and Replaces
	// are not parsed: keel installs no recommends, and parsing relations is
	// most of the time of reading an index.
	Depends, PreDepends         dependency.Dependency
	Conflicts, Breaks, Provides dependency.Dependency

	// Filename is the .deb's path relative to the mirror's root
	// ("pool/main/b/busybox/busybox-static_1.35.0-4+b3_amd64.deb").
	Filename      string
	Size          int64
	SHA256        string // lowercase hex
	InstalledSize int64  // KiB, as the index says

	// Origin names where the index came from, for messages: the suite
	// ("bookworm") or a lock file.
	Origin string
}

// String is "name=version (arch)".
func (p *Package) String() string {
	return fmt.Sprintf("%s=%s (%s)", p.Name, p.Version, p.Architecture)
}

// ParseIndex reads a Packages index (already decompressed). Every stanza
// must have Package, Version and Architecture; a malformed relation or
// version is an error naming the package, so a damaged index is refused
// rather than resolved half.
//
// Reading the stanzas is serial; turning them into Packages (versions and
// relations parsed, most of the time of a 60,000-package index) runs on
// every core, in order, so the result does not depend on scheduling.
func ParseIndex(r io.Reader, origin string) ([]*Package, error) {
	pr, err := control.NewParagraphReader(bufio.NewReaderSize(r, 1<<20), nil)
	if err != nil {
		return nil, fmt.Errorf("packages index: %w", err)
	}
	type batch struct {
		first int
		paras []map[string]string
		out   []*Package
		err   error
		done  chan struct{}
	}
	const batchSize = 512
	work := make(chan *batch, 2*runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				b.out = make([]*Package, len(b.paras))
				for i, f := range b.paras {
					p, err := FromParagraph(f)
					if err != nil {
						b.err = fmt.Errorf("packages index, stanza %d: %w", b.first+i, err)
						break
					}
					p.Origin = origin
					b.out[i] = p
				}
				b.paras = nil // the raw fields are not kept
				close(b.done)
			}
		}()
	}
	var batches []*batch
	cur := &batch{first: 1, done: make(chan struct{})}
	var readErr error
	for n := 1; ; n++ {
		para, err := pr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = fmt.Errorf("packages index, stanza %d: %w", n, err)
			break
		}
		cur.paras = append(cur.paras, para.Values)
		if len(cur.paras) == batchSize {
			batches = append(batches, cur)
			work <- cur
			cur = &batch{first: n + 1, done: make(chan struct{})}
		}
	}
	if len(cur.paras) > 0 {
		batches = append(batches, cur)
		work <- cur
	}
	close(work)
	wg.Wait()
	if readErr != nil {
		return nil, readErr
	}
	var out []*Package
	for _, b := range batches {
		<-b.done
		if b.err != nil {
			return nil, b.err
		}
		out = append(out, b.out...)
	}
	return out, nil
}

// FromParagraph builds a Package from one control stanza's fields (of an
// index, or of a .deb's control file, which has no Filename, Size or
// SHA256).
func FromParagraph(f map[string]string) (*Package, error) {
	p := &Package{
		Name:         f["Package"],
		Architecture: f["Architecture"],
		MultiArch:    f["Multi-Arch"],
		Priority:     f["Priority"],
		Essential:    f["Essential"] == "yes",
		Filename:     f["Filename"],
		SHA256:       strings.ToLower(f["SHA256"]),
	}
	if p.Name == "" {
		return nil, errors.New("no Package field")
	}
	if p.Architecture == "" {
		return nil, fmt.Errorf("%s: no Architecture field", p.Name)
	}
	v, err := version.Parse(f["Version"])
	if err != nil || f["Version"] == "" {
		return nil, fmt.Errorf("%s: bad Version %q: %v", p.Name, f["Version"], err)
	}
	p.Version = v
	if src := f["Source"]; src != "" {
		// "Source: glibc (2.36-9)" names a source version too.
		p.Source, _, _ = strings.Cut(src, " ")
	}
	for _, n := range []struct {
		field string
		into  *int64
	}{{"Size", &p.Size}, {"Installed-Size", &p.InstalledSize}} {
		if s := f[n.field]; s != "" {
			if *n.into, err = strconv.ParseInt(s, 10, 64); err != nil || *n.into < 0 {
				return nil, fmt.Errorf("%s: bad %s %q", p.Name, n.field, s)
			}
		}
	}
	for _, d := range []struct {
		field string
		into  *dependency.Dependency
	}{
		{"Depends", &p.Depends}, {"Pre-Depends", &p.PreDepends},
		{"Conflicts", &p.Conflicts}, {"Breaks", &p.Breaks}, {"Provides", &p.Provides},
	} {
		s := strings.TrimSpace(f[d.field])
		if s == "" {
			continue
		}
		dep, err := dependency.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%s: bad %s %q: %v", p.Name, d.field, s, err)
		}
		*d.into = *dep
	}
	return p, nil
}
