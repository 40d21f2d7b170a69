// Package lock reads and writes lock files: the exact Debian packages a
// profile's build uses. `keel lock PROFILE` writes PROFILE.lock; a build
// with a lock installs exactly its packages, fetched by sha256 (so from the
// cache with no network), and refuses to run when the profile asks for
// something the lock was not made for.
//
// The format is YAML, one field per line and packages sorted by name, so
// that a change of lock reads well in a diff. It names no mirror: the same
// lock builds from whichever mirror a machine uses, since every file is
// checked by its sha256.
package lock

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
	"pault.ag/go/debian/version"

	"keel/rootfs/deb"
)

// Format is the lock format this package writes and reads.
const Format = 1

// ErrDrift is returned (wrapped) by Drift when the profile asks for other
// things than the lock was made for.
var ErrDrift = errors.New("the profile and its lock file differ")

// Lock is a lock file.
type Lock struct {
	KeelLock int    `yaml:"keel-lock"`
	Debian   Debian `yaml:"debian"`
	// Requests are what the profile asked for, normalized (see
	// NormalizeRequests), so a build can tell the profile has changed.
	Requests []string `yaml:"requests"`
	// Entries are the packages, sorted by name then architecture.
	Entries []Package `yaml:"packages"`

	path string // where it was read from, for messages
}

// Debian says which repository state the lock was made from.
type Debian struct {
	Suite           string   `yaml:"suite"`
	Codename        string   `yaml:"codename"`
	Architecture    string   `yaml:"architecture"`
	Components      []string `yaml:"components"`
	ReleaseDate     string   `yaml:"release-date"`
	InReleaseSHA256 string   `yaml:"inrelease-sha256"`
}

// Package is one locked package: enough to fetch and check its .deb, and
// what the build uses it for.
type Package struct {
	Name         string `yaml:"name"`
	Version      string `yaml:"version"`
	Architecture string `yaml:"architecture"`
	Filename     string `yaml:"filename"`
	Size         int64  `yaml:"size"`
	SHA256       string `yaml:"sha256"`
	// For lists the roles the package has in the build, sorted: RoleRoot
	// (installed in the root filesystem), RoleKernel (the kernel and its
	// modules come from it), RoleLoader (the boot loader's EFI binary).
	// Empty means RoleRoot.
	For []string `yaml:"for,flow,omitempty"`
}

// Roles a locked package can have.
const (
	RoleRoot   = "root"
	RoleKernel = "kernel"
	RoleLoader = "loader"
)

// New makes a lock from resolved packages, each with the roles roles gives
// it (nil, or no roles: RoleRoot). The packages are sorted and the requests
// normalized; debian.Components is copied. A package given twice is listed
// once, with the union of its roles.
func New(d Debian, requests []string, pkgs []*deb.Package, roles map[*deb.Package][]string) *Lock {
	l := &Lock{KeelLock: Format, Debian: d, Requests: NormalizeRequests(requests)}
	l.Debian.Components = append([]string(nil), d.Components...)
	at := map[string]int{}
	for _, p := range pkgs {
		r := roles[p]
		if len(r) == 0 {
			r = []string{RoleRoot}
		}
		key := p.Name + "\x00" + p.Architecture
		if i, ok := at[key]; ok {
			l.Entries[i].For = NormalizeRequests(append(l.Entries[i].For, r...))
			continue
		}
		at[key] = len(l.Entries)
		l.Entries = append(l.Entries, Package{
			Name: p.Name, Version: p.Version.String(), Architecture: p.Architecture,
			Filename: p.Filename, Size: p.Size, SHA256: strings.ToLower(p.SHA256),
			For: NormalizeRequests(r),
		})
	}
	for i := range l.Entries {
		if len(l.Entries[i].For) == 1 && l.Entries[i].For[0] == RoleRoot {
			l.Entries[i].For = nil // the common case stays one line shorter
		}
	}
	sortEntries(l.Entries)
	return l
}

// Has reports whether the locked package has role.
func (p *Package) Has(role string) bool {
	if len(p.For) == 0 {
		return role == RoleRoot
	}
	for _, r := range p.For {
		if r == role {
			return true
		}
	}
	return false
}

func sortEntries(e []Package) {
	sort.SliceStable(e, func(i, j int) bool {
		if e[i].Name != e[j].Name {
			return e[i].Name < e[j].Name
		}
		return e[i].Architecture < e[j].Architecture
	})
}

// NormalizeRequests trims, drops empty entries and duplicates, and sorts:
// the order a profile lists packages in does not change what it asks for.
// What a request string says ("nginx", "openssh-server=1:9.2p1-2",
// "base:required", "kernel:linux-image-amd64") is the caller's; two
// profiles asking for the same thing must produce the same strings.
func NormalizeRequests(requests []string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, r := range requests {
		r = strings.TrimSpace(r)
		if r != "" && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out
}

// Packages returns the locked packages as index entries for repo.Fetch
// (Name, Version, Architecture, Filename, Size, SHA256; Origin names the
// lock file). Read has checked every entry, so none fails to convert.
func (l *Lock) Packages() []*deb.Package { return l.PackagesFor("") }

// PackagesFor is Packages for the packages that have role ("" for all).
func (l *Lock) PackagesFor(role string) []*deb.Package {
	origin := "lock file"
	if l.path != "" {
		origin = l.path
	}
	out := make([]*deb.Package, 0, len(l.Entries))
	for _, e := range l.Entries {
		if role != "" && !e.Has(role) {
			continue
		}
		v, _ := version.Parse(e.Version)
		out = append(out, &deb.Package{
			Name: e.Name, Version: v, Architecture: e.Architecture,
			Filename: e.Filename, Size: e.Size, SHA256: e.SHA256, Origin: origin,
		})
	}
	return out
}

// Drift compares the requests a profile makes now with those the lock was
// made for, and returns nil when they are the same (after normalization),
// else an error (wrapping ErrDrift) naming every difference.
func (l *Lock) Drift(requests []string) error {
	now := NormalizeRequests(requests)
	then := map[string]bool{}
	for _, r := range l.Requests {
		then[r] = true
	}
	var problems []string
	for _, r := range now {
		if !then[r] {
			problems = append(problems, fmt.Sprintf("profile asks for %s, which the lock was not made for", r))
		}
		delete(then, r)
	}
	for _, r := range l.Requests {
		if then[r] {
			problems = append(problems, fmt.Sprintf("the lock was made for %s, which the profile no longer asks for", r))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	where := "the lock file"
	if l.path != "" {
		where = l.path
	}
	return fmt.Errorf("%s: %w: %s: run keel lock, or build with --update-lock",
		where, ErrDrift, strings.Join(problems, "; "))
}

// header starts every lock file.
const header = `# Written by ` + "`keel lock`" + `: the exact Debian packages %s's builds use.
# Do not edit it: run ` + "`keel lock`" + ` again (or build with --update-lock) to change it.
`

// Write writes the lock to path atomically (a temporary file, synced,
// renamed). The bytes depend only on the lock's content.
func Write(path string, l *Lock) error {
	if err := l.validate(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	c := *l
	c.KeelLock = Format
	c.Requests = NormalizeRequests(l.Requests)
	c.Entries = append([]Package(nil), l.Entries...)
	sortEntries(c.Entries)
	var buf bytes.Buffer
	profile := strings.TrimSuffix(filepath.Base(path), ".lock")
	fmt.Fprintf(&buf, header, profile)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&c); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// Read reads and checks a lock file. Unknown fields are refused; every
// problem is reported as PATH:LINE: field: message where the YAML gives a
// line.
func Read(path string) (*Lock, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading lock file: %w", err)
	}
	return Parse(path, b)
}

// Parse is Read of bytes already in hand; name is used in messages.
func Parse(name string, b []byte) (*Lock, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, yamlError(name, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: empty lock file", name)
	}
	l := &Lock{path: name}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(l); err != nil {
		return nil, yamlError(name, err)
	}
	if l.KeelLock != Format {
		if l.KeelLock > Format {
			return nil, fmt.Errorf("%s:%d: keel-lock: format %d is newer than this keel reads (%d): update keel",
				name, line(&doc, "keel-lock"), l.KeelLock, Format)
		}
		return nil, fmt.Errorf("%s:%d: keel-lock: must be %d", name, line(&doc, "keel-lock"), Format)
	}
	if err := l.validate(); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			return nil, fmt.Errorf("%s:%d: %s", name, fe.line(&doc), fe.msg)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return l, nil
}

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	archRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

	unknownField = regexp.MustCompile(`field (\S+) not found in type \S+`)
)

// fieldError is a validation problem at a field of the document: a
// top-level key, or a field of packages[i].
type fieldError struct {
	key   string // top-level key
	index int    // packages index, or -1
	field string // field of the package
	msg   string
}

func (e *fieldError) Error() string { return e.msg }

// line finds the line of the field the error is about, or of the nearest
// node that exists.
func (e *fieldError) line(doc *yaml.Node) int {
	n := value(doc.Content[0], e.key)
	if n == nil {
		return line(doc, e.key)
	}
	if e.index >= 0 {
		if n.Kind != yaml.SequenceNode || e.index >= len(n.Content) {
			return n.Line
		}
		n = n.Content[e.index]
	}
	if k := keyNode(n, e.field); k != nil {
		return k.Line
	}
	return n.Line
}

// validate checks what a build relies on: every package can be fetched
// and checked, and none is listed twice.
func (l *Lock) validate() error {
	d := l.Debian
	if d.Suite == "" {
		return &fieldError{key: "debian", index: -1, field: "suite", msg: "debian.suite: missing"}
	}
	if d.Architecture == "" || !archRE.MatchString(d.Architecture) {
		return &fieldError{key: "debian", index: -1, field: "architecture", msg: fmt.Sprintf("debian.architecture: %q is not an architecture", d.Architecture)}
	}
	if d.InReleaseSHA256 != "" && !sha256RE.MatchString(d.InReleaseSHA256) {
		return &fieldError{key: "debian", index: -1, field: "inrelease-sha256", msg: fmt.Sprintf("debian.inrelease-sha256: %q is not a lowercase sha256", d.InReleaseSHA256)}
	}
	seen := map[string]int{}
	for i, p := range l.Entries {
		bad := func(field, format string, args ...any) error {
			return &fieldError{key: "packages", index: i, field: field,
				msg: fmt.Sprintf("packages[%d].%s: ", i, field) + fmt.Sprintf(format, args...)}
		}
		if !nameRE.MatchString(p.Name) {
			return bad("name", "%q is not a package name", p.Name)
		}
		if _, err := version.Parse(p.Version); err != nil || p.Version == "" {
			return bad("version", "%s: %q is not a Debian version", p.Name, p.Version)
		}
		if !archRE.MatchString(p.Architecture) {
			return bad("architecture", "%s: %q is not an architecture", p.Name, p.Architecture)
		}
		if f := p.Filename; f == "" || strings.HasPrefix(f, "/") || path.Clean(f) != f || f == ".." ||
			strings.HasPrefix(f, "../") || !strings.HasSuffix(f, ".deb") {
			return bad("filename", "%s: %q is not a .deb path relative to the mirror", p.Name, f)
		}
		if p.Size <= 0 {
			return bad("size", "%s: %d is not a size", p.Name, p.Size)
		}
		for _, r := range p.For {
			if r != RoleRoot && r != RoleKernel && r != RoleLoader {
				return bad("for", "%s: %q is not a role (%s, %s or %s)", p.Name, r, RoleRoot, RoleKernel, RoleLoader)
			}
		}
		if !sha256RE.MatchString(p.SHA256) {
			return bad("sha256", "%s: %q is not a lowercase sha256", p.Name, p.SHA256)
		}
		key := p.Name + ":" + p.Architecture
		if j, dup := seen[key]; dup {
			return bad("name", "%s (%s) is also packages[%d]", p.Name, p.Architecture, j)
		}
		seen[key] = i
	}
	return nil
}

// yamlError turns a YAML error into NAME:LINE: message lines.
func yamlError(name string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var lines []string
		for _, e := range te.Errors {
			e = unknownField.ReplaceAllString(e, `unknown field "$1"`)
			lines = append(lines, name+":"+strings.TrimPrefix(e, "line "))
		}
		return errors.New(strings.Join(lines, "\n"))
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		return fmt.Errorf("%s:%s", name, rest)
	}
	return fmt.Errorf("%s: %s", name, msg)
}

// line is the line of a top-level key (1 when absent).
func line(doc *yaml.Node, key string) int {
	if len(doc.Content) > 0 {
		if k := keyNode(doc.Content[0], key); k != nil {
			return k.Line
		}
	}
	return 1
}

// keyNode returns the key node of a mapping's key.
func keyNode(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i]
		}
	}
	return nil
}

// value returns the value node of a mapping's key.
func value(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
