package postinst

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"regexp"
	"strings"

	"keel/rootfs"
)

// Package is one installed package: what dpkg would know of it after
// unpacking.
type Package struct {
	Name         string
	Version      string
	Architecture string
	// MultiArch is the Multi-Arch field ("same" makes dpkg name the
	// package's database files PKG:ARCH.list); read from Control when empty.
	MultiArch string
	// Control is the control file of the package's control.tar, verbatim.
	Control string
	// Scripts are the maintainer scripts and the other control members
	// dpkg keeps, by member name: "preinst", "postinst", "prerm",
	// "postrm", "config", "templates", "triggers", "shlibs", "symbols".
	Scripts map[string]string
	// Conffiles are the paths of the conffiles member, one per entry.
	Conffiles []string
	// MD5Sums is the md5sums member, verbatim ("" when the package has none).
	MD5Sums string
	// Files are the paths of data.tar in archive order, as the archive
	// names them ("./", "./usr/", "./usr/bin/mawk") or absolute.
	Files []string
}

// Options configure Configure.
type Options struct {
	// Epoch is the mtime of every entry written.
	Epoch int64
	// Arch is dpkg's native architecture ("amd64"), for /var/lib/dpkg/arch.
	Arch string
	// Logger receives progress at debug level; nil discards.
	Logger *slog.Logger
}

// Report says what Configure did and, above all, what it did not do.
type Report struct {
	Users  []string // accounts created, "sshd (uid 100)", in creation order
	Groups []string // groups created, "kvm (gid 104)"
	// Units are the units enabled, "ssh.service (openssh-server)".
	Units []string
	// Alternatives are the links chosen, "awk → /usr/bin/mawk".
	Alternatives []string
	// Applied lists per-package recipes and other effects applied.
	Applied []string
	// Warnings are the script commands not applied and anything that
	// could not be done, one short line each, for `keel build -v`.
	Warnings []string
}

var (
	validName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]*$`)
	validArch = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	validPart = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
)

// scriptFiles are the control members dpkg keeps as executable scripts.
var scriptFiles = map[string]bool{"preinst": true, "postinst": true, "prerm": true, "postrm": true, "config": true}

type configurator struct {
	ctx    context.Context
	t      *rootfs.Tree
	pkgs   []*Package
	opts   Options
	log    *slog.Logger
	rep    *Report
	invs   []*invocation
	byName map[string]*Package // by package name, the first architecture
	db     *acctDB
	// covered are commands a recipe stands for, per package.
	covered map[string]map[string]bool
	// unparsed are scripts that could not be read as shell.
	unparsed []string
}

// Configure applies to t what the maintainer scripts of pkgs would have
// done on a fresh install, in a fixed order (see the package
// documentation), and reports what it did not apply. pkgs are in install
// order; their files are already in t.
func Configure(ctx context.Context, t *rootfs.Tree, pkgs []*Package, opts Options) (*Report, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &configurator{
		ctx: ctx, t: t, pkgs: pkgs, opts: opts, log: opts.Logger, rep: &Report{},
		byName: map[string]*Package{}, covered: map[string]map[string]bool{},
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	if err := c.evaluateScripts(); err != nil {
		return nil, err
	}
	// What a recipe stands for is not applied by the generic effects.
	for _, r := range recipes {
		if _, ok := c.byName[r.pkg]; ok {
			c.cover(r.pkg, r.covers...)
		}
	}
	steps := []struct {
		name string
		run  func() error
	}{
		{"dpkg database", c.dpkgDatabase},
		{"accounts", c.accounts},
		{"alternatives", c.alternatives},
		{"statoverrides", c.statoverrides},
		{"systemd units", c.units},
		{"PAM configuration", c.pam},
		{"file commands", c.files},
		{"package recipes", c.recipes},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c.log.Debug("configuring packages", "step", s.name)
		if err := s.run(); err != nil {
			return nil, fmt.Errorf("configuring packages: %s: %w", s.name, err)
		}
	}
	c.report()
	return c.rep, nil
}

func (c *configurator) check() error {
	seen := map[string]bool{}
	for _, p := range c.pkgs {
		if p == nil {
			return errors.New("configuring packages: nil package")
		}
		if !validName.MatchString(p.Name) {
			return fmt.Errorf("configuring packages: bad package name %q", p.Name)
		}
		if !validArch.MatchString(p.Architecture) {
			return fmt.Errorf("configuring packages: %s: bad architecture %q", p.Name, p.Architecture)
		}
		if p.Version == "" || strings.ContainsAny(p.Version, " \n") {
			return fmt.Errorf("configuring packages: %s: bad version %q", p.Name, p.Version)
		}
		key := p.dbName()
		if seen[key] {
			return fmt.Errorf("configuring packages: %s listed twice", key)
		}
		seen[key] = true
		if _, ok := c.byName[p.Name]; !ok {
			c.byName[p.Name] = p
		}
		for name := range p.Scripts {
			if !validPart.MatchString(name) {
				return fmt.Errorf("configuring packages: %s: bad control member name %q", p.Name, name)
			}
		}
	}
	if c.opts.Arch != "" && !validArch.MatchString(c.opts.Arch) {
		return fmt.Errorf("configuring packages: bad architecture %q", c.opts.Arch)
	}
	return nil
}

// multiArch is the package's Multi-Arch value.
func (p *Package) multiArch() string {
	if p.MultiArch != "" {
		return p.MultiArch
	}
	for _, f := range parseControl(p.Control) {
		if strings.EqualFold(f.name, "Multi-Arch") {
			return strings.TrimSpace(f.value)
		}
	}
	return ""
}

// dbName is the name of the package's files in /var/lib/dpkg/info:
// "libc6:amd64" for a Multi-Arch: same package, else the name.
func (p *Package) dbName() string {
	if p.multiArch() == "same" {
		return p.Name + ":" + p.Architecture
	}
	return p.Name
}

// evaluateScripts records the commands of every package's preinst and
// postinst, in install order.
func (c *configurator) evaluateScripts() error {
	for _, p := range c.pkgs {
		for _, script := range []string{"preinst", "postinst"} {
			if err := c.ctx.Err(); err != nil {
				return err
			}
			text, ok := p.Scripts[script]
			if !ok || strings.TrimSpace(text) == "" {
				continue
			}
			if interp := interpreter(text); interp != "sh" && interp != "bash" && interp != "dash" {
				c.unparsed = append(c.unparsed, fmt.Sprintf("%s of %s: a %s script: not run", script, p.Name, interp))
				continue
			}
			invs, notes, err := evaluate(c.t, p, script, text)
			if err != nil {
				c.unparsed = append(c.unparsed, fmt.Sprintf("%s of %s: not understood (%v): not run", script, p.Name, err))
				continue
			}
			for _, n := range notes {
				c.log.Debug("script evaluation", "package", p.Name, "script", script, "note", n)
			}
			c.invs = append(c.invs, invs...)
		}
	}
	return nil
}

// interpreter is the base name of a script's #! interpreter, "sh" when it
// has none (dpkg runs such scripts with /bin/sh).
func interpreter(text string) string {
	if !strings.HasPrefix(text, "#!") {
		return "sh"
	}
	line, _, _ := strings.Cut(text[2:], "\n")
	f := strings.Fields(line)
	if len(f) == 0 {
		return "sh"
	}
	name := path.Base(f[0])
	if name == "env" && len(f) > 1 {
		name = path.Base(f[1])
	}
	return name
}

// invocationsOf returns the recorded commands named name, in order.
func (c *configurator) invocationsOf(names ...string) []*invocation {
	var out []*invocation
	for _, inv := range c.invs {
		n := inv.name()
		for _, want := range names {
			if n == want {
				out = append(out, inv)
				break
			}
		}
	}
	return out
}

func (c *configurator) warn(format string, args ...any) {
	c.rep.Warnings = append(c.rep.Warnings, fmt.Sprintf(format, args...))
}

func (c *configurator) applied(format string, args ...any) {
	c.rep.Applied = append(c.rep.Applied, fmt.Sprintf(format, args...))
}

// Tree helpers. Every entry keel writes here is root-owned with the epoch
// as mtime unless said otherwise.

// maxRead bounds what is read of a file in the tree: configuration files
// and certificates are small; the largest read is a busybox binary.
const maxRead = 64 << 20

// readFile reads a file of the tree, following its links; ok is false
// when there is no such regular file.
func (c *configurator) readFile(p string) (b []byte, ok bool, err error) {
	_, e, rerr := c.t.Resolve(p)
	if rerr != nil || e.Type != rootfs.TypeFile {
		return nil, false, nil
	}
	if e.Size > maxRead {
		return nil, false, fmt.Errorf("%s: %d bytes is too large", p, e.Size)
	}
	if e.Content == nil || e.Size == 0 {
		return []byte{}, true, nil
	}
	r, err := e.Content()
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", p, err)
	}
	defer r.Close()
	b, err = io.ReadAll(io.LimitReader(r, maxRead+1))
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", p, err)
	}
	if int64(len(b)) > maxRead {
		return nil, false, fmt.Errorf("%s: too large", p)
	}
	return b, true, nil
}

// exists reports whether p names an entry, following links.
func (c *configurator) exists(p string) bool {
	_, _, err := c.t.Resolve(p)
	return err == nil
}

// lexists reports whether p names an entry, not following a final link.
func (c *configurator) lexists(p string) bool {
	real, err := c.t.ResolveParent(p)
	if err != nil {
		return false
	}
	_, ok := c.t.Get(real)
	return ok
}

// place returns where an entry at p goes: its real path, with missing
// parent directories created (0755).
func (c *configurator) place(p string) (string, error) {
	dir, err := c.t.MkdirAllTime(path.Dir(rootfs.Clean(p)), 0o755, c.opts.Epoch)
	if err != nil {
		return "", err
	}
	return path.Join(dir, path.Base(p)), nil
}

func (c *configurator) writeFile(p string, mode, uid, gid uint32, b []byte) error {
	real, err := c.place(p)
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if e, ok := c.t.Get(real); ok && e.Type == rootfs.TypeDir {
		return fmt.Errorf("writing %s: is a directory", p)
	}
	e := rootfs.NewFile(mode, b)
	e.UID, e.GID, e.Mtime = uid, gid, c.opts.Epoch
	if err := c.t.Add(real, e); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// symlink writes p → target, replacing a file or link at p.
func (c *configurator) symlink(p, target string) error {
	real, err := c.place(p)
	if err != nil {
		return fmt.Errorf("linking %s: %w", p, err)
	}
	if e, ok := c.t.Get(real); ok && e.Type == rootfs.TypeDir {
		return fmt.Errorf("linking %s: is a directory", p)
	}
	if err := c.t.Add(real, &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: target, Mtime: c.opts.Epoch}); err != nil {
		return fmt.Errorf("linking %s: %w", p, err)
	}
	return nil
}

func (c *configurator) mkdir(p string, mode uint32) error {
	if _, err := c.t.MkdirAllTime(p, mode, c.opts.Epoch); err != nil {
		return fmt.Errorf("creating %s: %w", p, err)
	}
	return nil
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// controlField is one field of a control paragraph; value keeps its
// continuation lines ("\n ..."), without the newline that ends it.
type controlField struct {
	name, value string
}

// parseControl splits a control paragraph into fields in order. Lines
// that are neither a field nor a continuation are dropped; only the first
// paragraph is read.
func parseControl(text string) []controlField {
	var out []controlField
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t\r")
		if line == "" {
			if len(out) > 0 {
				break
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(out) > 0 {
				out[len(out)-1].value += "\n" + line
			}
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			continue
		}
		out = append(out, controlField{name: name, value: strings.TrimLeft(value, " \t")})
	}
	return out
}
