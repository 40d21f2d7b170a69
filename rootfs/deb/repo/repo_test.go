package repo_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"keel/rootfs/deb"
	"keel/rootfs/deb/debtest"
	"keel/rootfs/deb/repo"
	"keel/rootfs/deb/repotest"
)

// debs are the packages of the test repositories: an epoch, a tilde, a
// library prefix in the pool path, and a second architecture.
var debs = []debtest.Deb{
	{Control: [][2]string{{"Package", "hello"}, {"Version", "2.10-3"}, {"Depends", "libfoo1 (>= 1:2.0~rc1)"},
		{"Description", "says hello"}}, Files: []debtest.File{{Path: "./usr/bin/hello", Mode: 0o755, Body: "#!/bin/sh\necho hello\n"}}},
	{Control: [][2]string{{"Package", "libfoo1"}, {"Version", "1:2.0~rc1-1"}, {"Multi-Arch", "same"}},
		Files: []debtest.File{{Path: "./usr/lib/libfoo.so.1", Body: strings.Repeat("foo", 5000)}}},
	{Control: [][2]string{{"Package", "base-files"}, {"Version", "12.4"}, {"Architecture", "all"}, {"Essential", "yes"},
		{"Priority", "required"}}, Files: []debtest.File{{Path: "./etc/debian_version", Body: "12.4\n"}}},
}

func config(r *repotest.Repo, cache string) repo.Config {
	return repo.Config{Mirror: r.URL, Suite: r.Suite, Keyring: []string{r.Keyring}, CacheDir: cache}
}

func fetchConfig(r *repotest.Repo, cache string) repo.FetchConfig {
	return repo.FetchConfig{Mirror: r.URL, CacheDir: cache}
}

func TestOpenFetch(t *testing.T) {
	other := repotest.NewKey(t, "another archive key")
	tests := []struct {
		name string
		opts repotest.Options
		file bool // through a file:// URL instead of the server
	}{
		{name: "xz", opts: repotest.Options{}},
		{name: "gz only", opts: repotest.Options{Compressions: []string{"gz"}}},
		{name: "plain only", opts: repotest.Options{Compressions: []string{"none"}}},
		{name: "xz without a plain sum", opts: repotest.Options{NoPlainSum: true}},
		{name: "gz without a plain sum", opts: repotest.Options{NoPlainSum: true, Compressions: []string{"gz"}}},
		{name: "xz and gz, by hash", opts: repotest.Options{Compressions: []string{"xz", "gz"}, ByHash: true}},
		{name: "codename differs from the directory", opts: repotest.Options{Suite: "stable", Codename: "bookworm"}},
		{name: "file URL", opts: repotest.Options{}, file: true},
		{name: "valid until tomorrow", opts: repotest.Options{ValidUntil: time.Now().Add(24 * time.Hour)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.opts.Debs = debs
			r := repotest.New(t, tt.opts)
			cache := t.TempDir()
			cfg, fcfg := config(r, cache), fetchConfig(r, cache)
			if tt.file {
				cfg.Mirror, fcfg.Mirror = "file://"+r.Dir, "file://"+r.Dir
			}
			idx := open(t, cfg)
			checkIndex(t, r, idx)
			paths := fetch(t, fcfg, idx.Packages)
			checkPool(t, r, idx.Packages, paths)
			if tt.file && r.Requests() != 0 {
				t.Errorf("%d HTTP requests for a file:// mirror", r.Requests())
			}
			noTemp(t, cache)
		})
	}
	t.Run("two signatures, one key known", func(t *testing.T) {
		t.Parallel()
		r := repotest.New(t, repotest.Options{Debs: debs})
		// Debian signs with two archive keys; a keyring holding either
		// one must do. Re-sign with the unknown key first.
		if err := r.WriteRelease(r.ReleaseText(), other, r.Key); err != nil {
			t.Fatal(err)
		}
		idx := open(t, config(r, t.TempDir()))
		checkIndex(t, r, idx)
		kr := filepath.Join(t.TempDir(), "other.gpg")
		repotest.WriteKeyring(t, kr, other)
		cfg := config(r, t.TempDir())
		cfg.Keyring = []string{kr}
		checkIndex(t, r, open(t, cfg))
	})
	t.Run("components", func(t *testing.T) {
		t.Parallel()
		r := repotest.New(t, repotest.Options{Debs: debs[:1], Components: map[string][]debtest.Deb{
			"contrib": {{Control: [][2]string{{"Package", "extra"}, {"Version", "1"}}}},
		}})
		cfg := config(r, t.TempDir())
		cfg.Components = []string{"main", "contrib", "main"}
		idx := open(t, cfg)
		if got := names(idx.Packages); got != "hello extra" {
			t.Errorf("packages %q, want main's then contrib's", got)
		}
		if strings.Join(idx.Components, " ") != "main contrib" {
			t.Errorf("components %q", idx.Components)
		}
	})
}

func open(t *testing.T, cfg repo.Config) *repo.Index {
	t.Helper()
	idx, err := repo.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func fetch(t *testing.T, cfg repo.FetchConfig, pkgs []*deb.Package) []string {
	t.Helper()
	paths, err := repo.Fetch(t.Context(), cfg, pkgs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

func checkIndex(t *testing.T, r *repotest.Repo, idx *repo.Index) {
	t.Helper()
	if got, want := names(idx.Packages), names(r.Packages()); got != want {
		t.Errorf("packages %q, want %q", got, want)
	}
	for _, p := range idx.Packages {
		w := r.Package(p.Name)
		if p.Version.String() != w.Version.String() || p.SHA256 != w.SHA256 || p.Size != w.Size ||
			p.Filename != w.Filename || p.Origin != r.Suite {
			t.Errorf("%s: got %+v, want %+v", p.Name, p, w)
		}
	}
	if idx.Suite != r.Suite || idx.Codename != r.Opts.Codename || idx.Date != repotest.FixedDate.Format(time.RFC1123) {
		t.Errorf("suite %q codename %q date %q", idx.Suite, idx.Codename, idx.Date)
	}
	if want := hexSum(r.Read(t, r.Dists("InRelease"))); idx.InReleaseSHA256 != want {
		t.Errorf("InReleaseSHA256 %s, want %s", idx.InReleaseSHA256, want)
	}
}

// checkPool checks that each package's file is in the pool, content-
// addressed, with the published bytes.
func checkPool(t *testing.T, r *repotest.Repo, pkgs []*deb.Package, paths []string) {
	t.Helper()
	if len(paths) != len(pkgs) {
		t.Fatalf("%d paths for %d packages", len(paths), len(pkgs))
	}
	for i, p := range pkgs {
		b, err := os.ReadFile(paths[i])
		if err != nil {
			t.Fatal(err)
		}
		if hexSum(b) != p.SHA256 || filepath.Base(paths[i]) != p.SHA256+".deb" || !bytes.Equal(b, r.Deb(p.Name)) {
			t.Errorf("%s: %s has sha256 %s, want %s", p.Name, paths[i], hexSum(b), p.SHA256)
		}
	}
}

// TestRefused damages one part of a repository at a time. Each must be
// refused with a clear error and leave nothing under a final name in the
// cache (nor a temporary file).
func TestRefused(t *testing.T) {
	other := repotest.NewKey(t, "an impostor")
	tests := []struct {
		name   string
		opts   repotest.Options
		damage func(t *testing.T, r *repotest.Repo)
		fetch  string // "": Open fails; else Fetch of this package fails (Open succeeds)
		verify bool   // the error is ErrVerify
		want   []string
	}{
		{
			name: "tampered Packages.xz",
			damage: func(t *testing.T, r *repotest.Repo) {
				r.Tamper(t, r.Dists("main/binary-amd64/Packages.xz"), flipLast)
			},
			verify: true, want: []string{"main/binary-amd64/Packages.xz of bookworm", "sha256", "expected"},
		},
		{
			name: "tampered Packages.xz, no plain sum",
			opts: repotest.Options{NoPlainSum: true},
			damage: func(t *testing.T, r *repotest.Repo) {
				r.Tamper(t, r.Dists("main/binary-amd64/Packages.xz"), flipLast)
			},
			verify: true, want: []string{"Packages.xz of bookworm", "sha256"},
		},
		{
			name: "tampered by-hash index",
			opts: repotest.Options{ByHash: true},
			damage: func(t *testing.T, r *repotest.Repo) {
				xzSum := hexSum(r.Read(t, r.Dists("main/binary-amd64/Packages.xz")))
				r.Tamper(t, r.Dists("main/binary-amd64/by-hash/SHA256/"+xzSum), flipLast)
			},
			verify: true, want: []string{"by-hash/SHA256", "sha256"},
		},
		{
			name: "Packages.xz longer than the Release says",
			damage: func(t *testing.T, r *repotest.Repo) {
				r.Tamper(t, r.Dists("main/binary-amd64/Packages.xz"), func(b []byte) []byte { return append(b, 0) })
			},
			verify: true, want: []string{"Packages.xz", "announces"},
		},
		{
			name: "InRelease signed by another key",
			damage: func(t *testing.T, r *repotest.Repo) {
				if err := r.WriteRelease(r.ReleaseText(), other); err != nil {
					t.Fatal(err)
				}
			},
			verify: true, want: []string{"InRelease of bookworm is not signed by a key in", "archive-keyring.gpg", "it is signed by key"},
		},
		{
			name: "InRelease altered after signing",
			damage: func(t *testing.T, r *repotest.Repo) {
				r.Tamper(t, r.Dists("InRelease"), func(b []byte) []byte {
					return bytes.Replace(b, []byte("Label: keel-test"), []byte("Label: keel-tesT"), 1)
				})
			},
			verify: true, want: []string{"InRelease of bookworm: bad signature"},
		},
		{
			name: "index sum altered after signing",
			damage: func(t *testing.T, r *repotest.Repo) {
				xzSum := hexSum(r.Read(t, r.Dists("main/binary-amd64/Packages.xz")))
				r.Tamper(t, r.Dists("InRelease"), func(b []byte) []byte {
					return bytes.Replace(b, []byte(xzSum), []byte(strings.Repeat("0", 64)), 1)
				})
			},
			verify: true, want: []string{"bad signature"},
		},
		{
			name: "unsigned text before the message",
			damage: func(t *testing.T, r *repotest.Repo) {
				r.Tamper(t, r.Dists("InRelease"), func(b []byte) []byte {
					return append([]byte("Origin: evil\n\n"), b...)
				})
			},
			verify: true, want: []string{"not a clearsigned message"},
		},
		{
			name: "unsigned text after the signature",
			damage: func(t *testing.T, r *repotest.Repo) {
				r.Tamper(t, r.Dists("InRelease"), func(b []byte) []byte { return append(b, "Origin: evil\n"...) })
			},
			verify: true, want: []string{"data after its signature"},
		},
		{
			name: "a plain Release, not clearsigned",
			damage: func(t *testing.T, r *repotest.Repo) {
				r.Tamper(t, r.Dists("InRelease"), func([]byte) []byte { return r.Read(t, r.Dists("Release")) })
			},
			verify: true, want: []string{"not a clearsigned message"},
		},
		{
			name:   "expired Valid-Until",
			opts:   repotest.Options{ValidUntil: time.Now().Add(-time.Hour)},
			verify: true, want: []string{"InRelease of bookworm expired at", "Valid-Until"},
		},
		{
			name:   "another suite's Release",
			opts:   repotest.Options{ReleaseSuite: "testing", Codename: "trixie", Suite: "bookworm"},
			verify: true, want: []string{`is for suite "testing", codename "trixie"`},
		},
		{
			name: "no InRelease",
			damage: func(t *testing.T, r *repotest.Repo) {
				r.Fault(status("/InRelease", http.StatusNotFound))
			},
			want: []string{"has no suite bookworm", "404 Not Found"},
		},
		{
			name: "server error on the index",
			damage: func(t *testing.T, r *repotest.Repo) {
				r.Fault(status("Packages.xz", http.StatusInternalServerError))
			},
			want: []string{"Packages.xz of bookworm", "500 Internal Server Error"},
		},
		{
			name: "truncated index download",
			damage: func(t *testing.T, r *repotest.Repo) {
				r.Fault(truncate(r, "Packages.xz"))
			},
			want: []string{"Packages.xz of bookworm", "cut short"},
		},
		{
			name: "tampered .deb", fetch: "libfoo1",
			damage: func(t *testing.T, r *repotest.Repo) {
				r.Tamper(t, r.Package("libfoo1").Filename, flipLast)
			},
			verify: true, want: []string{"package libfoo1=1:2.0~rc1-1 (amd64)", "sha256 is", "expected " + "SUM"},
		},
		{
			name: ".deb of the wrong size", fetch: "hello",
			damage: func(t *testing.T, r *repotest.Repo) {
				r.Tamper(t, r.Package("hello").Filename, func(b []byte) []byte { return b[:len(b)-1] })
			},
			verify: true, want: []string{"package hello=2.10-3", "announces", "expected SIZE"},
		},
		{
			name: "truncated .deb download", fetch: "libfoo1",
			damage: func(t *testing.T, r *repotest.Repo) {
				r.Fault(truncate(r, ".deb"))
			},
			want: []string{"package libfoo1", "cut short after", "of SIZE bytes"},
		},
		{
			name: ".deb not on the mirror", fetch: "hello",
			damage: func(t *testing.T, r *repotest.Repo) {
				r.Fault(status("/hello_", http.StatusNotFound))
			},
			want: []string{"package hello=2.10-3", "404"},
		},
		{
			name: "server error on a .deb", fetch: "base-files",
			damage: func(t *testing.T, r *repotest.Repo) {
				r.Fault(status("/base-files_", http.StatusInternalServerError))
			},
			want: []string{"package base-files", "500"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.opts.Debs = debs
			r := repotest.New(t, tt.opts)
			if tt.damage != nil {
				tt.damage(t, r)
			}
			cache := t.TempDir()
			idx, err := repo.Open(t.Context(), config(r, cache))
			if tt.fetch != "" {
				if err != nil {
					t.Fatal(err)
				}
				before := files(t, cache)
				p := r.Package(tt.fetch)
				_, err = repo.Fetch(t.Context(), fetchConfig(r, cache), []*deb.Package{p}, nil)
				for i, w := range tt.want {
					w = strings.ReplaceAll(w, "SUM", p.SHA256)
					tt.want[i] = strings.ReplaceAll(w, "SIZE", strconv.FormatInt(p.Size, 10))
				}
				if after := files(t, cache); strings.Join(after, " ") != strings.Join(before, " ") {
					t.Errorf("the cache changed: %q, was %q", after, before)
				}
			} else if idx != nil {
				t.Fatalf("opened, %d packages", len(idx.Packages))
			}
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if errors.Is(err, repo.ErrVerify) != tt.verify {
				t.Errorf("errors.Is(%v, ErrVerify) = %v", err, !tt.verify)
			}
			if tt.fetch == "" {
				if f := files(t, cache); len(f) > 0 {
					t.Errorf("files left in the cache: %q", f)
				}
			}
		})
	}
}

// TestWarmCache: once a repository and its packages are cached, Open with
// MaxAge and Fetch do no network I/O, and Offline works with the server
// gone.
func TestWarmCache(t *testing.T) {
	r := repotest.New(t, repotest.Options{Debs: debs})
	cache := t.TempDir()
	cfg := config(r, cache)
	first := open(t, cfg)
	fetch(t, fetchConfig(r, cache), first.Packages)

	n := r.Requests()
	cfg.MaxAge = time.Hour
	warm := open(t, cfg)
	paths := fetch(t, fetchConfig(r, cache), warm.Packages)
	if r.Requests() != n {
		t.Errorf("a warm Open and Fetch made %d requests", r.Requests()-n)
	}
	if warm.InReleaseSHA256 != first.InReleaseSHA256 || names(warm.Packages) != names(first.Packages) {
		t.Errorf("warm index differs: %+v", warm)
	}

	// Older than MaxAge: back to the mirror.
	cfg.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	open(t, cfg)
	if r.Requests() == n {
		t.Error("a stale cache did not go to the mirror")
	}

	r.Close()
	cfg.Now = nil
	if _, err := repo.Open(t.Context(), config(r, cache)); err == nil {
		t.Error("Open without MaxAge succeeded with the server gone")
	}
	for _, c := range []repo.Config{cfg, {Mirror: r.URL, Suite: r.Suite, Keyring: []string{r.Keyring}, CacheDir: cache, Offline: true}} {
		idx := open(t, c)
		if idx.InReleaseSHA256 != first.InReleaseSHA256 || len(idx.Packages) != len(debs) {
			t.Errorf("from the cache: %+v", idx)
		}
	}
	fc := fetchConfig(r, cache)
	fc.Offline = true
	var calls [][2]int64
	again, err := repo.Fetch(t.Context(), fc, first.Packages, func(done, total int64) { calls = append(calls, [2]int64{done, total}) })
	if err != nil {
		t.Fatal(err)
	}
	checkPool(t, r, first.Packages, again)
	if strings.Join(again, " ") != strings.Join(paths, " ") {
		t.Errorf("paths %q, were %q", again, paths)
	}
	if len(calls) != 1 || calls[0] != [2]int64{0, 0} {
		t.Errorf("progress of a cached fetch: %v", calls)
	}
}

func TestOfflineNotCached(t *testing.T) {
	r := repotest.New(t, repotest.Options{Debs: debs})
	cache := t.TempDir()
	cfg := config(r, cache)
	cfg.Offline = true
	_, err := repo.Open(t.Context(), cfg)
	if !errors.Is(err, repo.ErrNotCached) || !strings.Contains(err.Error(), "no InRelease of bookworm") {
		t.Errorf("Open: %v", err)
	}
	_, err = repo.Fetch(t.Context(), repo.FetchConfig{Mirror: r.URL, CacheDir: cache, Offline: true}, r.Packages(), nil)
	if !errors.Is(err, repo.ErrNotCached) || !strings.Contains(err.Error(), "3 packages") ||
		!strings.Contains(err.Error(), "base-files, hello, libfoo1") {
		t.Errorf("Fetch: %v", err)
	}
	if r.Requests() != 0 {
		t.Errorf("%d requests offline", r.Requests())
	}
}

// TestCacheDamaged: a cached index or package that no longer matches is
// never used: offline it is an error, online it is fetched again.
func TestCacheDamaged(t *testing.T) {
	r := repotest.New(t, repotest.Options{Debs: debs})
	cache := t.TempDir()
	idx := open(t, config(r, cache))
	paths := fetch(t, fetchConfig(r, cache), idx.Packages)

	indexes, _ := filepath.Glob(filepath.Join(cache, "dists", "*", "Packages-*"))
	if len(indexes) != 1 {
		t.Fatalf("cached indexes: %q", indexes)
	}
	damage(t, indexes[0])
	cfg := config(r, cache)
	cfg.Offline = true
	if _, err := repo.Open(t.Context(), cfg); !errors.Is(err, repo.ErrVerify) {
		t.Errorf("offline Open of a damaged index: %v", err)
	}
	checkIndex(t, r, open(t, config(r, cache)))
	open(t, cfg) // repaired

	// A damaged package of the right size: trusted by size (the
	// default), caught by Rehash and downloaded again.
	damage(t, paths[1])
	fc := fetchConfig(r, cache)
	n := r.Requests()
	fetch(t, fc, idx.Packages)
	if r.Requests() != n {
		t.Error("a cached package of the right size was downloaded again without Rehash")
	}
	fc.Rehash = true
	checkPool(t, r, idx.Packages, fetch(t, fc, idx.Packages))
	if r.Requests() != n+1 {
		t.Errorf("%d requests to repair one package", r.Requests()-n)
	}
	// A short file is never trusted.
	if err := os.Truncate(paths[0], 10); err != nil {
		t.Fatal(err)
	}
	fc.Rehash = false
	checkPool(t, r, idx.Packages, fetch(t, fc, idx.Packages))
}

func TestFetchProgressAndSharing(t *testing.T) {
	r := repotest.New(t, repotest.Options{Debs: debs})
	cache := t.TempDir()
	idx := open(t, config(r, cache))
	var want int64
	for _, p := range idx.Packages {
		want += p.Size
	}
	// The same package twice is downloaded once; paths follow the input.
	pkgs := append(idx.Packages, idx.Packages[0])
	var mu sync.Mutex
	var calls [][2]int64
	paths, err := repo.Fetch(t.Context(), fetchConfig(r, cache), pkgs, func(done, total int64) {
		mu.Lock()
		calls = append(calls, [2]int64{done, total})
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if paths[len(paths)-1] != paths[0] {
		t.Errorf("duplicate got %s and %s", paths[len(paths)-1], paths[0])
	}
	if r.Requests() != 2+int64(len(idx.Packages)) {
		t.Errorf("%d requests", r.Requests())
	}
	if len(calls) < 2 || calls[0] != [2]int64{0, want} || calls[len(calls)-1] != [2]int64{want, want} {
		t.Errorf("progress calls %v, want (0, %d) ... (%d, %d)", calls, want, want, want)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i][0] < calls[i-1][0] || calls[i][1] != want {
			t.Errorf("progress went %v → %v", calls[i-1], calls[i])
		}
	}

	// Processes sharing a cache: several openers and fetchers at once
	// into a fresh one, each renaming into place.
	shared := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			if i%2 == 0 {
				_, errs[i] = repo.Open(context.Background(), config(r, shared))
			} else {
				_, errs[i] = repo.Fetch(context.Background(), fetchConfig(r, shared), idx.Packages, nil)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	checkPool(t, r, idx.Packages, fetch(t, repo.FetchConfig{CacheDir: shared, Offline: true}, idx.Packages))
	offline := config(r, shared)
	offline.Offline = true
	checkIndex(t, r, open(t, offline))
	noTemp(t, shared)
}

func TestFetchCancel(t *testing.T) {
	r := repotest.New(t, repotest.Options{Debs: debs})
	cache := t.TempDir()
	open(t, config(r, cache))
	ctx, cancel := context.WithCancel(t.Context())
	started := make(chan struct{}, len(debs))
	r.Fault(func(w http.ResponseWriter, req *http.Request) bool {
		if !strings.HasSuffix(req.URL.Path, ".deb") {
			return false
		}
		w.Header().Set("Content-Length", strconv.FormatInt(r.Package("libfoo1").Size, 10))
		w.Write([]byte("!<arch>\n"))
		w.(http.Flusher).Flush()
		started <- struct{}{}
		<-req.Context().Done()
		return true
	})
	go func() {
		<-started
		cancel()
	}()
	_, err := repo.Fetch(ctx, fetchConfig(r, cache), []*deb.Package{r.Package("libfoo1")}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	if pool, _ := filepath.Glob(filepath.Join(cache, "pool", "*")); len(pool) > 0 {
		t.Errorf("left in the pool: %q", pool)
	}
}

// TestKeyrings: the keyring as a binary file, an armored file, inline
// armored or binary bytes; and keyrings that cannot be used.
func TestKeyrings(t *testing.T) {
	r := repotest.New(t, repotest.Options{Debs: debs[:1]})
	binary, err := os.ReadFile(r.Keyring)
	if err != nil {
		t.Fatal(err)
	}
	var armored bytes.Buffer
	w, err := armor.Encode(&armored, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(binary)
	w.Close()
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	asc := write("archive.asc", armored.Bytes())
	// An armored file with two blocks: an unrelated key, then ours.
	var two bytes.Buffer
	w, _ = armor.Encode(&two, openpgp.PublicKeyType, nil)
	repotest.NewKey(t, "unrelated").Serialize(w)
	w.Close()
	two.WriteString("\n")
	two.Write(armored.Bytes())
	tests := []struct {
		name    string
		keyring []string
		data    []byte
		err     string
	}{
		{name: "binary file", keyring: []string{r.Keyring}},
		{name: "armored file", keyring: []string{asc}},
		{name: "armored file, two blocks", keyring: []string{write("two.asc", two.Bytes())}},
		{name: "inline armored", data: armored.Bytes()},
		{name: "inline binary", data: binary},
		{name: "garbage file and a good one", keyring: []string{write("junk.gpg", []byte("junk")), r.Keyring}, err: "junk.gpg: not an OpenPGP keyring"},
		{name: "empty file", keyring: []string{write("empty.gpg", nil)}, err: "empty.gpg"},
		{name: "missing file", keyring: []string{filepath.Join(dir, "absent.gpg")}, err: "absent.gpg"},
		{name: "no keyring", err: "no keyring"},
		{name: "armored signature, not a key", data: []byte("-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n"), err: "not a public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config(r, t.TempDir())
			cfg.Keyring, cfg.KeyringData = tt.keyring, tt.data
			_, err := repo.Open(t.Context(), cfg)
			if tt.err == "" && err != nil {
				t.Fatal(err)
			}
			if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("error %v, want one saying %q", err, tt.err)
			}
		})
	}
}

func status(suffix string, code int) func(http.ResponseWriter, *http.Request) bool {
	return func(w http.ResponseWriter, req *http.Request) bool {
		if !strings.Contains(req.URL.Path, suffix) {
			return false
		}
		http.Error(w, http.StatusText(code), code)
		return true
	}
}

// truncate serves the first half of matching files under the full
// Content-Length, then drops the connection.
func truncate(r *repotest.Repo, suffix string) func(http.ResponseWriter, *http.Request) bool {
	return func(w http.ResponseWriter, req *http.Request) bool {
		if !strings.Contains(req.URL.Path, suffix) {
			return false
		}
		b, err := os.ReadFile(filepath.Join(r.Dir, filepath.FromSlash(req.URL.Path)))
		if err != nil {
			return false
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b[:len(b)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
}

func flipLast(b []byte) []byte {
	b = append([]byte(nil), b...)
	b[len(b)-1] ^= 0xff
	return b
}

func damage(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, flipLast(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

// files lists every regular file under dir.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func noTemp(t *testing.T, dir string) {
	t.Helper()
	for _, f := range files(t, dir) {
		if strings.HasPrefix(filepath.Base(f), ".tmp") {
			t.Errorf("temporary file left: %s", f)
		}
	}
}

func names(pkgs []*deb.Package) string {
	var n []string
	for _, p := range pkgs {
		n = append(n, p.Name)
	}
	return strings.Join(n, " ")
}

func hexSum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
