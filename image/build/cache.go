package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"keel/image/build/buildcache"
	"keel/profiles"
	"keel/rootfs/deb/lock"
	"keel/rootfs/deb/source"
)

// buildCache is one build's use of Options.Cache: the key, known before
// anything is fetched or built when the packages are pinned (by the
// profile's lock, or by the lock keel kept for the package index at hand),
// and the host files read through rec.
type buildCache struct {
	c   *buildcache.Cache
	rec *buildcache.Recorder
	// implicitLock is where the resolution against the current index is
	// kept ("" when the profile's own lock pins the packages).
	implicitLock string
	key          buildcache.Key
	keyed        bool
}

// cacheable says why a build cannot use the cache ("" when it can):
// inputs whose content keel cannot name before fetching them, and
// outputs besides the disk.
func cacheable(p *profiles.Profile, o Options) string {
	switch {
	case o.SignKey != nil:
		return "--sign-key writes a bundle too"
	case o.SecureBoot != nil:
		return "Secure Boot signing"
	case o.Debian.UpdateLock:
		return "--update-lock"
	case p.Kernel.Image != "":
		return "kernel.image is an OCI reference"
	}
	for _, s := range p.Sources {
		if s.Image != "" {
			return "an image source is an OCI reference"
		}
	}
	return ""
}

// newBuildCache starts the build's use of the cache, or returns nil.
func newBuildCache(p *profiles.Profile, o Options) *buildCache {
	if o.Cache == nil {
		return nil
	}
	if why := cacheable(p, o); why != "" {
		o.Logger.Debug("build cache not used", "why", why)
		return nil
	}
	bc := &buildCache{c: o.Cache, rec: &buildcache.Recorder{}}
	if !p.UsesDebian() {
		bc.key, bc.keyed = bc.computeKey(p, o, nil)
		return bc
	}
	locked := o.Debian.Lock
	if !hasLock(o) {
		var err error
		if locked, err = implicitLock(p, o); err != nil {
			o.Logger.Debug("build cache: no cached index to key on", "reason", err)
			return bc // keyed after the resolution, stored for the next build
		}
		bc.implicitLock = locked
	}
	if b, err := os.ReadFile(locked); err == nil {
		bc.key, bc.keyed = bc.computeKey(p, o, b)
	}
	return bc
}

// hasLock says whether the profile's own lock file pins the packages.
func hasLock(o Options) bool {
	if o.Debian.Lock == "" {
		return false
	}
	_, err := os.Stat(o.Debian.Lock)
	return err == nil
}

// implicitLock is where the cache keeps the profile's resolution against
// the package index now in the Debian cache: named by that index's
// InRelease, keel's id and the profile's requests, so a new index, another
// keel or another request never finds it.
func implicitLock(p *profiles.Profile, o Options) (string, error) {
	cfg, err := sourceConfig(p, o)
	if err != nil {
		return "", err
	}
	id, err := cfg.IndexID()
	if err != nil {
		return "", err
	}
	arch := cfg.Architecture
	if arch == "" {
		arch = "amd64"
	}
	// keel's own id too: another keel's resolver may choose otherwise.
	parts := append([]string{o.ToolID, id, cfg.Suite, arch, strings.Join(cfg.Components, ",")}, cfg.Requests()...)
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return filepath.Join(o.Cache.Dir(), "locks", hex.EncodeToString(h[:])+".lock"), nil
}

// computeKey hashes every input of the image: keel (its binary, with the
// keel-init and keelctl it embeds or was given), the profile as merged,
// every host path it names, the packages (the lock's bytes: names,
// versions and sha256 of each), and SOURCE_DATE_EPOCH. Worker counts and
// mirrors do not change the bytes and are not in it.
func (bc *buildCache) computeKey(p *profiles.Profile, o Options, lockBytes []byte) (buildcache.Key, bool) {
	h := bc.c.NewKey()
	h.String("keel", o.ToolID)
	h.Bytes("keel-init", o.KeelInit)
	h.Bytes("keelctl", o.Keelctl)
	h.JSON("profile", p)
	h.Bytes("lock", lockBytes)
	h.String("epoch", strconv.FormatInt(o.Epoch, 10))
	for _, path := range profilePaths(p) {
		h.Path("path", path)
	}
	if !p.UsesDebian() && p.Boot.UKI && p.Boot.Stub == "" {
		h.Path("stub", source.StubPath) // the build host's
	}
	k, err := h.Sum()
	if err != nil {
		o.Logger.Debug("build cache not used", "why", err)
		return k, false
	}
	return k, true
}

// profilePaths are the host paths a profile names (fields tagged
// keel:"path"), but its includes: their content is in the merged profile.
func profilePaths(p *profiles.Profile) []string {
	var out []string
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Slice, reflect.Array:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case reflect.Map:
			for _, k := range v.MapKeys() {
				walk(v.MapIndex(k))
			}
		case reflect.Struct:
			t := v.Type()
			for i := range t.NumField() {
				f := t.Field(i)
				if !f.IsExported() {
					continue
				}
				if f.Tag.Get("keel") == "path" && f.Name != "Include" {
					switch x := v.Field(i).Interface().(type) {
					case string:
						if x != "" {
							out = append(out, x)
						}
					case []string:
						for _, s := range x {
							if s != "" {
								out = append(out, s)
							}
						}
					}
					continue
				}
				walk(v.Field(i))
			}
		}
	}
	walk(reflect.ValueOf(p))
	return out
}

// get copies a cached image to o.Output (through a temporary name, as
// disk.Write does) and returns its result; nil when there is none.
func (bc *buildCache) get(o Options) *Result {
	if bc == nil || !bc.keyed {
		return nil
	}
	var res Result
	if b, ok := bc.c.Current(bc.key, o.Output); ok && json.Unmarshal(b, &res) == nil {
		res.Output, res.Cached = o.Output, true
		return &res
	}
	tmp, err := os.CreateTemp(filepath.Dir(o.Output), "."+filepath.Base(o.Output)+".tmp-*")
	if err != nil {
		return nil
	}
	tmp.Close()
	b, ok, err := bc.c.Get(bc.key, tmp.Name())
	if err == nil && ok {
		err = json.Unmarshal(b, &res)
	}
	if err == nil && ok {
		err = os.Rename(tmp.Name(), o.Output)
	}
	if err != nil || !ok {
		if err != nil {
			o.Logger.Warn("build cache: not used", "error", err)
		}
		os.Remove(tmp.Name())
		return nil
	}
	bc.c.NoteOutput(bc.key, o.Output)
	res.Output, res.Cached = o.Output, true
	return &res
}

// put stores the finished image; a failure to store only costs the next
// build its speed.
func (bc *buildCache) put(p *profiles.Profile, o Options, res *Result, l *lock.Lock) {
	if bc == nil {
		return
	}
	if err := bc.store(p, o, res, l); err != nil {
		o.Logger.Warn("build cache: image not stored", "error", err)
	}
}

func (bc *buildCache) store(p *profiles.Profile, o Options, res *Result, l *lock.Lock) error {
	if bc.implicitLock == "" && !bc.keyed && p.UsesDebian() && !hasLock(o) {
		// The index was fetched by this build: it is in the cache now.
		var err error
		if bc.implicitLock, err = implicitLock(p, o); err != nil {
			return err
		}
	}
	if bc.implicitLock != "" && l != nil {
		if err := os.MkdirAll(filepath.Dir(bc.implicitLock), 0o755); err != nil {
			return err
		}
		tmp := fmt.Sprintf("%s.%d.tmp", bc.implicitLock, os.Getpid())
		if err := lock.Write(tmp, l); err != nil {
			return err
		}
		if err := os.Rename(tmp, bc.implicitLock); err != nil {
			return err
		}
		b, err := os.ReadFile(bc.implicitLock)
		if err != nil {
			return err
		}
		bc.key, bc.keyed = bc.computeKey(p, o, b)
	}
	if !bc.keyed {
		return nil
	}
	r := *res
	r.Duration, r.Downloaded, r.LockWritten, r.Reused = 0, 0, "", nil
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := bc.c.Put(bc.key, o.Output, b, bc.rec.Paths()); err != nil {
		return err
	}
	bc.c.NoteOutput(bc.key, o.Output)
	return nil
}

// hostFS is the build host's root as the boot loader and the kernel's
// modules read it: recorded, so that the entry depends on what was read.
// nil without a cache.
func (bc *buildCache) hostFS() fs.FS {
	if bc == nil {
		return nil
	}
	return bc.rec.FS("/")
}

// hostPaths opens host paths as given, recorded; nil without a cache.
func (bc *buildCache) hostPaths() fs.FS {
	if bc == nil {
		return nil
	}
	return bc.rec.Host()
}

// pinned is o with the packages pinned by the lock the cache kept for the
// package index at hand, when there is one: the same packages a
// resolution would choose (the lock is named by that index and the
// profile's requests), so the same bytes, without reading the index of
// some 60,000 packages (about 1 s and 200 MB).
func (bc *buildCache) pinned(o Options) Options {
	if bc == nil || bc.implicitLock == "" {
		return o
	}
	if _, err := os.Stat(bc.implicitLock); err != nil {
		return o
	}
	o.Debian.Lock, o.Debian.WriteLock = bc.implicitLock, false
	return o
}

// initrd writes the initrd to name, or copies the one an earlier build
// made from the same keel-init, kernel packages (by sha256), module list,
// compression and epoch: the initrd's xz is a large part of a build in
// which only the root changed. It returns the number of modules.
func (bc *buildCache) initrd(ctx context.Context, name string, p *profiles.Profile, k *kernel, o Options, prep *source.Prepared, res *Result) (int, error) {
	if bc == nil || p.Kernel.Package == "" || prep == nil || prep.Lock == nil {
		return writeInitrd(ctx, name, p, k, o)
	}
	c, err := bc.c.Sub("initrd")
	if err != nil {
		return writeInitrd(ctx, name, p, k, o)
	}
	h := c.NewKey()
	h.String("keel", o.ToolID)
	h.Bytes("keel-init", o.KeelInit)
	for _, pkg := range prep.Lock.PackagesFor(lock.RoleKernel) {
		h.String("kernel", pkg.Name+" "+pkg.SHA256)
	}
	h.JSON("modules", initrdModules(p))
	h.String("compression", p.Kernel.InitrdCompression)
	h.String("epoch", strconv.FormatInt(o.Epoch, 10))
	key, err := h.Sum()
	if err != nil {
		return writeInitrd(ctx, name, p, k, o)
	}
	if b, ok, err := c.Get(key, name); err == nil && ok {
		var m struct{ Modules int }
		if json.Unmarshal(b, &m) == nil {
			o.Logger.Debug("build cache: initrd reused", "entry", key.String())
			res.Reused = append(res.Reused, "initrd")
			return m.Modules, nil
		}
	}
	n, err := writeInitrd(ctx, name, p, k, o)
	if err != nil {
		return 0, err
	}
	b, _ := json.Marshal(struct{ Modules int }{n})
	if err := c.Put(key, name, b, nil); err != nil {
		o.Logger.Warn("build cache: initrd not stored", "error", err)
	}
	return n, nil
}
