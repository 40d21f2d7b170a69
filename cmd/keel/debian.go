package main

import (
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"keel/image/build"
)

// debianFlags are the flags that say where Debian packages come from,
// shared by keel build and keel lock.
type debianFlags struct {
	mirror, keyring string
	updateLock      bool
	offline         bool
	refresh         bool
	indexMaxAge     time.Duration
}

// defaultIndexMaxAge is how long a verified package index is used from
// the cache before the mirror is asked again: Debian's mirrors change a few
// times a day, and a warm build should not wait on the network.
const defaultIndexMaxAge = 6 * time.Hour

func (f *debianFlags) register(cmd *cobra.Command, build bool) {
	fl := cmd.Flags()
	fl.StringVar(&f.mirror, "mirror", "", "Debian mirror URL (http, https, file); default $KEEL_DEBIAN_MIRROR, the profile's debian.mirror, or the host's apt sources")
	fl.StringVar(&f.keyring, "keyring", "", "OpenPGP keyring that signs the mirror's InRelease; default $KEEL_DEBIAN_KEYRING, the profile's debian.keyring, or apt's")
	fl.BoolVar(&f.offline, "offline", false, "use only the cache: no network at all")
	fl.BoolVar(&f.refresh, "refresh", false, "ask the mirror for a new package index even if the cached one is recent")
	fl.DurationVar(&f.indexMaxAge, "index-max-age", defaultIndexMaxAge, "use a cached package index this recent without asking the mirror")
	if build {
		fl.BoolVar(&f.updateLock, "update-lock", false, "resolve the packages again and rewrite the profile's .lock file")
	}
}

// options turns the flags and environment into the build's Debian options.
func (f *debianFlags) options(lockPath string) (build.Debian, error) {
	d := build.Debian{
		Mirror:      firstNonEmpty(f.mirror, os.Getenv("KEEL_DEBIAN_MIRROR")),
		Keyring:     firstNonEmpty(f.keyring, os.Getenv("KEEL_DEBIAN_KEYRING")),
		CacheDir:    filepath.Join(cacheDir(), "deb"),
		Lock:        lockPath,
		UpdateLock:  f.updateLock,
		IndexMaxAge: f.indexMaxAge,
		Offline:     f.offline,
	}
	if f.refresh {
		d.IndexMaxAge = 0
	}
	if f.offline && f.refresh {
		return d, usagef("--offline and --refresh contradict each other")
	}
	if d.Keyring != "" {
		if _, err := os.Stat(d.Keyring); err != nil {
			return d, usagef("keyring %s: %v", d.Keyring, err)
		}
	}
	return d, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
