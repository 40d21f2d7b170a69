package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"keel/profiles"
	"keel/rootfs"
	"keel/rootfs/assemble"
	"keel/rootfs/oci"
	"keel/rootfs/tarfs"
)

// layerFlags are keel build's bounds on OCI layers (see oci.Options).
type layerFlags struct {
	maxSize    string // a size, e.g. "32GiB"; "" for the default
	maxEntries int64
}

// imageApplier wires OCI image sources into the build: layer blobs are
// cached under the keel cache ($KEEL_CACHE, else ~/.cache/keel), file
// contents are spooled in a directory of this build's own, removed by
// close, and a reference without a transport means docker://, as the
// profile schema says.
type imageApplier struct {
	opts     oci.Options
	spoolDir string // made on the first image
}

func newImageApplier(g *globals, arch string, f layerFlags) (*imageApplier, error) {
	// containers/image logs through the global logrus; keep it quiet unless
	// asked.
	if !g.verbose {
		logrus.SetLevel(logrus.WarnLevel)
	}
	a := &imageApplier{opts: oci.Options{
		Arch: arch, CacheDir: filepath.Join(cacheDir(), "oci"), Logger: g.logger(),
		Protected: []string{assemble.KeelDir},
	}}
	if f.maxSize != "" {
		n, err := profiles.ParseSize(f.maxSize)
		if err != nil || n <= 0 {
			return nil, usagef("--layer-max-size %q is not a size such as 32GiB", f.maxSize)
		}
		a.opts.Limits.MaxBytes, a.opts.MaxRatio = int64(n), -1
	}
	if f.maxEntries < 0 {
		return nil, usagef("--layer-max-entries %d is negative", f.maxEntries)
	}
	a.opts.Limits.MaxEntries = int(f.maxEntries)
	return a, nil
}

func (a *imageApplier) apply(ctx context.Context, t *rootfs.Tree, ref string) error {
	if a.opts.Spool == nil {
		if err := os.MkdirAll(a.opts.CacheDir, 0o755); err != nil {
			return err
		}
		dir, err := os.MkdirTemp(a.opts.CacheDir, "spool-")
		if err != nil {
			return err
		}
		a.spoolDir = dir
		if a.opts.Spool, err = tarfs.NewSpool(dir); err != nil {
			return err
		}
	}
	_, err := oci.Apply(ctx, t, withTransport(ref), a.opts)
	if errors.Is(err, tarfs.ErrLimit) {
		return fmt.Errorf("%w; --layer-max-size and --layer-max-entries raise the limits", err)
	}
	return err
}

// close removes the build's spool: the image that read from it is written
// (or the build failed).
func (a *imageApplier) close() {
	if a.spoolDir != "" {
		os.RemoveAll(a.spoolDir)
	}
}

func withTransport(ref string) string {
	if name, _, ok := strings.Cut(ref, ":"); ok && slices.Contains(oci.Transports, name) {
		return ref
	}
	return "docker://" + ref
}

// cacheDir is where downloaded inputs live: $KEEL_CACHE, else the user's
// cache directory. Never inside the repository.
func cacheDir() string {
	if d := os.Getenv("KEEL_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "keel-cache")
	}
	return filepath.Join(d, "keel")
}
