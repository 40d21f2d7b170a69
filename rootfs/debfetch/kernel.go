package debfetch

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// KernelMeta is Debian's meta-package that depends on the current kernel.
const KernelMeta = "linux-image-amd64"

// BusyboxPackage is Debian's statically linked busybox.
const BusyboxPackage = "busybox-static"

// Kernel is an unpacked Debian kernel package.
type Kernel struct {
	Package *Package
	// Release is the kernel release, as `uname -r` will say:
	// "6.1.0-56-amd64".
	Release string
	// Vmlinuz is the kernel image (Package.Dir/boot/vmlinuz-<Release>).
	Vmlinuz string
	// ModulesDir is lib/modules/<Release> in the package, with the
	// modules.dep that the Debian package leaves to its postinst made by
	// depmod.
	ModulesDir string
}

// FetchKernel fetches the Debian kernel into cacheDir ("" for DefaultDir).
// See Cache.Kernel.
func FetchKernel(ctx context.Context, cacheDir string) (*Kernel, error) {
	return (&Cache{Dir: cacheDir}).Kernel(ctx)
}

// FetchBusybox fetches busybox-static into cacheDir ("" for DefaultDir)
// and returns the path of its busybox binary. See Cache.Busybox.
func FetchBusybox(ctx context.Context, cacheDir string) (string, error) {
	return (&Cache{Dir: cacheDir}).Busybox(ctx)
}

// Kernel fetches the kernel that linux-image-amd64 currently depends on
// (linux-image-6.1.0-NN-amd64 at the version the meta-package names),
// and makes sure its modules directory has a modules.dep.
func (c *Cache) Kernel(ctx context.Context) (*Kernel, error) {
	depmod, err := findDepmod()
	if err != nil {
		return nil, err
	}
	dir, err := c.dir()
	if err != nil {
		return nil, err
	}
	meta, err := c.resolve(ctx, KernelMeta, "")
	if err != nil {
		return nil, err
	}
	target, ok := kernelDep(parseDepends(meta["Depends"]))
	if !ok {
		return nil, fmt.Errorf("%s %s: no linux-image-* in Depends: %q", KernelMeta, meta["Version"], meta["Depends"])
	}
	spec := target.Name
	if target.Op == "=" {
		spec += "=" + target.Version
	}
	p, err := c.Fetch(ctx, spec)
	if err != nil {
		return nil, err
	}
	images, _ := filepath.Glob(filepath.Join(p.Dir, "boot", "vmlinuz-*"))
	if len(images) != 1 {
		return nil, fmt.Errorf("%s: %d boot/vmlinuz-* files, want 1", p.Dir, len(images))
	}
	k := &Kernel{Package: p, Vmlinuz: images[0], Release: strings.TrimPrefix(filepath.Base(images[0]), "vmlinuz-")}
	for _, d := range []string{"lib/modules", "usr/lib/modules"} {
		if m := filepath.Join(p.Dir, d, k.Release); isDir(m) {
			k.ModulesDir = m
			break
		}
	}
	if k.ModulesDir == "" {
		return nil, fmt.Errorf("%s: no lib/modules/%s", p.Dir, k.Release)
	}
	if err := c.depmod(ctx, depmod, dir, k); err != nil {
		return nil, err
	}
	return k, nil
}

// kernelDep picks the kernel package from the meta-package's Depends: the
// first alternative named linux-image-*.
func kernelDep(groups [][]dep) (dep, bool) {
	for _, g := range groups {
		for _, d := range g {
			if strings.HasPrefix(d.Name, "linux-image-") {
				return d, true
			}
		}
	}
	return dep{}, false
}

// depmod writes modules.dep (and depmod's other indexes) into the unpacked
// package, once: Debian's kernel package ships without them and makes them
// in its postinst, which dpkg-deb -x does not run.
func (c *Cache) depmod(ctx context.Context, depmod, cacheDir string, k *Kernel) error {
	if isFile(filepath.Join(k.ModulesDir, "modules.dep")) {
		return nil
	}
	unlock, err := lock(ctx, cacheDir)
	if err != nil {
		return err
	}
	defer unlock()
	if isFile(filepath.Join(k.ModulesDir, "modules.dep")) {
		return nil // another process was first
	}
	c.log().Info("depmod", "release", k.Release, "dir", k.ModulesDir)
	_, err = run(ctx, "", depmod, "-b", k.Package.Dir, k.Release)
	return err
}

// findDepmod finds depmod, which lives in /usr/sbin, outside a normal
// user's PATH on Debian.
func findDepmod() (string, error) {
	if p, err := exec.LookPath("depmod"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/depmod", "/sbin/depmod"} {
		if isFile(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("depmod %w: apt-get install kmod", ErrNotInstalled)
}

// Busybox returns the path of the static busybox binary from Debian's
// busybox-static package, fetching it if needed.
func (c *Cache) Busybox(ctx context.Context) (string, error) {
	p, err := c.Fetch(ctx, BusyboxPackage)
	if err != nil {
		return "", err
	}
	for _, b := range []string{"bin/busybox", "usr/bin/busybox"} {
		if f := filepath.Join(p.Dir, b); isFile(f) {
			return f, nil
		}
	}
	return "", fmt.Errorf("%s %s: no bin/busybox in %s", p.Name, p.Version, p.Dir)
}
