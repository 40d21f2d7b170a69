package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"

	"keel/bootloader"
	_ "keel/bootloader/all" // the loaders boot.loader names
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
		CacheDir: d.CacheDir, Lock: d.Lock, UpdateLock: d.UpdateLock, WriteLock: d.WriteLock,
		IndexMaxAge: d.IndexMaxAge, Offline: d.Offline, Client: d.Client, Logger: o.Logger,
		Progress: o.Progress,
	}
	if p.Boot.EFI == "" {
		b, err := bootloader.Lookup(p.Boot.Loader)
		if err != nil {
			return cfg, p.Errorf("boot.loader", "%v", err)
		}
		cfg.LoaderPackages = b.Packages(p.Debian.Architecture)
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

// bootLoader is the profile's boot loader, from its packages in a Debian
// build, else from the build host (or for systemd-boot the profile's
// boot.efi).
func bootLoader(p *profiles.Profile, prep *source.Prepared, host fs.FS) (bootloader.Bootloader, error) {
	src := bootloader.Source{EFI: p.Boot.EFI, Arch: p.Arch, Files: host}
	if host == nil {
		src.Files = os.DirFS("/")
	}
	if prep != nil && prep.LoaderFiles != nil {
		src.Files = prep.LoaderFiles.FS()
	}
	l, err := bootloader.New(p.Boot.Loader, src)
	if err != nil {
		field := "boot.loader"
		if p.Boot.EFI != "" {
			field = "boot.efi"
		}
		return nil, p.Errorf(field, "%v", err)
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
