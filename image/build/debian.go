package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"keel/bootloader/systemdboot"
	"keel/profiles"
	"keel/rootfs/deb/resolve"
	"keel/rootfs/deb/source"
)

// Debian says where a build's Debian packages come from, beyond the
// profile: what flags and the environment set.
type Debian struct {
	// Mirror and Keyring override the profile's debian.mirror and
	// debian.keyring (keel build --mirror, $KEEL_DEBIAN_MIRROR). Both
	// empty, with none in the profile: the build host's apt sources.
	Mirror  string
	Keyring string
	// CacheDir holds downloads and unpacked packages ($KEEL_CACHE/deb).
	CacheDir string
	// Lock is the profile's lock file; it is used when it exists.
	// UpdateLock resolves again and rewrites it; WriteLock writes it only
	// if it does not exist yet (keel lock).
	Lock       string
	UpdateLock bool
	WriteLock  bool
	// IndexMaxAge: how old a cached package index may be and still be
	// used without asking the mirror.
	IndexMaxAge time.Duration
	Offline     bool
	Client      *http.Client
}

// LockResult is what Lock did.
type LockResult struct {
	Path       string
	Packages   int
	Downloaded int64
	Suite      string
	Date       string
}

// Lock resolves the profile's Debian packages against the repository,
// writes d.Lock, and downloads the packages into the cache, so that builds
// with the lock need no network.
func Lock(ctx context.Context, p *profiles.Profile, d Debian, o Options) (*LockResult, error) {
	if !p.UsesDebian() {
		return nil, p.Errorf("packages", "the profile has no Debian packages to lock (no packages, kernel.package or debian section)")
	}
	o.Debian = d
	cfg, err := sourceConfig(p, o)
	if err != nil {
		return nil, err
	}
	l, got, err := source.Lock(ctx, cfg)
	if err != nil {
		return nil, profileError(p, err)
	}
	return &LockResult{Path: d.Lock, Packages: len(l.Entries), Downloaded: got, Suite: l.Debian.Suite, Date: l.Debian.ReleaseDate}, nil
}

func sourceConfig(p *profiles.Profile, o Options) (source.Config, error) {
	d := o.Debian
	cfg := source.Config{
		Suite: p.Debian.Suite, Components: p.Debian.Components, Architecture: p.Debian.Architecture,
		Mirror: firstNonEmpty(d.Mirror, p.Debian.Mirror),
		Base:   p.Debian.Base, Packages: p.Packages, Kernel: p.Kernel.Package,
		Loader:   p.Boot.Loader == "",
		CacheDir: d.CacheDir, Lock: d.Lock, UpdateLock: d.UpdateLock, WriteLock: d.WriteLock,
		IndexMaxAge: d.IndexMaxAge, Offline: d.Offline, Client: d.Client, Logger: o.Logger,
		Progress: o.Progress,
	}
	if k := firstNonEmpty(d.Keyring, p.Debian.Keyring); k != "" {
		cfg.Keyring = []string{k}
	}
	if cfg.CacheDir == "" {
		return cfg, errors.New("debian packages: no cache directory (set KEEL_CACHE)")
	}
	return cfg, nil
}

// profileError turns an unsatisfiable request into an error at the
// profile field that asked for it.
func profileError(p *profiles.Profile, err error) error {
	var unsat *resolve.UnsatError
	if !errors.As(err, &unsat) {
		return err
	}
	field := unsat.Request
	if !strings.HasPrefix(field, "packages[") && field != "kernel.package" {
		field = "packages"
	}
	msg := strings.Join(unsat.Path, " → ") + ": " + unsat.Reason
	if unsat.Request != field {
		msg = unsat.Request + ": " + msg
	}
	if unsat.GaveUp {
		msg += fmt.Sprintf(" (gave up after %d choices)", unsat.Tries)
	}
	return p.Errorf(field, "%s", msg)
}

// prepareDebian resolves, downloads and unpacks the profile's packages,
// kernel and boot loader.
func prepareDebian(ctx context.Context, p *profiles.Profile, o Options, stage func(string)) (*source.Prepared, error) {
	cfg, err := sourceConfig(p, o)
	if err != nil {
		return nil, err
	}
	stage("debian packages from " + p.Debian.Suite)
	prep, err := source.Prepare(ctx, cfg)
	if err != nil {
		return nil, profileError(p, err)
	}
	return prep, nil
}

// bootLoader is systemd-boot: the profile's boot.loader file, else the
// systemd-boot-efi package's binary, else the build host's.
func bootLoader(p *profiles.Profile, prep *source.Prepared) (*systemdboot.Loader, error) {
	if p.Boot.Loader == "" && prep != nil && prep.Loader != nil {
		r, err := prep.Loader.Content()
		if err != nil {
			return nil, fmt.Errorf("boot loader from %s: %w", source.LoaderPackage, err)
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("boot loader from %s: %w", source.LoaderPackage, err)
		}
		return systemdboot.FromBytes(source.LoaderPackage+":"+source.LoaderPath, b)
	}
	l, err := systemdboot.New(p.Boot.Loader)
	if err != nil {
		return nil, p.Errorf("boot.loader", "%v", err)
	}
	return l, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
