// Package example prepares the inputs of keel's example image
// (profiles/examples/busybox.yaml) in the cache: the Debian kernel and a
// busybox userland, both from Debian packages fetched with the host's apt.
package example

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"keel/rootfs/debfetch"
)

// CacheDir is $KEEL_CACHE, else debfetch's default (~/.cache/keel).
func CacheDir() (string, error) {
	if d := os.Getenv("KEEL_CACHE"); d != "" {
		return d, nil
	}
	return debfetch.DefaultDir()
}

// Prepare fetches linux-image-amd64's current kernel and busybox-static
// into cache and lays them out as the example profile expects:
//
//	kernel/vmlinuz   → the unpacked kernel (modules beside it, as packaged)
//	busybox/root/    → bin/busybox plus one symlink per applet
func Prepare(ctx context.Context, cache string) error {
	k, err := debfetch.FetchKernel(ctx, cache)
	if err != nil {
		return fmt.Errorf("fetch kernel: %w", err)
	}
	bb, err := debfetch.FetchBusybox(ctx, cache)
	if err != nil {
		return fmt.Errorf("fetch busybox: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(cache, "kernel"), 0o755); err != nil {
		return err
	}
	if err := replaceSymlink(k.Vmlinuz, filepath.Join(cache, "kernel", "vmlinuz")); err != nil {
		return err
	}
	return busyboxRoot(ctx, bb, filepath.Join(cache, "busybox", "root"))
}

// busyboxRoot builds the userland in a temporary directory and renames it
// into place, so a half-made tree is never used.
func busyboxRoot(ctx context.Context, busybox, dst string) error {
	out, err := exec.CommandContext(ctx, busybox, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("%s --list-full: %w", busybox, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".root-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(tmp, "bin"), 0o755); err != nil {
		return err
	}
	b, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "bin", "busybox"), b, 0o755); err != nil {
		return err
	}
	for _, applet := range strings.Fields(string(out)) {
		p := filepath.Join(tmp, filepath.FromSlash(applet))
		if applet == "bin/busybox" || strings.Contains(applet, "..") {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.Symlink("/bin/busybox", p); err != nil && !os.IsExist(err) {
			return err
		}
	}
	old := dst + ".old"
	os.RemoveAll(old)
	if err := os.Rename(dst, old); err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

func replaceSymlink(target, link string) error {
	tmp := link + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, link)
}
