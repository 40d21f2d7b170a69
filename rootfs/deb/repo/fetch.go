package repo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"keel/rootfs/deb"
)

// FetchConfig says where .deb files come from and go.
type FetchConfig struct {
	// Mirror is the repository's root URL (http://, https:// or
	// file://); a package's Filename is relative to it.
	Mirror string
	// CacheDir is the same directory as Config.CacheDir; files go to
	// CacheDir/pool/SHA256.deb.
	CacheDir string
	Client   *http.Client
	Logger   *slog.Logger
	// Jobs is how many downloads run at once; default 4.
	Jobs int
	// Offline: use only the cache; ErrNotCached names what is missing.
	Offline bool
	// Rehash re-hashes files already in the cache. Off by default: a
	// file gets its final name only after its sha256 matched while it
	// streamed in (and was synced), so a cached file of the right size
	// is trusted; re-hashing a server image's ~150 MB of packages would
	// cost about half a second of a warm build on a build machine.
	// Turn it on where a cache may have been damaged or altered.
	Rehash bool
}

// PoolPath is where the .deb with this sha256 lives in the cache.
func PoolPath(cacheDir, sha256 string) string {
	return filepath.Join(cacheDir, "pool", strings.ToLower(sha256)+".deb")
}

// Fetch makes sure every package's .deb is in the cache and returns their
// paths, in pkgs' order. Only each package's Filename, Size and SHA256 are
// used (and Name and Version for messages), so packages read from a lock
// file, with no Index at hand, work the same as an Index's.
//
// Downloads run Jobs at a time; each is checked against Size and SHA256 as
// it streams and renamed into place only when both match, so a mismatch
// leaves nothing under the final name. A package already cached does no
// network I/O. progress, if not nil, is called (never concurrently) with
// the bytes downloaded so far and the total to download: first with
// (0, total), total counting only what is not cached. Canceling ctx stops
// the downloads.
func Fetch(ctx context.Context, cfg FetchConfig, pkgs []*deb.Package, progress func(done, total int64)) ([]string, error) {
	if cfg.CacheDir == "" {
		return nil, errors.New("repo: no cache directory")
	}
	log := logger(cfg.Logger)
	paths := make([]string, len(pkgs))
	var todo []*deb.Package
	var total int64
	queued := map[string]bool{}
	for i, p := range pkgs {
		if p.Filename == "" || !safeRel(p.Filename) || !isSHA256(p.SHA256) || p.Size <= 0 {
			return nil, fmt.Errorf("%s: no usable Filename, Size and SHA256 (%q, %d, %q)", p, p.Filename, p.Size, p.SHA256)
		}
		paths[i] = PoolPath(cfg.CacheDir, p.SHA256)
		if queued[paths[i]] {
			continue
		}
		queued[paths[i]] = true
		ok, err := cached(paths[i], p, cfg.Rehash)
		if err != nil {
			return nil, err
		}
		if !ok {
			todo = append(todo, p)
			total += p.Size
		}
	}
	if progress == nil {
		progress = func(int64, int64) {}
	}
	progress(0, total)
	if len(todo) == 0 {
		return paths, nil
	}
	if cfg.Offline {
		var names []string
		for _, p := range todo {
			names = append(names, p.Name)
		}
		return nil, fmt.Errorf("%w: %d packages (%d bytes): %s", ErrNotCached, len(todo), total, strings.Join(names, ", "))
	}
	g, err := newGetter(cfg.Mirror, cfg.Client)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.CacheDir, "pool"), 0o755); err != nil {
		return nil, err
	}
	log.Info("downloading packages", "count", len(todo), "bytes", total)

	var mu sync.Mutex
	var done int64
	add := func(n int64) {
		mu.Lock()
		done += n
		progress(done, total)
		mu.Unlock()
	}
	jobs := cfg.Jobs
	if jobs <= 0 {
		jobs = 4
	}
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(jobs)
	for _, p := range todo {
		eg.Go(func() error {
			log.Debug("downloading", "package", p.String(), "file", p.Filename, "bytes", p.Size)
			if err := g.download(ctx, p.Filename, PoolPath(cfg.CacheDir, p.SHA256), p.Size, strings.ToLower(p.SHA256), add); err != nil {
				return fmt.Errorf("package %s: %w", p, err)
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	return paths, nil
}

// cached says whether the package's file is in the cache: by size, or by
// size and sha256 with rehash. A file that fails is left for the download
// to replace (by rename), never trusted.
func cached(path string, p *deb.Package, rehash bool) (bool, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() || fi.Size() != p.Size {
		return false, nil
	}
	if !rehash {
		return true, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	return fmt.Sprintf("%x", h.Sum(nil)) == strings.ToLower(p.SHA256), nil
}
