// Package aptsrc reads the build host's apt sources, so that a profile
// that names no Debian mirror builds from the one the host already uses.
//
// Both formats apt reads are understood: deb822 files
// (sources.list.d/*.sources) and one-line entries (sources.list and
// sources.list.d/*.list). Only "deb" entries count; "deb-src" entries,
// disabled stanzas ("Enabled: no") and files whose names do not end in
// .list or .sources (such as "x.list.disabled") are ignored, as apt
// ignores them. "Trusted: yes" is ignored too: keel always verifies.
package aptsrc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"pault.ag/go/debian/control"
)

// DefaultKeyring is where Debian's archive keyring is installed
// (debian-archive-keyring); apt trusts it, with /etc/apt/trusted.gpg.d,
// for entries that name no Signed-By.
const DefaultKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// ErrNoSource is returned (wrapped) by Find when no entry matches.
var ErrNoSource = errors.New("no apt source")

// Source is one repository of the host's apt configuration, for one suite.
type Source struct {
	URI           string   // "http://mirror.example/debian", without a trailing slash
	Suite         string   // "bookworm"
	Components    []string // "main", "contrib", ...
	Architectures []string // from "arch=" / "Architectures:", nil when unrestricted
	// Keyring lists the keyring files the repository is verified with
	// (binary .gpg or armored .asc), as paths on the host (under root).
	Keyring []string
	// KeyringData is a key block given inline in a deb822 Signed-By field
	// (armored); used with, or instead of, Keyring.
	KeyringData []byte
	// Where is "FILE:N" (the Nth entry of the file), for messages.
	Where string

	// fingerprints are Signed-By values that name keys rather than
	// files; keel cannot honour them (see Find).
	fingerprints []string
}

// Find returns the first "deb" entry, in the order apt reads its files
// (etc/apt/sources.list, then etc/apt/sources.list.d/ sorted by name), that
// has suite and component. root is the file system root holding etc/apt
// ("" or "/" for the host). An entry without Signed-By gets apt's default
// keyrings (DefaultKeyring, /etc/apt/trusted.gpg and
// /etc/apt/trusted.gpg.d/*.{gpg,asc}, those that exist). With no match the
// error (wrapping ErrNoSource) says what was looked at and what to set.
func Find(root, suite, component string) (Source, error) {
	if root == "" {
		root = "/"
	}
	all, looked, err := List(root)
	if err != nil {
		return Source{}, err
	}
	var seen []string
	for _, s := range all {
		if s.Suite != suite || !contains(s.Components, component) {
			seen = append(seen, fmt.Sprintf("%s %s %s", s.URI, s.Suite, strings.Join(s.Components, " ")))
			continue
		}
		if len(s.fingerprints) > 0 {
			return Source{}, fmt.Errorf("%s: %w: Signed-By names keys by fingerprint (%s), which keel cannot check; %s",
				s.Where, ErrNoSource, strings.Join(s.fingerprints, ", "), whatToSet)
		}
		if len(s.Keyring) == 0 && len(s.KeyringData) == 0 {
			if s.Keyring = defaultKeyrings(root); len(s.Keyring) == 0 {
				return Source{}, fmt.Errorf("%s: %w: the entry for %s %s names no Signed-By and none of apt's default keyrings (%s, /etc/apt/trusted.gpg.d) exist; %s",
					s.Where, ErrNoSource, s.URI, suite, DefaultKeyring, whatToSet)
			}
		}
		return s, nil
	}
	found := ""
	if len(seen) > 0 {
		found = "; found only " + strings.Join(seen, "; ")
	}
	return Source{}, fmt.Errorf("%w for suite %q, component %q: read %s%s; %s",
		ErrNoSource, suite, component, strings.Join(looked, ", "), found, whatToSet)
}

// whatToSet ends every "no usable source" message.
const whatToSet = "set the profile's debian.mirror and debian.keyring, the --mirror and --keyring flags, " +
	"or the KEEL_DEBIAN_MIRROR and KEEL_DEBIAN_KEYRING environment variables"

// List returns every usable "deb" entry under root in apt's order, one per
// URI and suite, and the files it read (with "(absent)" for a missing
// sources.list), for messages. Entries whose URI keel cannot fetch from
// (cdrom:, mirror+..., tor+...) are left out. Signed-By paths are
// returned under root; default keyrings are filled in by Find only.
func List(root string) ([]Source, []string, error) {
	if root == "" {
		root = "/"
	}
	var files, looked []string
	main := filepath.Join(root, "etc/apt/sources.list")
	if _, err := os.Stat(main); err == nil {
		files = append(files, main)
	} else {
		looked = append(looked, main+" (absent)")
	}
	dir := filepath.Join(root, "etc/apt/sources.list.d")
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("reading apt sources: %w", err)
	}
	if err != nil {
		looked = append(looked, dir+" (absent)")
	}
	var parts []string
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() && (strings.HasSuffix(n, ".list") || strings.HasSuffix(n, ".sources")) && !strings.HasPrefix(n, ".") {
			parts = append(parts, filepath.Join(dir, n))
		}
	}
	sort.Strings(parts)
	if len(ents) > 0 && len(parts) == 0 {
		looked = append(looked, dir+" (no .list or .sources files)")
	}
	files = append(files, parts...)

	var out []Source
	for _, f := range files {
		looked = append(looked, f)
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("reading apt sources: %w", err)
		}
		var srcs []Source
		if strings.HasSuffix(f, ".sources") {
			srcs, err = parseDeb822(f, b)
		} else {
			srcs, err = parseOneLine(f, b)
		}
		if err != nil {
			return nil, nil, err
		}
		for _, s := range srcs {
			for i, k := range s.Keyring {
				s.Keyring[i] = filepath.Join(root, k)
			}
			out = append(out, s)
		}
	}
	return out, looked, nil
}

// parseDeb822 reads a .sources file: stanzas of Types, URIs, Suites,
// Components, Architectures, Signed-By and Enabled, field names in any
// case, "#" comment lines anywhere.
func parseDeb822(file string, b []byte) ([]Source, error) {
	pr, err := control.NewParagraphReader(bytes.NewReader(b), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var out []Source
	for n := 1; ; n++ {
		para, err := pr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: stanza %d: %w", file, n, err)
		}
		f := map[string]string{}
		for k, v := range para.Values {
			f[strings.ToLower(k)] = v
		}
		where := fmt.Sprintf("%s:%d", file, n)
		if strings.EqualFold(strings.TrimSpace(f["enabled"]), "no") || !contains(strings.Fields(f["types"]), "deb") {
			continue
		}
		uris, suites := strings.Fields(f["uris"]), strings.Fields(f["suites"])
		if len(uris) == 0 || len(suites) == 0 {
			return nil, fmt.Errorf("%s: a deb stanza needs URIs and Suites", where)
		}
		tmpl := Source{
			Components: strings.Fields(f["components"]),
			Where:      where,
		}
		if a := strings.Fields(f["architectures"]); len(a) > 0 {
			tmpl.Architectures = a
		}
		if sb := f["signed-by"]; strings.Contains(sb, "-----BEGIN PGP PUBLIC KEY BLOCK-----") {
			// The paragraph reader has already undone deb822's
			// continuation-line escaping (" ." for an empty line); armor
			// wants its lines unindented.
			var key strings.Builder
			for _, l := range strings.Split(strings.TrimSpace(sb), "\n") {
				key.WriteString(strings.TrimSpace(l) + "\n")
			}
			tmpl.KeyringData = []byte(key.String())
		} else {
			tmpl.Keyring, tmpl.fingerprints = signedBy(strings.FieldsFunc(sb, isSep))
		}
		out = append(out, expand(tmpl, uris, suites)...)
	}
}

// parseOneLine reads sources.list syntax:
//
//	deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] URI SUITE COMPONENT...
func parseOneLine(file string, b []byte) ([]Source, error) {
	var out []Source
	for i, line := range strings.Split(string(b), "\n") {
		if c := strings.IndexByte(line, '#'); c >= 0 {
			line = line[:c]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "deb" {
			continue // deb-src, blank, or something apt would reject anyway
		}
		where := fmt.Sprintf("%s:%d", file, i+1)
		rest := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "deb"))
		var opts []string
		if strings.HasPrefix(rest, "[") {
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return nil, fmt.Errorf("%s: unclosed [ in options", where)
			}
			opts = strings.Fields(rest[1:end])
			rest = rest[end+1:]
		}
		fields = strings.Fields(rest)
		if len(fields) < 2 {
			return nil, fmt.Errorf("%s: a deb line needs a URI and a suite", where)
		}
		s := Source{Components: fields[2:], Where: where}
		for _, o := range opts {
			k, v, ok := strings.Cut(o, "=")
			if !ok {
				return nil, fmt.Errorf("%s: option %q is not key=value", where, o)
			}
			switch strings.ToLower(k) {
			case "arch":
				s.Architectures = strings.Split(v, ",")
			case "signed-by":
				s.Keyring, s.fingerprints = signedBy(strings.Split(v, ","))
			}
		}
		out = append(out, expand(s, fields[:1], fields[1:2])...)
	}
	return out, nil
}

// expand makes one Source per URI and suite, leaving out URIs keel cannot
// fetch from and flat repositories (a suite ending in "/", which has no
// components).
func expand(tmpl Source, uris, suites []string) []Source {
	var out []Source
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https" && pu.Scheme != "file") {
			continue
		}
		for _, s := range suites {
			if strings.HasSuffix(s, "/") {
				continue
			}
			src := tmpl
			src.URI = strings.TrimRight(u, "/")
			src.Suite = s
			src.Keyring = append([]string(nil), tmpl.Keyring...)
			out = append(out, src)
		}
	}
	return out
}

// signedBy splits Signed-By values into keyring paths and fingerprints.
func signedBy(vals []string) (paths, fingerprints []string) {
	for _, v := range vals {
		switch v = strings.TrimSpace(v); {
		case v == "":
		case strings.HasPrefix(v, "/"):
			paths = append(paths, v)
		default:
			fingerprints = append(fingerprints, v)
		}
	}
	return paths, fingerprints
}

func isSep(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }

// defaultKeyrings are the keyrings apt trusts for an entry with no
// Signed-By, those that exist under root.
func defaultKeyrings(root string) []string {
	var out []string
	for _, p := range []string{DefaultKeyring, "/etc/apt/trusted.gpg"} {
		if fi, err := os.Stat(filepath.Join(root, p)); err == nil && fi.Mode().IsRegular() {
			out = append(out, filepath.Join(root, p))
		}
	}
	var parts []string
	for _, ext := range []string{"*.gpg", "*.asc"} {
		m, _ := filepath.Glob(filepath.Join(root, "etc/apt/trusted.gpg.d", ext))
		parts = append(parts, m...)
	}
	sort.Strings(parts)
	return append(out, parts...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
