package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"keel/rootfs"
	"keel/rootfs/oci"
)

// applyImage wires OCI image sources into the build: layers are cached
// under the keel cache ($KEEL_CACHE, else ~/.cache/keel), and a reference
// without a transport means docker://, as the profile schema says.
func applyImage(g *globals, arch string) func(ctx context.Context, t *rootfs.Tree, ref string) error {
	// containers/image logs through the global logrus; keep it quiet unless
	// asked.
	if !g.verbose {
		logrus.SetLevel(logrus.WarnLevel)
	}
	return func(ctx context.Context, t *rootfs.Tree, ref string) error {
		cache := cacheDir()
		_, err := oci.Apply(ctx, t, withTransport(ref), oci.Options{
			Arch: arch, CacheDir: filepath.Join(cache, "oci"), Logger: g.logger(),
		})
		return err
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
