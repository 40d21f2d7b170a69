package debfetch

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Package is a fetched and unpacked Debian package.
type Package struct {
	// Name and Version are exact: Version is the one apt chose (or the one
	// asked for), epoch included ("1:1.35.0-4+deb12u1+b1").
	Name, Version string
	// Deb is the downloaded .deb in the cache.
	Deb string
	// Dir holds the package's files as `dpkg-deb -x` unpacks them
	// (Dir/bin/busybox, Dir/boot/vmlinuz-...). It is shared: read it, do
	// not change it.
	Dir string
}

// Fetch fetches pkg into the cache directory cacheDir ("" for DefaultDir)
// and unpacks it. See Cache.Fetch.
func Fetch(ctx context.Context, cacheDir, pkg string) (*Package, error) {
	return (&Cache{Dir: cacheDir}).Fetch(ctx, pkg)
}

// Fetch returns pkg from the cache, downloading and unpacking it first if
// this version is not there yet. pkg is "name" for apt's candidate version
// or "name=version" for an exact one. If apt knows no version of the
// package (fresh machine, empty package lists), Fetch runs apt-get update
// once, which needs root, and logs that it did.
func (c *Cache) Fetch(ctx context.Context, pkg string) (*Package, error) {
	if err := need("apt-get", "apt-cache", "dpkg-deb"); err != nil {
		return nil, err
	}
	dir, err := c.dir()
	if err != nil {
		return nil, err
	}
	name, version, _ := strings.Cut(pkg, "=")
	if version != "" {
		// An exact version already unpacked needs no apt at all: it may be
		// one the mirror has since dropped.
		if p := cached(dir, name, version); p != nil {
			return p, nil
		}
	}
	st, err := c.resolve(ctx, name, version)
	if err != nil {
		return nil, err
	}
	p := &Package{Name: st["Package"], Version: st["Version"]}
	key := p.Name + "_" + escapeVersion(p.Version)
	p.Dir = filepath.Join(dir, "unpacked", key)
	p.Deb = filepath.Join(dir, "debs", key+"_"+st["Architecture"]+".deb")

	unlock, err := lock(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if isDir(p.Dir) {
		c.log().Debug("cached", "package", p.Name, "version", p.Version, "dir", p.Dir)
		return p, nil
	}
	if !isFile(p.Deb) {
		c.log().Info("downloading", "package", p.Name, "version", p.Version, "size", st["Size"])
		if err := download(ctx, dir, p.Name+"="+p.Version, p.Deb); err != nil {
			return nil, err
		}
	}
	if err := unpack(ctx, dir, p.Deb, p.Dir); err != nil {
		return nil, err
	}
	return p, nil
}

// cached returns the unpacked name=version if the cache has it.
func cached(dir, name, version string) *Package {
	key := name + "_" + escapeVersion(version)
	debs, _ := filepath.Glob(filepath.Join(dir, "debs", key+"_*.deb"))
	unpacked := filepath.Join(dir, "unpacked", key)
	if len(debs) != 1 || !isDir(unpacked) {
		return nil
	}
	return &Package{Name: name, Version: version, Deb: debs[0], Dir: unpacked}
}

// resolve returns apt's record of name at version ("" for the candidate).
func (c *Cache) resolve(ctx context.Context, name, version string) (stanza, error) {
	updated := false
	for {
		v := version
		if v == "" {
			out, err := run(ctx, "", "apt-cache", "policy", name)
			if err != nil {
				return nil, err
			}
			known, candidate := parsePolicy(out)
			if candidate == "" && known {
				return nil, fmt.Errorf("%s: %w: apt has no installable version (a purely virtual package? name a package that provides it)", name, ErrNotFound)
			}
			v = candidate
		}
		var showErr error
		if v != "" {
			out, err := run(ctx, "", "apt-cache", "show", name+"="+v)
			for _, st := range parseStanzas(out) {
				if st["Package"] == name && st["Version"] == v {
					return st, nil
				}
			}
			showErr = err
		}
		if updated {
			err := fmt.Errorf("%s: %w, even after apt-get update", nameVersion(name, version), ErrNotFound)
			if showErr != nil {
				err = fmt.Errorf("%w: %v", err, showErr)
			}
			return nil, err
		}
		// A fresh machine (or container) has empty package lists; anything
		// else missing is more likely a typo, which the update then shows.
		c.log().Info("apt-get update: apt knows no such package yet", "package", nameVersion(name, version))
		if _, err := run(ctx, "", "apt-get", "update"); err != nil {
			return nil, fmt.Errorf("%s: apt knows no such package, and updating its lists failed (as root: apt-get update): %w", nameVersion(name, version), err)
		}
		updated = true
	}
}

func nameVersion(name, version string) string {
	if version == "" {
		return name
	}
	return name + "=" + version
}

// download fetches the .deb of spec ("name=version") with apt-get download
// in a temporary directory of the cache, and renames it to dst.
func download(ctx context.Context, dir, spec, dst string) error {
	tmp, err := os.MkdirTemp(dir, ".download-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if _, err := run(ctx, tmp, "apt-get", "download", spec); err != nil {
		return err
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("apt-get download %s left %d .deb files, want 1", spec, len(debs))
	}
	return os.Rename(debs[0], dst)
}

// unpack extracts deb into a temporary directory and renames it to dst, so
// dst is complete or absent.
func unpack(ctx context.Context, dir, deb, dst string) error {
	tmp, err := os.MkdirTemp(filepath.Join(dir, "unpacked"), ".unpack-")
	if err != nil {
		return err
	}
	if _, err := run(ctx, "", "dpkg-deb", "-x", deb, tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return nil
}

// need checks that the tools are installed.
func need(tools ...string) error {
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s %w (a Debian-based host is needed to fetch packages)", t, ErrNotInstalled)
		}
	}
	return nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
