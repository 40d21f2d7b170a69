package build

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"keel/profiles"
	"keel/rootfs"
	"keel/rootfs/deb/source"
	"keel/rootfs/kmod"
)

// kernel is what a build takes from the profile's kernel: the vmlinuz file
// on the host (copied out when it came from an image or a package), and a
// way to resolve the modules its initrd carries.
type kernel struct {
	file string
	// modules resolves names with their dependencies; nil when the
	// profile asks for none.
	modules func(names []string) (*kmod.Set, error)
}

// findKernel takes the kernel from the profile's kernel.file, kernel.image
// or kernel.package (prep, already fetched). dir is the build's scratch
// directory.
//
// host, when not nil, is the build host's file system (for the modules
// beside kernel.file), opened through the build cache's recorder.
func findKernel(ctx context.Context, p *profiles.Profile, o Options, prep *source.Prepared, dir string, host fs.FS) (*kernel, error) {
	switch {
	case p.Kernel.Package != "":
		if prep == nil || prep.Kernel == nil {
			return nil, p.Errorf("kernel.package", "%s was not fetched", p.Kernel.Package)
		}
		return kernelFromTree(p, prep.Kernel, prep.Vmlinuz, prep.ModulesDir, "kernel.package", p.Kernel.Package, dir)
	case p.Kernel.Image != "":
		if o.ApplyImage == nil {
			return nil, p.Errorf("kernel.image", "OCI images are not available in this build")
		}
		t := rootfs.New()
		if err := o.ApplyImage(ctx, t, p.Kernel.Image); err != nil {
			return nil, fmt.Errorf("kernel.image %s: %w", p.Kernel.Image, err)
		}
		modDir := ""
		if len(p.Kernel.Modules) > 0 {
			version, ok := strings.CutPrefix(path.Base(p.Kernel.Path), "vmlinuz-")
			if !ok {
				names := t.Children("/lib/modules")
				if len(names) != 1 {
					return nil, p.Errorf("kernel.path", "cannot tell the kernel's version: name it vmlinuz-<version> (the image has %d directories in /lib/modules)", len(names))
				}
				version = names[0]
			}
			modDir = "/lib/modules/" + version
		}
		return kernelFromTree(p, t, p.Kernel.Path, modDir, "kernel.path", p.Kernel.Image, dir)
	}
	return kernelFile(p, host)
}

// kernelFromTree copies vmlinuz out of t and resolves modules in t's
// modDir, where a package or an image put them.
func kernelFromTree(p *profiles.Profile, t *rootfs.Tree, vmlinuz, modDir, field, from, dir string) (*kernel, error) {
	k := &kernel{file: filepath.Join(dir, "vmlinuz")}
	if err := copyOut(t, vmlinuz, k.file); err != nil {
		return nil, p.Errorf(field, "%s in %s: %v", vmlinuz, from, err)
	}
	if len(p.Kernel.Modules) == 0 {
		return k, nil
	}
	if modDir == "" {
		return nil, p.Errorf("kernel.modules", "%s has no modules directory for %s", from, path.Base(vmlinuz))
	}
	real, e, err := t.Resolve(modDir)
	if err != nil || e.Type != rootfs.TypeDir {
		return nil, p.Errorf("kernel.modules", "%s in %s: not a directory", modDir, from)
	}
	fsys := t.FS()
	k.modules = func(names []string) (*kmod.Set, error) {
		return kmod.ResolveFS(fsys, strings.TrimPrefix(real, "/"), names)
	}
	return k, nil
}

// kernelFile finds the kernel and, when modules are asked for, the modules
// directory beside it: a kernel unpacked from a Debian package (or /boot on a
// host) is boot/vmlinuz-VERSION with lib/modules/VERSION next to boot/.
func kernelFile(p *profiles.Profile, host fs.FS) (*kernel, error) {
	k := &kernel{file: p.Kernel.File}
	if len(p.Kernel.Modules) == 0 {
		return k, nil
	}
	candidates := []string{p.Kernel.File}
	// A kernel symlinked as .../vmlinuz: follow it once.
	if real, err := filepath.EvalSymlinks(p.Kernel.File); err == nil && real != p.Kernel.File {
		candidates = append(candidates, real)
	}
	for _, c := range candidates {
		if version, ok := strings.CutPrefix(filepath.Base(c), "vmlinuz-"); ok {
			modDir := filepath.Join(filepath.Dir(filepath.Dir(c)), "lib", "modules", version)
			if fi, err := os.Stat(modDir); err == nil && fi.IsDir() {
				k.modules = func(names []string) (*kmod.Set, error) {
					if host != nil {
						return kmod.ResolveFS(host, filepath.Clean(modDir), names)
					}
					return kmod.Resolve(modDir, names)
				}
				return k, nil
			}
		}
	}
	return nil, p.Errorf("kernel.modules", "no modules directory for %s: expected lib/modules/<version> beside the boot/ directory of a kernel named vmlinuz-<version>", p.Kernel.File)
}

// copyOut writes the regular file at p in t (following symlinks within t)
// to the host file dst.
func copyOut(t *rootfs.Tree, p, dst string) error {
	_, e, err := t.Resolve(p)
	if err != nil {
		return fmt.Errorf("not found")
	}
	if e.Type != rootfs.TypeFile {
		return fmt.Errorf("a %s, not a file", e.Type)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	if e.Content != nil {
		r, err := e.Content()
		if err != nil {
			return err
		}
		defer r.Close()
		if _, err := io.Copy(f, r); err != nil {
			return err
		}
	} else if err := f.Truncate(e.Size); err != nil {
		return err
	}
	return f.Close()
}
