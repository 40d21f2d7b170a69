package debfetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// CacheEnv names the environment variable that overrides the cache
// directory.
const CacheEnv = "KEEL_CACHE"

// Sentinel errors.
var (
	// ErrNotInstalled: apt-get, apt-cache, dpkg-deb or depmod is missing.
	ErrNotInstalled = errors.New("not installed")
	// ErrNotFound: apt knows no installable version of the package, even
	// after an apt-get update.
	ErrNotFound = errors.New("package not found")
)

// DefaultDir is keel's cache directory: $KEEL_CACHE if set, else
// $XDG_CACHE_HOME/keel, else ~/.cache/keel. It is outside any checkout, so
// downloads are shared by every build and test on the machine.
func DefaultDir() (string, error) {
	if d := os.Getenv(CacheEnv); d != "" {
		return d, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the cache directory (set %s): %w", CacheEnv, err)
	}
	return filepath.Join(base, "keel"), nil
}

// Cache is a package cache directory.
type Cache struct {
	// Dir is the cache directory; "" means DefaultDir().
	Dir string
	// Log receives progress (downloads, apt-get update); nil discards it.
	Log *slog.Logger
}

func (c *Cache) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c.Log
}

func (c *Cache) dir() (string, error) {
	d := c.Dir
	if d == "" {
		var err error
		if d, err = DefaultDir(); err != nil {
			return "", err
		}
	}
	for _, sub := range []string{"debs", "unpacked"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
			return "", err
		}
	}
	return d, nil
}

// lock takes the cache's lock file, waiting for other processes (a second
// test binary fetching the same kernel) until ctx ends. The returned
// function releases it.
func lock(ctx context.Context, dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for the lock on %s: %w", f.Name(), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
