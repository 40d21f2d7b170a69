// Package source makes a Debian repository a source of a keel image: the
// root filesystem's packages, the kernel, and the boot loader. It ties the
// other parts of rootfs/deb together, in two steps:
//
//   - Prepare does everything that needs the repository or the network:
//     read the lock file, or open the signed index and resolve; download
//     the .deb files into the cache; unpack them (once, into the unpack
//     cache). After Prepare, nothing touches the network.
//   - Apply puts the root packages into a tree (merged /usr, keel's
//     /etc/keel protected) and then applies what their maintainer scripts
//     would have done (rootfs/deb/postinst).
//
// The kernel and the boot loader are not installed into the root: the
// kernel package (and the linux-image-* packages it depends on, but none
// of their other dependencies) is applied to a tree of its own, from which
// the build takes vmlinuz and the initrd's modules; the boot loader is
// systemd-boot-efi's EFI binary.
//
// A lock file records every package with its role (root, kernel, loader)
// and the requests it was made for. A locked build fetches exactly those
// packages by sha256, so it works from the cache with the network gone; a
// profile that asks for something else is refused (ErrDrift) until the
// lock is updated.
package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"pault.ag/go/debian/version"

	"keel/rootfs"
	"keel/rootfs/deb"
	"keel/rootfs/deb/aptsrc"
	"keel/rootfs/deb/debfile"
	"keel/rootfs/deb/lock"
	"keel/rootfs/deb/postinst"
	"keel/rootfs/deb/repo"
	"keel/rootfs/deb/resolve"
	"keel/rootfs/tarfs"
)

// LoaderPackage holds systemd-boot's EFI binary, at LoaderPath (amd64's;
// see loaderPaths).
const (
	LoaderPackage = "systemd-boot-efi"
	LoaderPath    = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
	// StubPath is systemd's UKI stub, in the same package.
	StubPath = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
)

// loaderPaths are LoaderPath and StubPath for the Debian architecture
// arch: systemd names its EFI files by the UEFI machine (x64, aa64).
func loaderPaths(arch string) (loader, stub string) {
	if arch == "arm64" {
		return "/usr/lib/systemd/boot/efi/systemd-bootaa64.efi", "/usr/lib/systemd/boot/efi/linuxaa64.efi.stub"
	}
	return LoaderPath, StubPath
}

// Protected are the tree paths no package may write: keel owns /etc/keel.
var Protected = []string{"/etc/keel"}

// ErrDrift: the profile asks for other packages than its lock file holds.
var ErrDrift = lock.ErrDrift

// Config is what Prepare needs.
type Config struct {
	// Repository.
	Suite        string
	Components   []string
	Architecture string // Debian's: "amd64"
	// Mirror and Keyring; both empty means the build host's apt source
	// for Suite (aptsrc). A Mirror without a Keyring uses Debian's
	// archive keyring.
	Mirror  string
	Keyring []string

	// What the profile asks for.
	Base     string   // "" or "none", "essential", "required", "important"
	Packages []string // name or name=version, in profile order
	Kernel   string   // the kernel package, "" for none
	// LoaderPackages are the boot loader's packages (e.g. systemd-boot-efi,
	// or grub-efi-amd64-bin and grub-pc-bin), unpacked apart from the root.
	LoaderPackages []string

	// CacheDir holds downloads, indexes and unpacked packages
	// ($KEEL_CACHE/deb).
	CacheDir string
	// Lock is the lock file's path ("" for none). When it exists it is
	// used, unless UpdateLock; with UpdateLock (or WriteLock, when it
	// does not exist) the resolved set is written there.
	Lock       string
	UpdateLock bool
	WriteLock  bool
	// IndexMaxAge: a cached, verified index younger than this is used
	// without asking the mirror. Zero: always ask.
	IndexMaxAge time.Duration
	// Offline: the cache only; an error names what is missing.
	Offline bool
	// Limits bound what one package may expand to.
	Limits tarfs.Limits

	Client   *http.Client
	Logger   *slog.Logger
	Progress func(stage string, done, total int64)
}

// Prepared is the outcome of Prepare.
type Prepared struct {
	// Root are the root filesystem's packages, in unpack order.
	Root []*debfile.Unpacked
	// Kernel is the kernel package (and the linux-image-* packages it
	// depends on) applied to a merged-/usr tree of its own; Vmlinuz and
	// ModulesDir are paths in it ("/boot/vmlinuz-6.1.0-28-amd64",
	// "/usr/lib/modules/6.1.0-28-amd64"). Nil without Config.Kernel.
	Kernel     *rootfs.Tree
	Vmlinuz    string
	ModulesDir string
	// LoaderFiles is the boot loader's packages unpacked in a merged-/usr
	// tree of their own; nil without Config.LoaderPackages.
	LoaderFiles *rootfs.Tree
	// Loader is systemd-boot's EFI binary, when LoaderPackage is among
	// the loader's packages.
	Loader *rootfs.Entry
	// Stub is systemd's UKI stub from the same package (StubPath).
	Stub *rootfs.Entry
	// Lock is the package set used, as a lock (whether or not one was
	// read or written); LockWritten says it was written to Config.Lock.
	Lock        *lock.Lock
	LockWritten bool
	// Downloaded counts the bytes fetched from the mirror (0: all cached).
	Downloaded int64
	// Why says, for `keel build -v`, why each root package is there.
	Why map[string]string
}

// Requests are the normalized strings a lock records for c: packages as
// written, "base:X", "kernel:PKG", "loader:PKG".
func (c *Config) Requests() []string {
	r := append([]string(nil), c.Packages...)
	if c.Base != "" && c.Base != "none" {
		r = append(r, "base:"+c.Base)
	}
	if c.Kernel != "" {
		r = append(r, "kernel:"+c.Kernel)
	}
	for _, p := range c.LoaderPackages {
		r = append(r, "loader:"+p)
	}
	return lock.NormalizeRequests(r)
}

func (c *Config) log() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c *Config) stage(s string, done, total int64) {
	c.log().Info(s)
	if c.Progress != nil {
		c.Progress(s, done, total)
	}
}

// Prepare resolves (or reads the lock), downloads and unpacks.
func Prepare(ctx context.Context, c Config) (*Prepared, error) {
	if c.CacheDir == "" {
		return nil, errors.New("debian: no cache directory")
	}
	if c.Architecture == "" {
		c.Architecture = "amd64"
	}
	if len(c.Components) == 0 {
		c.Components = []string{"main"}
	}
	sets, l, err := c.packageSets(ctx)
	if err != nil {
		return nil, err
	}
	out := &Prepared{Lock: l, Why: sets.why, LockWritten: sets.lockWritten}

	// One download list, each .deb once, whatever its roles.
	var all []*deb.Package
	seen := map[string]bool{}
	for _, set := range [][]*deb.Package{sets.root, sets.kernel, sets.loader} {
		for _, p := range set {
			if !seen[p.SHA256] {
				seen[p.SHA256] = true
				all = append(all, p)
			}
		}
	}
	mirror, _, err := c.repository(len(all) > 0 && !c.allCached(all))
	if err != nil {
		return nil, err
	}
	c.stage(fmt.Sprintf("fetching %d packages", len(all)), 0, 0)
	paths, err := repo.Fetch(ctx, repo.FetchConfig{
		Mirror: mirror, CacheDir: c.CacheDir, Client: c.Client, Logger: c.Logger, Offline: c.Offline,
	}, all, func(done, total int64) {
		out.Downloaded = done
		if c.Progress != nil && total > 0 {
			c.Progress(fmt.Sprintf("downloading %d MiB", (total+1<<20-1)>>20), done, total)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("debian: %w", err)
	}
	pathOf := map[string]string{}
	for i, p := range all {
		pathOf[p.SHA256] = paths[i]
	}

	c.stage(fmt.Sprintf("unpacking %d packages", len(all)), 0, 0)
	cache, err := debfile.NewCache(filepath.Join(c.CacheDir, "unpack"), debfile.CacheOptions{Limits: c.Limits, Logger: c.Logger})
	if err != nil {
		return nil, err
	}
	unpacked, err := unpackAll(ctx, cache, all, pathOf)
	if err != nil {
		return nil, err
	}
	for _, p := range sets.root {
		out.Root = append(out.Root, unpacked[p.SHA256])
	}
	if !sets.ordered {
		if out.Root, err = unpackOrder(out.Root, c.Architecture); err != nil {
			return nil, err
		}
	}
	if len(sets.kernel) > 0 {
		if err := out.kernel(ctx, sets.kernel, unpacked, c.Kernel); err != nil {
			return nil, err
		}
	}
	if len(sets.loader) > 0 {
		if err := out.loader(ctx, sets.loader, unpacked, c.Architecture); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Lock resolves c against the repository, whatever lock exists, writes
// the lock to c.Lock, and downloads the packages into the cache, so that a
// build with the lock can run with the network gone. It returns the lock
// and the bytes downloaded.
func Lock(ctx context.Context, c Config) (*lock.Lock, int64, error) {
	if c.Lock == "" {
		return nil, 0, errors.New("debian: no lock file to write")
	}
	if c.Architecture == "" {
		c.Architecture = "amd64"
	}
	if len(c.Components) == 0 {
		c.Components = []string{"main"}
	}
	c.UpdateLock = true
	_, l, err := c.packageSets(ctx)
	if err != nil {
		return nil, 0, err
	}
	mirror, _, err := c.repository(true)
	if err != nil {
		return nil, 0, err
	}
	var got int64
	all := l.Packages()
	c.stage(fmt.Sprintf("fetching %d packages", len(all)), 0, 0)
	_, err = repo.Fetch(ctx, repo.FetchConfig{Mirror: mirror, CacheDir: c.CacheDir, Client: c.Client, Logger: c.Logger, Offline: c.Offline},
		all, func(done, total int64) {
			got = done
			if c.Progress != nil && total > 0 {
				c.Progress(fmt.Sprintf("downloading %d MiB", (total+1<<20-1)>>20), done, total)
			}
		})
	if err != nil {
		return nil, 0, fmt.Errorf("debian: %w", err)
	}
	return l, got, nil
}

// IndexID identifies the package index a resolution of c would read,
// without reading it: the sha256 of the cached InRelease (see
// repo.CachedInRelease). An error means the index would come from the
// mirror (or there is no mirror to ask).
func (c Config) IndexID() (string, error) {
	if len(c.Components) == 0 {
		c.Components = []string{"main"}
	}
	mirror, keyring, err := c.repository(true)
	if err != nil {
		return "", err
	}
	return repo.CachedInRelease(repo.Config{
		Mirror: mirror, Suite: c.Suite, Components: c.Components, Architecture: c.Architecture,
		Keyring: keyring, CacheDir: c.CacheDir, MaxAge: c.IndexMaxAge, Offline: c.Offline,
	})
}

// allCached reports whether every package's .deb is in the cache, so that
// no mirror is needed.
func (c *Config) allCached(pkgs []*deb.Package) bool {
	for _, p := range pkgs {
		fi, err := os.Stat(repo.PoolPath(c.CacheDir, p.SHA256))
		if err != nil || fi.Size() != p.Size {
			return false
		}
	}
	return true
}

// repository returns the mirror URL and keyring: Config's, else the build
// host's apt source for the suite. When need is false and none is
// configured, it returns empty values rather than an error (a locked build
// from a warm cache needs neither).
func (c *Config) repository(need bool) (string, []string, error) {
	if c.Mirror != "" {
		keyring := c.Keyring
		if len(keyring) == 0 {
			keyring = []string{aptsrc.DefaultKeyring}
		}
		return c.Mirror, keyring, nil
	}
	src, err := aptsrc.Find("/", c.Suite, c.Components[0])
	if err != nil {
		if !need {
			return "", nil, nil
		}
		return "", nil, fmt.Errorf("debian: %w", err)
	}
	keyring := c.Keyring
	if len(keyring) == 0 {
		keyring = src.Keyring
	}
	return src.URI, keyring, nil
}

type packageSets struct {
	root, kernel, loader []*deb.Package
	ordered              bool // root is in unpack order already
	why                  map[string]string
	lockWritten          bool
}

// packageSets reads them from the lock, or resolves them against the
// repository's index (and writes the lock when asked).
func (c *Config) packageSets(ctx context.Context) (*packageSets, *lock.Lock, error) {
	requests := c.Requests()
	if c.Lock != "" && !c.UpdateLock {
		l, err := lock.Read(c.Lock)
		switch {
		case err == nil:
			if err := l.Drift(requests); err != nil {
				return nil, nil, err
			}
			if l.Debian.Suite != c.Suite || l.Debian.Architecture != c.Architecture {
				return nil, nil, fmt.Errorf("%s: %w: made for %s/%s, the profile builds %s/%s: run keel lock, or build with --update-lock",
					c.Lock, ErrDrift, l.Debian.Suite, l.Debian.Architecture, c.Suite, c.Architecture)
			}
			c.log().Info("using lock file", "path", c.Lock, "packages", len(l.Entries))
			return &packageSets{
				root: l.PackagesFor(lock.RoleRoot), kernel: l.PackagesFor(lock.RoleKernel), loader: l.PackagesFor(lock.RoleLoader),
			}, l, nil
		case !errors.Is(err, os.ErrNotExist):
			return nil, nil, err
		}
	}

	mirror, keyring, err := c.repository(true)
	if err != nil {
		return nil, nil, err
	}
	c.stage("reading the package index of "+c.Suite, 0, 0)
	idx, err := repo.Open(ctx, repo.Config{
		Mirror: mirror, Suite: c.Suite, Components: c.Components, Architecture: c.Architecture,
		Keyring: keyring, CacheDir: c.CacheDir, Client: c.Client, Logger: c.Logger,
		MaxAge: c.IndexMaxAge, Offline: c.Offline,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("debian: %w", err)
	}
	c.stage(fmt.Sprintf("resolving against %d packages", len(idx.Packages)), 0, 0)
	sets := &packageSets{ordered: true, why: map[string]string{}}
	if len(c.Packages) > 0 || (c.Base != "" && c.Base != "none") {
		res, err := c.resolveRoot(idx.Packages)
		if err != nil {
			return nil, nil, err
		}
		sets.root = res.Packages
		for _, p := range res.Packages {
			sets.why[p.Name] = res.Why(p.Name)
		}
	}
	if c.Kernel != "" {
		if sets.kernel, err = pickKernel(idx.Packages, c.Kernel, c.Architecture, idx.Suite); err != nil {
			return nil, nil, err
		}
	}
	for _, name := range c.LoaderPackages {
		p, err := pick(idx.Packages, resolve.Request{Name: name, Why: "boot loader"}, c.Architecture, idx.Suite)
		if err != nil {
			return nil, nil, err
		}
		sets.loader = append(sets.loader, p)
	}

	roles := map[*deb.Package][]string{}
	var all []*deb.Package
	for _, s := range []struct {
		role string
		pkgs []*deb.Package
	}{{lock.RoleRoot, sets.root}, {lock.RoleKernel, sets.kernel}, {lock.RoleLoader, sets.loader}} {
		for _, p := range s.pkgs {
			roles[p] = append(roles[p], s.role)
			all = append(all, p)
		}
	}
	l := lock.New(lock.Debian{
		Suite: idx.Suite, Codename: idx.Codename, Architecture: idx.Architecture, Components: idx.Components,
		ReleaseDate: idx.Date, InReleaseSHA256: idx.InReleaseSHA256,
	}, requests, all, roles)
	sets.lockWritten, err = c.maybeWriteLock(l)
	return sets, l, err
}

func (c *Config) maybeWriteLock(l *lock.Lock) (bool, error) {
	if c.Lock == "" {
		return false, nil
	}
	_, err := os.Stat(c.Lock)
	if !c.UpdateLock && !(c.WriteLock && errors.Is(err, os.ErrNotExist)) {
		return false, nil
	}
	return true, lock.Write(c.Lock, l)
}

// resolveRoot resolves the root's packages. keel's trees are always
// merged-/usr, which usr-is-merged says; without it, the first
// alternative of init-system-helpers' "usrmerge | usr-is-merged" would
// bring usrmerge and with it perl, for a conversion keel never needs.
func (c *Config) resolveRoot(index []*deb.Package) (*resolve.Result, error) {
	var reqs []resolve.Request
	for i, s := range c.Packages {
		name, ver, _ := strings.Cut(s, "=")
		reqs = append(reqs, resolve.Request{Name: name, Version: ver, Why: fmt.Sprintf("packages[%d]", i)})
	}
	base := c.Base
	if base == "none" {
		base = ""
	}
	opts := resolve.Options{Arch: c.Architecture, Base: base, Origin: c.Suite, Logger: c.Logger}
	res, err := resolve.Resolve(index, reqs, opts)
	if err != nil {
		return nil, err
	}
	for _, p := range res.Packages {
		if p.Name == "usrmerge" {
			reqs = append(reqs, resolve.Request{Name: "usr-is-merged", Why: "merged /usr"})
			return resolve.Resolve(index, reqs, opts)
		}
	}
	return res, nil
}

// pick chooses the package a request names exactly (no dependencies): its
// pinned version, else the highest of the architecture or "all".
func pick(index []*deb.Package, r resolve.Request, arch, origin string) (*deb.Package, error) {
	var best *deb.Package
	var have []string
	for _, p := range index {
		if p.Name != r.Name || (p.Architecture != arch && p.Architecture != "all") {
			continue
		}
		have = append(have, p.Version.String())
		if r.Version != "" {
			if p.Version.String() == r.Version {
				return p, nil
			}
			continue
		}
		if best == nil || compareVersions(p, best) > 0 {
			best = p
		}
	}
	if best == nil {
		if len(have) > 0 {
			return nil, fmt.Errorf("%s: %s=%s: no such version in %s (has %s)", r.Why, r.Name, r.Version, origin, strings.Join(have, ", "))
		}
		return nil, fmt.Errorf("%s: %s: not in %s", r.Why, r.Name, origin)
	}
	return best, nil
}

// pickKernel chooses the kernel package and, following its Depends on
// linux-image-* packages (Debian's linux-image-amd64 is a metapackage
// depending on the versioned linux-image-6.1.0-N-amd64), the package that
// holds the kernel itself. Their other dependencies (kmod, initramfs-tools)
// are for a system that boots with its own initramfs, not keel's.
func pickKernel(index []*deb.Package, spec, arch, origin string) ([]*deb.Package, error) {
	name, ver, _ := strings.Cut(spec, "=")
	p, err := pick(index, resolve.Request{Name: name, Version: ver, Why: "kernel.package"}, arch, origin)
	if err != nil {
		return nil, err
	}
	out := []*deb.Package{p}
	for depth := 0; depth < 4; depth++ {
		var next *deb.Package
		for _, rel := range p.Depends.Relations {
			for _, poss := range rel.Possibilities {
				if !strings.HasPrefix(poss.Name, "linux-image-") {
					continue
				}
				r := resolve.Request{Name: poss.Name, Why: "kernel.package: " + p.Name}
				if poss.Version != nil && poss.Version.Operator == "=" {
					r.Version = poss.Version.Number
				}
				if next, err = pick(index, r, arch, origin); err != nil {
					return nil, err
				}
				break
			}
			if next != nil {
				break
			}
		}
		if next == nil {
			return out, nil
		}
		out = append(out, next)
		p = next
	}
	return out, nil
}

func compareVersions(a, b *deb.Package) int {
	return version.Compare(a.Version, b.Version)
}

// unpackAll unpacks every package through the cache, two at a time (xz
// decoding is the cost, and the machine has few cores to share with it).
func unpackAll(ctx context.Context, cache *debfile.Cache, pkgs []*deb.Package, pathOf map[string]string) (map[string]*debfile.Unpacked, error) {
	out := map[string]*debfile.Unpacked{}
	var mu sync.Mutex
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for _, p := range pkgs {
		g.Go(func() error {
			u, err := cache.Get(ctx, pathOf[p.SHA256], p.SHA256)
			if err != nil {
				return fmt.Errorf("debian: %s: %w", p, err)
			}
			if got := u.Control.Package; got.Name != p.Name || got.Version.String() != p.Version.String() {
				return fmt.Errorf("debian: %s: the .deb says it is %s %s", p, got.Name, got.Version)
			}
			mu.Lock()
			out[p.SHA256] = u
			mu.Unlock()
			return nil
		})
	}
	return out, g.Wait()
}

// unpackOrder orders a locked root set as a resolution would: each
// package pinned, resolved over the set itself (with the relations from
// the packages' own control files). A set that does not satisfy its own
// dependencies is a damaged lock.
func unpackOrder(pkgs []*debfile.Unpacked, arch string) ([]*debfile.Unpacked, error) {
	var index []*deb.Package
	var reqs []resolve.Request
	by := map[*deb.Package]*debfile.Unpacked{}
	for _, u := range pkgs {
		p := u.Control.Package
		index = append(index, p)
		by[p] = u
		reqs = append(reqs, resolve.Request{Name: p.Name, Version: p.Version.String(), Why: "lock"})
	}
	res, err := resolve.Resolve(index, reqs, resolve.Options{Arch: arch, Origin: "the lock file"})
	if err != nil {
		return nil, fmt.Errorf("the lock file's packages do not hold together (run keel lock): %w", err)
	}
	out := make([]*debfile.Unpacked, 0, len(res.Packages))
	for _, p := range res.Packages {
		out = append(out, by[p])
	}
	if len(out) != len(pkgs) {
		return nil, fmt.Errorf("the lock file's packages do not hold together (run keel lock): %d resolved of %d", len(out), len(pkgs))
	}
	return out, nil
}

// kernel applies the kernel packages to a scratch tree and finds vmlinuz
// and its modules.
func (out *Prepared) kernel(ctx context.Context, pkgs []*deb.Package, unpacked map[string]*debfile.Unpacked, name string) error {
	t := rootfs.New()
	if err := debfile.MergeUsr(t); err != nil {
		return err
	}
	for _, p := range pkgs {
		if _, err := unpacked[p.SHA256].Apply(ctx, t, debfile.Options{Aliases: debfile.MergedUsr()}); err != nil {
			return fmt.Errorf("kernel.package: %w", err)
		}
	}
	var images []string
	for _, n := range t.Children("/boot") {
		if strings.HasPrefix(n, "vmlinuz-") {
			images = append(images, n)
		}
	}
	if len(images) != 1 {
		return fmt.Errorf("kernel.package: %s: %d kernels in /boot (%v), want one vmlinuz-VERSION", name, len(images), images)
	}
	sort.Strings(images)
	out.Kernel = t
	out.Vmlinuz = "/boot/" + images[0]
	release := strings.TrimPrefix(images[0], "vmlinuz-")
	if e, ok := t.Get("/usr/lib/modules/" + release); ok && e.Type == rootfs.TypeDir {
		out.ModulesDir = "/usr/lib/modules/" + release
	}
	return nil
}

// loader unpacks the boot loader's packages, and takes the EFI binary out
// of systemd-boot-efi when it is one of them.
func (out *Prepared) loader(ctx context.Context, pkgs []*deb.Package, unpacked map[string]*debfile.Unpacked, arch string) error {
	t := rootfs.New()
	if err := debfile.MergeUsr(t); err != nil {
		return err
	}
	for _, p := range pkgs {
		if _, err := unpacked[p.SHA256].Apply(ctx, t, debfile.Options{Aliases: debfile.MergedUsr()}); err != nil {
			return fmt.Errorf("boot loader: %w", err)
		}
	}
	out.LoaderFiles = t
	loaderPath, stubPath := loaderPaths(arch)
	e, ok := t.Get(loaderPath)
	if !ok || e.Type != rootfs.TypeFile {
		for _, p := range pkgs {
			if p.Name == LoaderPackage {
				return fmt.Errorf("boot loader: %s has no %s", LoaderPackage, loaderPath)
			}
		}
		return nil
	}
	out.Loader = e
	if e, ok := t.Get(stubPath); ok && e.Type == rootfs.TypeFile {
		out.Stub = e
	}
	return nil
}

// Apply installs the root packages into t and configures them: merged
// /usr first, then each package's files in unpack order (a later
// package's file replaces an earlier one's, as dpkg does with Replaces),
// then the effects of their maintainer scripts.
func (out *Prepared) Apply(ctx context.Context, t *rootfs.Tree, o ApplyOptions) (*postinst.Report, error) {
	if len(out.Root) == 0 {
		return &postinst.Report{}, nil
	}
	if err := debfile.MergeUsr(t); err != nil {
		return nil, err
	}
	opts := debfile.Options{Aliases: debfile.MergedUsr(), Protected: Protected}
	var pkgs []*postinst.Package
	for _, u := range out.Root {
		added, err := u.Apply(ctx, t, opts)
		if err != nil {
			return nil, err
		}
		pkgs = append(pkgs, installed(u, added))
	}
	return postinst.Configure(ctx, t, pkgs, postinst.Options{Epoch: o.Epoch, Arch: o.Arch, Logger: o.Logger})
}

// ApplyOptions are Apply's inputs beyond the packages.
type ApplyOptions struct {
	Epoch  int64
	Arch   string
	Logger *slog.Logger
}

// installed is what postinst needs to know of an applied package.
func installed(u *debfile.Unpacked, added []tarfs.Added) *postinst.Package {
	c := u.Control
	p := &postinst.Package{
		Name: c.Package.Name, Version: c.Package.Version.String(), Architecture: c.Package.Architecture,
		MultiArch: c.Package.MultiArch, Control: string(c.Text), Scripts: map[string]string{},
		Conffiles: c.ConffilePaths(), MD5Sums: string(c.MD5Sums),
	}
	for name, b := range map[string][]byte{"preinst": c.Preinst, "postinst": c.Postinst, "prerm": c.Prerm, "postrm": c.Postrm, "config": c.Config, "triggers": c.Triggers, "shlibs": c.Shlibs} {
		if b != nil {
			p.Scripts[name] = string(b)
		}
	}
	for name, b := range c.Other {
		p.Scripts[name] = string(b)
	}
	for _, a := range added {
		p.Files = append(p.Files, a.Name)
	}
	return p
}
