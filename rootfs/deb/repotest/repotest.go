// Package repotest builds a small signed Debian repository for tests and
// serves it over HTTP: .deb files built with debtest in pool/, Packages
// indexes, a Release with their sizes and sha256 sums, and an InRelease
// clearsigned with a key generated at test time. Tests of the Debian
// source use it to exercise verification end to end without a network, and
// to damage any part of it on purpose.
package repotest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"keel/rootfs/deb"
	"keel/rootfs/deb/debtest"
)

// Options describe the repository to build. The zero value is a valid,
// empty bookworm repository.
type Options struct {
	Suite        string // directory under dists/; default "bookworm"
	ReleaseSuite string // the Release's Suite field; default "stable"
	Codename     string // default Suite
	Architecture string // default "amd64"
	// Debs go to component "main"; Components adds more (or more for
	// main), by component name.
	Debs       []debtest.Deb
	Components map[string][]debtest.Deb
	// Date is the Release's Date; default 2024-02-10 10:00:00 UTC.
	Date time.Time
	// ValidUntil, if set, is written as the Release's Valid-Until.
	ValidUntil time.Time
	// Compressions are the forms each Packages index is published in:
	// "xz", "gz", "none"; default {"xz"}.
	Compressions []string
	// NoPlainSum leaves the uncompressed Packages' sum out of the Release
	// (Debian lists it even when it does not publish the file).
	NoPlainSum bool
	// ByHash publishes indexes under by-hash/SHA256/ too and says so
	// (Acquire-By-Hash: yes).
	ByHash bool
	// Key is the archive key; default a new one (NewKey). Repositories
	// given the same Key share a keyring.
	Key *openpgp.Entity
	// Signers sign InRelease; default Key. Debian signs with two keys
	// (see WriteRelease to sign again with others).
	Signers []*openpgp.Entity
}

// Repo is a repository on disk, served by an httptest server.
type Repo struct {
	Dir     string // the repository's root
	URL     string // the server's URL: the mirror
	Suite   string
	Key     *openpgp.Entity // the archive key
	Keyring string          // Key's public part as a binary keyring file (.gpg)
	Opts    Options

	packages []*deb.Package // as the index lists them, sorted by name
	debs     map[string][]byte
	sums     map[string]fileSum // index files listed in the Release

	server   *httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	fault    func(w http.ResponseWriter, r *http.Request) bool
}

// FixedDate is the Release date of repositories that set none.
var FixedDate = time.Date(2024, 2, 10, 10, 0, 0, 0, time.UTC)

// NewKey generates a signing key (ed25519, fast enough to make per test).
func NewKey(t testing.TB, name string) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity(name, "keel test key", "test@example.invalid",
		&packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatalf("repotest: generating a key: %v", err)
	}
	return e
}

// WriteKeyring writes the keys' public parts as a binary keyring, the
// format of /usr/share/keyrings/*.gpg.
func WriteKeyring(t testing.TB, path string, keys ...*openpgp.Entity) {
	t.Helper()
	var buf bytes.Buffer
	for _, k := range keys {
		if err := k.Serialize(&buf); err != nil {
			t.Fatalf("repotest: %v", err)
		}
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// New builds the repository in a temporary directory and starts serving
// it; the server stops when the test ends.
func New(t testing.TB, opts Options) *Repo {
	t.Helper()
	if opts.Suite == "" {
		opts.Suite = "bookworm"
	}
	if opts.ReleaseSuite == "" {
		opts.ReleaseSuite = "stable"
	}
	if opts.Codename == "" {
		opts.Codename = opts.Suite
	}
	if opts.Architecture == "" {
		opts.Architecture = "amd64"
	}
	if opts.Date.IsZero() {
		opts.Date = FixedDate
	}
	if len(opts.Compressions) == 0 {
		opts.Compressions = []string{"xz"}
	}
	r := &Repo{Dir: t.TempDir(), Suite: opts.Suite, Opts: opts, debs: map[string][]byte{}}
	r.Key = opts.Key
	if r.Key == nil {
		r.Key = NewKey(t, "keel test archive")
	}
	if len(r.Opts.Signers) == 0 {
		r.Opts.Signers = []*openpgp.Entity{r.Key}
	}
	r.Keyring = filepath.Join(t.TempDir(), "archive-keyring.gpg")
	WriteKeyring(t, r.Keyring, r.Key)
	if err := r.build(); err != nil {
		t.Fatalf("repotest: %v", err)
	}
	r.server = httptest.NewServer(http.HandlerFunc(r.serve))
	r.URL = r.server.URL
	t.Cleanup(r.server.Close)
	return r
}

func (r *Repo) build() error {
	comps := map[string][]debtest.Deb{}
	for c, debs := range r.Opts.Components {
		comps[c] = append(comps[c], debs...)
	}
	comps["main"] = append(comps["main"], r.Opts.Debs...)
	names := make([]string, 0, len(comps))
	for c := range comps {
		names = append(names, c)
	}
	sort.Strings(names)
	r.sums = map[string]fileSum{}
	for _, comp := range names {
		debs := append([]debtest.Deb(nil), comps[comp]...)
		sort.SliceStable(debs, func(i, j int) bool { return debs[i].Field("Package") < debs[j].Field("Package") })
		var stanzas []string
		for _, d := range debs {
			stanza, err := r.addDeb(comp, d)
			if err != nil {
				return err
			}
			stanzas = append(stanzas, stanza)
		}
		text := []byte(strings.Join(stanzas, "\n"))
		pkgs, err := deb.ParseIndex(bytes.NewReader(text), r.Suite)
		if err != nil {
			return fmt.Errorf("the index built: %w", err)
		}
		r.packages = append(r.packages, pkgs...)

		// Debian lists the uncompressed index's sum without publishing
		// the file; "none" publishes it.
		base := comp + "/binary-" + r.Opts.Architecture + "/Packages"
		if !r.Opts.NoPlainSum || contains(r.Opts.Compressions, "none") {
			r.sums[base] = newSum(text)
		}
		for _, c := range r.Opts.Compressions {
			name, b := base, text
			if c != "none" {
				if b, err = debtest.Compress(c, text); err != nil {
					return err
				}
				name += "." + c
				r.sums[name] = newSum(b)
			}
			if err := r.publishIndex(name, b); err != nil {
				return err
			}
		}
	}
	sort.Slice(r.packages, func(i, j int) bool { return r.packages[i].Name < r.packages[j].Name })
	return r.WriteRelease(r.ReleaseText(), r.Opts.Signers...)
}

// addDeb builds a package into the pool and returns its index stanza.
func (r *Repo) addDeb(comp string, d debtest.Deb) (string, error) {
	b, err := debtest.Build(d)
	if err != nil {
		return "", err
	}
	name, arch := d.Field("Package"), d.Field("Architecture")
	stanza := d.ControlText()
	if arch == "" {
		arch = "amd64"
		stanza += "Architecture: amd64\n"
	}
	ver := d.Field("Version")
	if _, v, ok := strings.Cut(ver, ":"); ok {
		ver = v // file names carry no epoch
	}
	prefix := name[:1]
	if strings.HasPrefix(name, "lib") && len(name) > 3 {
		prefix = name[:4]
	}
	rel := path.Join("pool", comp, prefix, name, fmt.Sprintf("%s_%s_%s.deb", name, ver, arch))
	if err := r.write(rel, b); err != nil {
		return "", err
	}
	r.debs[name] = b
	return stanza + fmt.Sprintf("Filename: %s\nSize: %d\nSHA256: %s\n", rel, len(b), hexSum(b)), nil
}

// publishIndex writes an index file under dists/SUITE/, and under by-hash/
// when the repository offers it.
func (r *Repo) publishIndex(name string, b []byte) error {
	if err := r.write(r.Dists(name), b); err != nil {
		return err
	}
	if r.Opts.ByHash {
		return r.write(r.Dists(path.Dir(name)+"/by-hash/SHA256/"+hexSum(b)), b)
	}
	return nil
}

// ReleaseText is the Release file for the indexes built, with the
// Options' fields.
func (r *Repo) ReleaseText() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Origin: keel-test\nLabel: keel-test\nSuite: %s\nCodename: %s\n", r.Opts.ReleaseSuite, r.Opts.Codename)
	fmt.Fprintf(&b, "Date: %s\n", r.Opts.Date.UTC().Format(time.RFC1123))
	if !r.Opts.ValidUntil.IsZero() {
		fmt.Fprintf(&b, "Valid-Until: %s\n", r.Opts.ValidUntil.UTC().Format(time.RFC1123))
	}
	if r.Opts.ByHash {
		b.WriteString("Acquire-By-Hash: yes\n")
	}
	comps := map[string]bool{"main": true}
	for c := range r.Opts.Components {
		comps[c] = true
	}
	fmt.Fprintf(&b, "Architectures: %s\nComponents: %s\nDescription: a repository built by keel's tests\nSHA256:\n",
		r.Opts.Architecture, strings.Join(sortedKeys(comps), " "))
	names := make([]string, 0, len(r.sums))
	for n := range r.sums {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, " %s %8d %s\n", r.sums[n].sha256, r.sums[n].size, n)
	}
	return b.String()
}

// WriteRelease writes dists/SUITE/Release and an InRelease of it signed by
// signers (the repository's signers when none are given).
func (r *Repo) WriteRelease(text string, signers ...*openpgp.Entity) error {
	if len(signers) == 0 {
		signers = r.Opts.Signers
	}
	if err := r.write(r.Dists("Release"), []byte(text)); err != nil {
		return err
	}
	in, err := Clearsign([]byte(text), signers...)
	if err != nil {
		return err
	}
	return r.write(r.Dists("InRelease"), in)
}

// Clearsign signs text as an InRelease is signed: one clearsigned message
// with a signature by each key.
func Clearsign(text []byte, signers ...*openpgp.Entity) ([]byte, error) {
	var keys []*packet.PrivateKey
	for _, s := range signers {
		keys = append(keys, s.PrivateKey)
	}
	var buf bytes.Buffer
	w, err := clearsign.EncodeMulti(&buf, keys, nil)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(text); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return withArmorChecksum(buf.Bytes())
}

// withArmorChecksum adds the armor's CRC-24 line ("=XXXX", RFC 4880 §6.1),
// which go-crypto leaves out and Debian's InRelease files have. Without
// it, gpgv 2.2 finds the end of base64 data without '=' padding (one
// signature in about fifty, when an EdDSA value is a byte short) only by
// reading the "-----END" line as data, and rejects the file.
func withArmorChecksum(in []byte) ([]byte, error) {
	const begin, end = "-----BEGIN PGP SIGNATURE-----\n", "-----END PGP SIGNATURE-----"
	i, j := bytes.Index(in, []byte(begin)), bytes.LastIndex(in, []byte(end))
	if i < 0 || j < i {
		return nil, fmt.Errorf("clearsigned text without a signature block")
	}
	body := in[i+len(begin) : j]
	// The armor headers (often none) end at the first empty line.
	body = append([]byte("\n"), body...)
	k := bytes.Index(body, []byte("\n\n"))
	if k < 0 {
		return nil, fmt.Errorf("signature block without the empty line after its headers")
	}
	data := bytes.Join(bytes.Fields(body[k+2:]), nil)
	raw, err := base64.StdEncoding.DecodeString(string(data))
	if err != nil {
		return nil, fmt.Errorf("signature block: %w", err)
	}
	crc := crc24(raw)
	sum := base64.StdEncoding.EncodeToString([]byte{byte(crc >> 16), byte(crc >> 8), byte(crc)})
	out := bytes.Clone(in[:j])
	out = append(out, "="+sum+"\n"...)
	return append(out, in[j:]...), nil
}

// crc24 is OpenPGP's armor checksum (RFC 4880 §6.1).
func crc24(b []byte) uint32 {
	crc := uint32(0xB704CE)
	for _, c := range b {
		crc ^= uint32(c) << 16
		for range 8 {
			crc <<= 1
			if crc&0x1000000 != 0 {
				crc ^= 0x1864CFB
			}
		}
	}
	return crc & 0xFFFFFF
}

// Dists is the path of a file under dists/SUITE/, relative to Dir.
func (r *Repo) Dists(name string) string { return path.Join("dists", r.Suite, name) }

// Packages are the index's entries, sorted by name.
func (r *Repo) Packages() []*deb.Package { return r.packages }

// Package is the index entry of the named package (nil if none).
func (r *Repo) Package(name string) *deb.Package {
	for _, p := range r.packages {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Deb is the .deb file of the named package, as published (the last one
// built when several share the name; r.Read(t, p.Filename) reads any).
func (r *Repo) Deb(name string) []byte { return r.debs[name] }

// Read returns a file of the repository (rel is relative to Dir).
func (r *Repo) Read(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.Dir, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Tamper rewrites a file of the repository through f, leaving the
// Release and its signature as they are.
func (r *Repo) Tamper(t testing.TB, rel string, f func([]byte) []byte) {
	t.Helper()
	if err := r.write(rel, f(r.Read(t, rel))); err != nil {
		t.Fatal(err)
	}
}

// Fault installs a hook that sees every request first; it returns true
// when it has answered the request itself (an error status, a truncated
// body, ...). nil removes it.
func (r *Repo) Fault(f func(w http.ResponseWriter, req *http.Request) bool) {
	r.mu.Lock()
	r.fault = f
	r.mu.Unlock()
}

// Requests is the number of requests served so far.
func (r *Repo) Requests() int64 { return r.requests.Load() }

// Close stops the server: later requests fail to connect.
func (r *Repo) Close() { r.server.Close() }

func (r *Repo) serve(w http.ResponseWriter, req *http.Request) {
	r.requests.Add(1)
	r.mu.Lock()
	f := r.fault
	r.mu.Unlock()
	if f != nil && f(w, req) {
		return
	}
	http.FileServer(http.Dir(r.Dir)).ServeHTTP(w, req)
}

func (r *Repo) write(rel string, b []byte) error {
	p := filepath.Join(r.Dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o644)
}

type fileSum struct {
	size   int
	sha256 string
}

func newSum(b []byte) fileSum { return fileSum{size: len(b), sha256: hexSum(b)} }

func hexSum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
