package build

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"keel/profiles"
	"keel/rootfs"
	"keel/rootfs/kmod"
)

// kernelFromImage applies the kernel's OCI image onto a scratch tree and
// copies out what the build reads from disk: the kernel, and, when modules
// are asked for, modules.dep, modules.builtin and the modules to load.
// Only those are copied, not the whole module tree.
func kernelFromImage(ctx context.Context, p *profiles.Profile, o Options, dir string) (kernel, modDir string, err error) {
	if o.ApplyImage == nil {
		return "", "", p.Errorf("kernel.image", "OCI images are not available in this build")
	}
	t := rootfs.New()
	if err := o.ApplyImage(ctx, t, p.Kernel.Image); err != nil {
		return "", "", p.Errorf("kernel.image", "%v", err)
	}
	kernel = filepath.Join(dir, "vmlinuz")
	if err := copyOut(t, p.Kernel.Path, kernel); err != nil {
		return "", "", p.Errorf("kernel.path", "%s in %s: %v", p.Kernel.Path, p.Kernel.Image, err)
	}
	if len(p.Kernel.Modules) == 0 {
		return kernel, "", nil
	}
	version, ok := strings.CutPrefix(path.Base(p.Kernel.Path), "vmlinuz-")
	if !ok {
		names := t.Children("/lib/modules")
		if len(names) != 1 {
			return "", "", p.Errorf("kernel.path", "cannot tell the kernel's version: name it vmlinuz-<version> (the image has %d directories in /lib/modules)", len(names))
		}
		version = names[0]
	}
	src := "/lib/modules/" + version
	modDir = filepath.Join(dir, "modules", version)
	for _, f := range []string{"modules.dep", "modules.builtin"} {
		if err := copyOut(t, path.Join(src, f), filepath.Join(modDir, f)); err != nil && f == "modules.dep" {
			return "", "", p.Errorf("kernel.modules", "%s in %s: %v", path.Join(src, f), p.Kernel.Image, err)
		}
	}
	set, err := kmod.Resolve(modDir, p.Kernel.Modules)
	if err != nil {
		return "", "", p.Errorf("kernel.modules", "%v", err)
	}
	for _, m := range set.Load {
		if err := copyOut(t, path.Join(src, m.Path), filepath.Join(modDir, filepath.FromSlash(m.Path))); err != nil {
			return "", "", p.Errorf("kernel.modules", "module %s in %s: %v", m.Name, p.Kernel.Image, err)
		}
	}
	return kernel, modDir, nil
}

// copyOut writes the regular file at p in t to the host file dst.
func copyOut(t *rootfs.Tree, p, dst string) error {
	e, ok := t.Get(p)
	for i := 0; ok && e.Type == rootfs.TypeSymlink && i < 8; i++ {
		target := e.Target
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		p = target
		e, ok = t.Get(p)
	}
	if !ok {
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
