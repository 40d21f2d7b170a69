// Package assemble turns a loaded profile into the root filesystem tree:
// the profile's sources applied in order, then the files keel generates
// (users, hostname, os-release, services, keel's own binaries, mount points),
// then /var moved to its factory copy (package keel/rootfs/factory).
package assemble

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"keel/profiles"
	"keel/rootfs"
	"keel/rootfs/factory"
	"keel/rootfs/hostfs"
	"keel/rootfs/machineid"
	"keel/rootfs/services"
	"keel/rootfs/sysconf"
	"keel/rootfs/systemd"
)

// InitPath is where keel-init lives in the rootfs; the boot entry points
// init= at it when the image has no init of its own.
const InitPath = "/usr/lib/keel/keel-init"

// KeelDir is keel's own directory in every image (keys, services, health).
const KeelDir = "/etc/keel"

// KeelctlPath is where keelctl lives in every image.
const KeelctlPath = "/usr/bin/keelctl"

// Options are the inputs of assembly that do not come from the profile.
type Options struct {
	// KeelInit is the static keel-init binary.
	KeelInit []byte
	// Keelctl is the static keelctl binary, installed as KeelctlPath; nil
	// leaves it out.
	Keelctl []byte
	// ApplyImage applies an OCI image's layers onto t. Nil means the
	// profile may not use image sources.
	ApplyImage func(ctx context.Context, t *rootfs.Tree, ref string) error
	// ApplyPackages installs the profile's Debian packages onto the empty
	// tree, before any source (rootfs/deb/source). Nil: the profile has
	// none.
	ApplyPackages func(ctx context.Context, t *rootfs.Tree) error
	// Epoch is the build time (SOURCE_DATE_EPOCH): generated files get it,
	// and no entry keeps a later mtime, so checkouts made at different times
	// build the same bytes.
	Epoch  int64
	Logger *slog.Logger
}

// Tree assembles the root filesystem of p.
func Tree(ctx context.Context, p *profiles.Profile, o Options) (*rootfs.Tree, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	t := rootfs.New()
	if o.ApplyPackages != nil {
		if err := o.ApplyPackages(ctx, t); err != nil {
			return nil, err
		}
	}
	for i, s := range p.Sources {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		field := fmt.Sprintf("sources[%d]", i)
		// The profile was validated: what fails now is reading or
		// fetching the source, a runtime failure at that field.
		if err := applySource(ctx, t, s, o); err != nil {
			return nil, p.At(field, err)
		}
		// keel owns /etc/keel: what is there is exactly what the profile
		// declares (keys, services), never what a source brings.
		if _, ok := t.Get(KeelDir); ok {
			return nil, p.At(field, fmt.Errorf("writes %s, which is keel's own: no source may write there", KeelDir))
		}
	}
	if err := generate(t, p, o); err != nil {
		return nil, err
	}
	err := sysconf.Apply(t, p, sysconf.Options{Epoch: o.Epoch, Enable: func(t *rootfs.Tree, unit string) error {
		_, err := systemd.Enable(t, unit, o.Epoch)
		return err
	}})
	if err != nil {
		return nil, err
	}
	clamp(t, o.Epoch)
	// Last, so that everything sources and generate put under /var (user
	// homes, packages' state) is in the factory copy, which keel-init
	// copies onto the data partition mounted there at boot.
	if err := factory.Split(t, o.Epoch); err != nil {
		return nil, err
	}
	return t, nil
}

func applySource(ctx context.Context, t *rootfs.Tree, s profiles.Source, o Options) error {
	switch s.Kind() {
	case "image":
		if o.ApplyImage == nil {
			return fmt.Errorf("image %s: OCI sources are not available in this build", s.Image)
		}
		o.Logger.Info("applying image", "ref", s.Image)
		return o.ApplyImage(ctx, t, s.Image)
	case "dir":
		to := s.To
		if to == "" {
			to = "/"
		}
		o.Logger.Info("adding directory", "dir", s.Dir, "to", to)
		return hostfs.Add(ctx, t, s.Dir, to, hostfs.Options{Logger: o.Logger})
	default:
		e := &rootfs.Entry{Type: rootfs.TypeFile, Mode: uint32(s.Mode), UID: uint32(s.UID), GID: uint32(s.GID)}
		if s.Source != "" {
			fi, err := os.Stat(s.Source)
			if err != nil {
				return err
			}
			if !fi.Mode().IsRegular() {
				return fmt.Errorf("%s: not a regular file", s.Source)
			}
			e.Size, e.Content, e.Mtime = fi.Size(), rootfs.HostFile(s.Source), fi.ModTime().Unix()
		} else {
			b := []byte(s.Content)
			e.Size, e.Content, e.Mtime = int64(len(b)), rootfs.Bytes(b), o.Epoch
		}
		if err := t.MkdirAll(path.Dir(s.File), 0o755); err != nil {
			return err
		}
		return t.Add(s.File, e)
	}
}

// generate adds the files keel writes itself. They come after the sources,
// so they win over what a base image brought.
func generate(t *rootfs.Tree, p *profiles.Profile, o Options) error {
	add := func(p string, mode uint32, uid, gid uint32, b []byte) error {
		if err := t.MkdirAll(path.Dir(p), 0o755); err != nil {
			return err
		}
		e := rootfs.NewFile(mode, b)
		e.UID, e.GID, e.Mtime = uid, gid, o.Epoch
		return t.Add(p, e)
	}
	for _, d := range []struct {
		p    string
		mode uint32
	}{{"/proc", 0o555}, {"/sys", 0o555}, {"/dev", 0o755}, {"/run", 0o755}, {"/tmp", 0o1777}, {"/var", 0o755}, {"/etc", 0o755}} {
		if _, ok := t.Get(d.p); !ok {
			if err := t.Add(d.p, &rootfs.Entry{Type: rootfs.TypeDir, Mode: d.mode, Mtime: o.Epoch}); err != nil {
				return err
			}
		}
	}
	acc, err := accounts(t, p)
	if err != nil {
		return err
	}
	if err := add("/etc/passwd", 0o644, 0, 0, acc.passwd); err != nil {
		return err
	}
	if err := add("/etc/group", 0o644, 0, 0, acc.group); err != nil {
		return err
	}
	if err := add("/etc/shadow", acc.shadowMode, 0, acc.shadowGID, acc.shadow); err != nil {
		return err
	}
	for _, u := range p.Users {
		home := u.Home
		if _, ok := t.Get(home); !ok {
			if err := t.MkdirAll(path.Dir(home), 0o755); err != nil {
				return err
			}
			if err := t.Add(home, &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o700, UID: uint32(u.UID), GID: uint32(u.GID), Mtime: o.Epoch}); err != nil {
				return err
			}
		}
		if len(u.SSHAuthorizedKeys) > 0 {
			ssh := path.Join(home, ".ssh")
			if _, ok := t.Get(ssh); !ok {
				if err := t.Add(ssh, &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o700, UID: uint32(u.UID), GID: uint32(u.GID), Mtime: o.Epoch}); err != nil {
					return err
				}
			}
			keys := strings.Join(u.SSHAuthorizedKeys, "\n") + "\n"
			if err := add(path.Join(ssh, "authorized_keys"), 0o600, uint32(u.UID), uint32(u.GID), []byte(keys)); err != nil {
				return err
			}
		}
	}
	if err := add("/etc/hostname", 0o644, 0, 0, []byte(p.Hostname+"\n")); err != nil {
		return err
	}
	// Empty, whatever a source brought: an id in the read-only root would
	// be every disk's. keel-init mounts the disk's own id over it.
	if err := add(machineid.Target, 0o444, 0, 0, nil); err != nil {
		return err
	}
	if err := add("/etc/os-release", 0o644, 0, 0, osRelease(t, p)); err != nil {
		return err
	}
	if err := addKeys(t, p, o.Epoch); err != nil {
		return err
	}
	var svcs []services.Service
	for _, s := range p.Services {
		svcs = append(svcs, services.Service{
			Name: s.Name, Command: s.Command, Restart: services.Restart(s.Restart), Env: s.Env,
			User: s.User, WorkingDir: s.WorkDir, OnExit: services.OnExit(s.OnExit),
		})
	}
	if p.Update.Source != "" {
		svc, err := addPolicy(p, add)
		if err != nil {
			return err
		}
		svcs = append(svcs, svc)
	}
	if err := services.Write(t, svcs); err != nil {
		return err
	}
	if len(svcs) > 0 {
		// keel-init judges its own services; systemd units in the list
		// (ssh.service) are for systemd images, judged by sysconf's units.
		var require []string
		for _, r := range p.Update.Health.Require {
			if slices.ContainsFunc(p.Services, func(s profiles.Service) bool { return s.Name == r }) {
				require = append(require, r)
			}
		}
		h := services.Health{Require: require, Grace: time.Duration(p.Update.Health.Grace)}
		if err := services.WriteHealth(t, h, svcs); err != nil {
			return err
		}
	}
	// services writes its files with no mtime; they are generated, so they
	// get the build's.
	generated := []string{path.Dir(services.Dir), services.Dir, services.HealthFile}
	for _, f := range t.Children(services.Dir) {
		generated = append(generated, path.Join(services.Dir, f))
	}
	for _, p := range generated {
		if e, ok := t.Get(p); ok {
			e.Mtime = o.Epoch
		}
	}
	if len(o.Keelctl) > 0 {
		if err := add(KeelctlPath, 0o755, 0, 0, o.Keelctl); err != nil {
			return err
		}
	}
	if len(o.KeelInit) == 0 {
		return fmt.Errorf("no keel-init binary to install")
	}
	return add(InitPath, 0o755, 0, 0, o.KeelInit)
}

// HasInit reports whether the tree brings its own init (systemd), in which
// case keel-init only runs in the initrd.
func HasInit(t *rootfs.Tree) bool { return sysconf.HasSystemd(t) }

// InitFor is the init= the boot entry passes for t: keel-init when the
// image has no init of its own; systemd itself when the image has systemd
// but no /sbin/init (no systemd-sysv); "" when /sbin/init will do.
func InitFor(t *rootfs.Tree) string {
	if !HasInit(t) {
		return InitPath
	}
	if _, e, err := t.Resolve("/sbin/init"); err == nil && e.Type == rootfs.TypeFile {
		return ""
	}
	return "/usr/lib/systemd/systemd"
}

// osRelease keeps what a base image says about itself and adds the image
// identity, which is what keelctl and the boot entries report.
func osRelease(t *rootfs.Tree, p *profiles.Profile) []byte {
	var lines []string
	for _, src := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		b, ok := readTreeFile(t, src)
		if !ok {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l == "" || strings.HasPrefix(l, "IMAGE_ID=") || strings.HasPrefix(l, "IMAGE_VERSION=") {
				continue
			}
			lines = append(lines, l)
		}
		break
	}
	if len(lines) == 0 {
		lines = append(lines, "NAME="+quote(p.Name), "ID="+p.Name, "PRETTY_NAME="+quote(p.Name+" "+p.Version))
	}
	lines = append(lines, "IMAGE_ID="+p.Name, "IMAGE_VERSION="+quote(p.Version))
	return []byte(strings.Join(lines, "\n") + "\n")
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`").Replace(s) + `"`
}

// readTreeFile reads a regular file of the tree, following one level of
// symlink (os-release is usually a link to ../usr/lib/os-release).
func readTreeFile(t *rootfs.Tree, p string) ([]byte, bool) {
	e, ok := t.Get(p)
	if ok && e.Type == rootfs.TypeSymlink {
		target := e.Target
		if !strings.HasPrefix(target, "/") {
			target = path.Join(path.Dir(p), target)
		}
		e, ok = t.Get(target)
	}
	if !ok || e.Type != rootfs.TypeFile || e.Content == nil || e.Size > 1<<20 {
		return nil, false
	}
	r, err := e.Content()
	if err != nil {
		return nil, false
	}
	defer r.Close()
	b := make([]byte, e.Size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, false
	}
	return b, true
}

// clamp makes no entry newer than the build epoch.
func clamp(t *rootfs.Tree, epoch int64) {
	_ = t.Walk(func(_ string, e *rootfs.Entry) error {
		if e.Mtime > epoch {
			e.Mtime = epoch
		}
		return nil
	})
}
