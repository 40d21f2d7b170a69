// Package repo reads a signed Debian repository and downloads its
// packages into keel's cache.
//
// Open fetches dists/SUITE/InRelease, verifies its clearsigned signature
// against a keyring in pure Go, reads the Release fields from the signed
// text only, and fetches each component's Packages index, checked against
// the Release's SHA256 list. Fetch downloads .deb files, checked against
// the index's size and sha256 as they stream. Nothing unverified is ever
// given a final name in the cache: every file is written under a temporary
// name and renamed once it matches, which is also what makes one cache
// safe to share between processes without a lock.
//
// Cache layout, under Config.CacheDir:
//
//	dists/KEY/InRelease          the last verified InRelease of a mirror and suite
//	dists/KEY/Packages-SHA256    an index, uncompressed, named by its sha256
//	dists/KEY/Packages-SHA256.xz an index as published, when the Release lists
//	                             no hash of its uncompressed form
//	pool/SHA256.deb              packages, content-addressed
//
// KEY is a hash of the mirror URL and suite. Indexes are kept uncompressed
// when the Release allows checking them so (Debian's does): a warm Open then
// hashes and parses the text in one pass instead of decompressing ~9 MB of
// xz, which takes seconds in Go.
package repo

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/ulikunitz/xz"

	"keel/rootfs/deb"
)

// Sentinel errors, for errors.Is.
var (
	// ErrVerify: a signature, size or hash did not match, or the Release
	// expired. What was refused was not written to the cache.
	ErrVerify = errors.New("verification failed")
	// ErrNotCached: offline, and what is needed is not in the cache.
	ErrNotCached = errors.New("not in the cache")
)

// verifyError carries a complete message and answers errors.Is(ErrVerify).
type verifyError struct{ msg string }

func (e *verifyError) Error() string        { return e.msg }
func (e *verifyError) Is(target error) bool { return target == ErrVerify }

func verifyErrorf(format string, args ...any) error {
	return &verifyError{msg: fmt.Sprintf(format, args...)}
}

// Config says which repository to open and where to cache it.
type Config struct {
	// Mirror is the repository's root URL: http://, https:// or file://.
	Mirror string
	// Suite names the directory under dists/ ("bookworm"); the Release's
	// Suite or Codename must be the same.
	Suite string
	// Components to read; default ["main"].
	Components []string
	// Architecture of the binary packages; default "amd64".
	Architecture string
	// Keyring lists keyring files (binary .gpg or armored .asc) and
	// KeyringData holds keys given inline (binary or armored); InRelease
	// must be signed by one of their keys. At least one is required.
	Keyring     []string
	KeyringData []byte
	// CacheDir is keel's Debian cache ($KEEL_CACHE/deb, say); required.
	CacheDir string
	// Client fetches http(s) URLs; nil means one with a response-header
	// timeout and the environment's proxy settings.
	Client *http.Client
	// Logger receives what is fetched; nil discards.
	Logger *slog.Logger
	// MaxAge > 0: a cached InRelease younger than this is used with no
	// network I/O at all (its signature and the cached indexes' hashes
	// are still checked).
	MaxAge time.Duration
	// Offline: use only the cache; an error (ErrNotCached) if the
	// repository is not there.
	Offline bool
	// Now is the time signatures and Valid-Until are checked at; nil
	// means time.Now.
	Now func() time.Time
}

// Index is a repository's verified package index.
type Index struct {
	// Packages of every component, in component order, as the index
	// lists them. Their Origin is the suite.
	Packages []*deb.Package
	// Suite is the suite opened (Config.Suite); Codename is the
	// Release's ("bookworm" for a Suite of "stable").
	Suite, Codename string
	// Date is the Release's Date field, as written.
	Date         string
	Architecture string
	Components   []string
	// InReleaseSHA256 identifies the exact InRelease the index came
	// from (lowercase hex).
	InReleaseSHA256 string
}

// maxInRelease bounds an InRelease download; Debian's main suite's is
// ~150 KB.
const maxInRelease = 32 << 20

// Open verifies and reads the repository's index, from the cache when
// Config allows it, else from the mirror.
func Open(ctx context.Context, cfg Config) (*Index, error) {
	o, err := newOpener(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Offline || cfg.MaxAge > 0 {
		idx, err := o.fromCache()
		if err == nil {
			return idx, nil
		}
		if cfg.Offline {
			return nil, fmt.Errorf("opening %s offline: %w", cfg.Suite, err)
		}
		o.log.Debug("cached index not usable", "suite", cfg.Suite, "reason", err)
	}
	return o.fromMirror(ctx)
}

type opener struct {
	cfg Config
	kr  *keyring
	g   *getter
	dir string // dists/KEY in the cache
	log *slog.Logger
	now time.Time
}

func newOpener(cfg Config) (*opener, error) {
	if cfg.Suite == "" || !safeRel(cfg.Suite) {
		return nil, fmt.Errorf("suite %q is not a suite name", cfg.Suite)
	}
	if cfg.CacheDir == "" {
		return nil, errors.New("repo: no cache directory")
	}
	if len(cfg.Components) == 0 {
		cfg.Components = []string{"main"}
	}
	var comps []string
	for _, c := range cfg.Components {
		if !safeRel(c) {
			return nil, fmt.Errorf("component %q is not a component name", c)
		}
		if !contains(comps, c) {
			comps = append(comps, c)
		}
	}
	cfg.Components = comps
	if cfg.Architecture == "" {
		cfg.Architecture = "amd64"
	}
	g, err := newGetter(cfg.Mirror, cfg.Client)
	if err != nil {
		return nil, err
	}
	kr, err := loadKeyring(cfg.Keyring, cfg.KeyringData)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if cfg.Now != nil {
		now = cfg.Now()
	}
	return &opener{
		cfg: cfg, kr: kr, g: g, now: now, log: logger(cfg.Logger),
		dir: filepath.Join(cfg.CacheDir, "dists", repoKey(cfg.Mirror, cfg.Suite)),
	}, nil
}

// repoKey names a mirror and suite's cache directory: a hash, so that a
// URL's characters never reach a file name.
func repoKey(mirror, suite string) string {
	h := sha256.Sum256([]byte(strings.TrimRight(mirror, "/") + "\x00" + suite))
	return hex.EncodeToString(h[:16])
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// CachedInRelease returns the sha256 (lowercase hex) of the InRelease
// that Open would read from the cache under cfg (one younger than
// cfg.MaxAge, or any with cfg.Offline), without reading the index: a
// build cache keys on it. An error means Open would ask the mirror.
func CachedInRelease(cfg Config) (string, error) {
	o, err := newOpener(cfg)
	if err != nil {
		return "", err
	}
	if !cfg.Offline && cfg.MaxAge <= 0 {
		return "", errors.New("no cached index allowed (MaxAge 0)")
	}
	p := filepath.Join(o.dir, "InRelease")
	fi, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if !cfg.Offline && o.now.Sub(fi.ModTime()) > cfg.MaxAge {
		return "", fmt.Errorf("cached InRelease is older than %v", cfg.MaxAge)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	return sha256Hex(data), nil
}

// fromCache opens the cached InRelease and indexes, re-verified.
func (o *opener) fromCache() (*Index, error) {
	p := filepath.Join(o.dir, "InRelease")
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no InRelease of %s from %s (run once with the network)", ErrNotCached, o.cfg.Suite, o.cfg.Mirror)
	}
	if err != nil {
		return nil, err
	}
	if !o.cfg.Offline && o.now.Sub(fi.ModTime()) > o.cfg.MaxAge {
		return nil, fmt.Errorf("cached InRelease is older than %v", o.cfg.MaxAge)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	rel, err := o.verify(data)
	if err != nil {
		return nil, fmt.Errorf("cached %w", err)
	}
	idx := o.index(rel, data)
	for _, comp := range o.cfg.Components {
		f, err := o.pick(rel, comp)
		if err != nil {
			return nil, err
		}
		pkgs, err := o.readCached(f)
		if err != nil {
			return nil, err
		}
		idx.Packages = append(idx.Packages, pkgs...)
	}
	o.log.Debug("index from cache", "suite", o.cfg.Suite, "date", rel.Date, "packages", len(idx.Packages))
	return idx, nil
}

// fromMirror fetches and verifies InRelease, then every component's index
// not already cached. The InRelease is cached last, so a cached InRelease
// always comes with its indexes.
func (o *opener) fromMirror(ctx context.Context) (*Index, error) {
	o.log.Info("fetching InRelease", "mirror", o.cfg.Mirror, "suite", o.cfg.Suite)
	data, err := o.g.readSmall(ctx, "dists/"+o.cfg.Suite+"/InRelease", maxInRelease)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("mirror %s has no suite %s (no dists/%s/InRelease): %w", o.cfg.Mirror, o.cfg.Suite, o.cfg.Suite, err)
		}
		return nil, fmt.Errorf("fetching InRelease of %s: %w", o.cfg.Suite, err)
	}
	rel, err := o.verify(data)
	if err != nil {
		return nil, err
	}
	o.warnIfOlder(rel)
	idx := o.index(rel, data)
	for _, comp := range o.cfg.Components {
		f, err := o.pick(rel, comp)
		if err != nil {
			return nil, err
		}
		pkgs, err := o.readCached(f)
		if err != nil {
			if !errors.Is(err, ErrNotCached) {
				o.log.Warn("cached index damaged, fetching it again", "file", f.stored, "err", err)
			}
			if pkgs, err = o.fetchIndex(ctx, rel, f); err != nil {
				return nil, err
			}
		}
		idx.Packages = append(idx.Packages, pkgs...)
	}
	if err := writeFile(filepath.Join(o.dir, "InRelease"), data); err != nil {
		return nil, err
	}
	return idx, nil
}

// verify checks an InRelease and the Release it carries.
func (o *opener) verify(data []byte) (*release, error) {
	text, err := verifyInRelease(data, o.kr, o.cfg.Suite, o.now)
	if err != nil {
		return nil, err
	}
	rel, err := parseRelease(text)
	if err != nil {
		return nil, fmt.Errorf("InRelease of %s: %w", o.cfg.Suite, err)
	}
	if rel.Suite != o.cfg.Suite && rel.Codename != o.cfg.Suite {
		// A validly signed Release of another suite, served in this
		// one's place, must not pass.
		return nil, verifyErrorf("InRelease at dists/%s is for suite %q, codename %q", o.cfg.Suite, rel.Suite, rel.Codename)
	}
	if !rel.validUntil.IsZero() && o.now.After(rel.validUntil) {
		return nil, verifyErrorf("InRelease of %s expired at %s (Valid-Until): the mirror is stale, or the clock is wrong",
			o.cfg.Suite, rel.validUntil.Format(time.RFC1123))
	}
	if len(rel.Architectures) > 0 && !contains(rel.Architectures, o.cfg.Architecture) {
		return nil, fmt.Errorf("suite %s has no architecture %s (it has %s)", o.cfg.Suite, o.cfg.Architecture, strings.Join(rel.Architectures, " "))
	}
	return rel, nil
}

// warnIfOlder notes a mirror going back in time: a stale mirror, or one
// replaying an old (validly signed) Release.
func (o *opener) warnIfOlder(rel *release) {
	old, err := os.ReadFile(filepath.Join(o.dir, "InRelease"))
	if err != nil {
		return
	}
	text, err := verifyInRelease(old, o.kr, o.cfg.Suite, o.now)
	if err != nil {
		return
	}
	if prev, err := parseRelease(text); err == nil && rel.date.Before(prev.date) {
		o.log.Warn("mirror's Release is older than the cached one", "suite", o.cfg.Suite, "date", rel.Date, "cached", prev.Date)
	}
}

func (o *opener) index(rel *release, data []byte) *Index {
	return &Index{
		Suite: o.cfg.Suite, Codename: rel.Codename, Date: rel.Date,
		Architecture: o.cfg.Architecture, Components: o.cfg.Components,
		InReleaseSHA256: sha256Hex(data),
	}
}

// indexFile is the Packages index chosen for a component.
type indexFile struct {
	comp   fileSum  // the file to download (Packages.xz, .gz or plain)
	plain  *fileSum // the uncompressed form's sum, when the Release lists it
	stored string   // its path in the cache
}

// pick chooses a component's index: Packages.xz, else .gz, else the plain
// file, among those the Release lists.
func (o *opener) pick(rel *release, comp string) (indexFile, error) {
	base := comp + "/binary-" + o.cfg.Architecture + "/Packages"
	var f indexFile
	if p, ok := rel.files[base]; ok {
		f.plain = &p
	}
	found := false
	for _, ext := range []string{".xz", ".gz", ""} {
		if s, ok := rel.files[base+ext]; ok {
			f.comp, found = s, true
			break
		}
	}
	if !found {
		return f, fmt.Errorf("the Release of %s lists no %s index (its components: %s)",
			o.cfg.Suite, base, strings.Join(rel.Components, " "))
	}
	if f.plain != nil {
		f.stored = filepath.Join(o.dir, "Packages-"+f.plain.sha256)
	} else {
		f.stored = filepath.Join(o.dir, "Packages-"+f.comp.sha256+filepath.Ext(f.comp.name))
	}
	return f, nil
}

// readCached parses a cached index, checking its size and sha256 in the
// same pass (ErrNotCached when it is not there).
func (o *opener) readCached(f indexFile) ([]*deb.Package, error) {
	r, err := os.Open(f.stored)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s index of %s", ErrNotCached, f.comp.name, o.cfg.Suite)
	}
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if f.plain != nil {
		return o.parseChecked(r, *f.plain)
	}
	// Stored as published: check the compressed bytes before a
	// decompressor sees them.
	if err := checkSum(r, f.comp); err != nil {
		return nil, fmt.Errorf("cached %s: %w", f.stored, err)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	text, err := decompress(r, filepath.Ext(f.comp.name))
	if err != nil {
		return nil, fmt.Errorf("%s of %s: %w", f.comp.name, o.cfg.Suite, err)
	}
	pkgs, err := deb.ParseIndex(text, o.cfg.Suite)
	if err != nil {
		return nil, fmt.Errorf("%s of %s: %w", f.comp.name, o.cfg.Suite, err)
	}
	return pkgs, nil
}

// parseChecked parses an uncompressed index while hashing it; a size or
// hash mismatch wins over a parse error, since it explains it.
func (o *opener) parseChecked(r io.Reader, want fileSum) ([]*deb.Package, error) {
	hr := &hashReader{r: io.LimitReader(r, want.size+1), h: sha256.New()}
	pkgs, perr := deb.ParseIndex(hr, o.cfg.Suite)
	if _, err := io.Copy(io.Discard, hr); err != nil {
		return nil, err
	}
	if err := hr.check(want); err != nil {
		return nil, fmt.Errorf("%s of %s: %w", want.name, o.cfg.Suite, err)
	}
	if perr != nil {
		return nil, fmt.Errorf("%s of %s: %w", want.name, o.cfg.Suite, perr)
	}
	return pkgs, nil
}

// fetchIndex downloads a component's index and caches it: uncompressed
// (checked against the Release's sum of the uncompressed form) when the
// Release allows, as published otherwise.
func (o *opener) fetchIndex(ctx context.Context, rel *release, f indexFile) ([]*deb.Package, error) {
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return nil, err
	}
	dl := f.stored
	if f.plain != nil && f.comp.name != f.plain.name {
		// Download next to the final name, decompress, then drop the
		// compressed copy.
		tmp, err := os.CreateTemp(o.dir, ".tmp-download-*")
		if err != nil {
			return nil, err
		}
		tmp.Close()
		dl = tmp.Name()
		defer os.Remove(dl)
	}
	if err := o.downloadIndex(ctx, rel, f.comp, dl); err != nil {
		return nil, err
	}
	if dl != f.stored {
		if err := decompressFile(dl, filepath.Ext(f.comp.name), f.stored, *f.plain); err != nil {
			return nil, fmt.Errorf("%s of %s: %w", f.comp.name, o.cfg.Suite, err)
		}
	}
	return o.readCached(f)
}

// downloadIndex fetches one index file, by hash when the Release offers it
// (a mirror updating between our InRelease and index requests then still
// serves the right file), else by name.
func (o *opener) downloadIndex(ctx context.Context, rel *release, s fileSum, dst string) error {
	dists := "dists/" + o.cfg.Suite + "/"
	o.log.Info("fetching index", "suite", o.cfg.Suite, "file", s.name, "bytes", s.size)
	if rel.AcquireByHash {
		err := o.g.download(ctx, dists+path.Dir(s.name)+"/by-hash/SHA256/"+s.sha256, dst, s.size, s.sha256, nil)
		if err == nil || !isNotFound(err) {
			return wrapIndex(err, s.name, o.cfg.Suite)
		}
	}
	return wrapIndex(o.g.download(ctx, dists+s.name, dst, s.size, s.sha256, nil), s.name, o.cfg.Suite)
}

func wrapIndex(err error, name, suite string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s of %s: %w", name, suite, err)
}

// decompressFile writes the decompressed src to dst (through a temporary
// name), checking it against want.
func decompressFile(src, ext, dst string, want fileSum) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	text, err := decompress(in, ext)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".tmp-"+filepath.Base(dst)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	hr := &hashReader{r: io.LimitReader(text, want.size+1), h: sha256.New()}
	if _, err := io.Copy(tmp, hr); err != nil {
		return fmt.Errorf("decompressing: %w", err)
	}
	if err := hr.check(want); err != nil {
		return fmt.Errorf("decompressed: %w", err)
	}
	return commit(tmp, dst)
}

func decompress(r io.Reader, ext string) (io.Reader, error) {
	switch ext {
	case "":
		return r, nil
	case ".xz":
		// The xz reader reads its input in small pieces: buffered, a
		// Debian-sized index decompresses in 2 s instead of 40.
		return xz.NewReader(bufio.NewReaderSize(r, 1<<16))
	case ".gz":
		return gzip.NewReader(bufio.NewReaderSize(r, 1<<16))
	}
	return nil, fmt.Errorf("unknown compression %q", ext)
}

// hashReader counts and hashes what is read through it.
type hashReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (h *hashReader) Read(b []byte) (int, error) {
	n, err := h.r.Read(b)
	h.h.Write(b[:n])
	h.n += int64(n)
	return n, err
}

func (h *hashReader) check(want fileSum) error {
	switch got := hex.EncodeToString(h.h.Sum(nil)); {
	case h.n != want.size:
		return verifyErrorf("%d bytes, the Release says %d", h.n, want.size)
	case got != want.sha256:
		return verifyErrorf("sha256 %s, the Release says %s", got, want.sha256)
	}
	return nil
}

func checkSum(r io.Reader, want fileSum) error {
	hr := &hashReader{r: io.LimitReader(r, want.size+1), h: sha256.New()}
	if _, err := io.Copy(io.Discard, hr); err != nil {
		return err
	}
	return hr.check(want)
}

// writeFile writes b to path through a temporary name and a rename.
func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return commit(tmp, path)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
