package profiles

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"keel/image/disk"
	"keel/image/poll"
)

// checker validates a decoded, defaulted profile: what the types alone do
// not say (names, ranges, references between fields, alternatives) and that
// the local files it names are there and readable.
type checker struct {
	p    *Profile
	bad  map[string]bool // fields the decoder already reported
	errs []*Error
}

func (c *checker) errorf(field, format string, args ...any) {
	for f := field; f != ""; f = parentField(f) {
		if c.bad[f] {
			return // one error per problem: the decoder has already said why
		}
	}
	c.errs = append(c.errs, c.p.Errorf(field, format, args...))
}

func (c *checker) has(field string) bool { _, ok := c.p.pos[field]; return ok }

// ok tells whether all of fields decoded cleanly, for checks that combine
// several of them.
func (c *checker) ok(fields ...string) bool {
	for _, f := range fields {
		if c.bad[f] {
			return false
		}
	}
	return true
}

var (
	imageName   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	versionRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+~-]*$`)
	hostLabel   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	moduleName  = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	accountName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	serviceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]*$`)
	// Debian policy 5.6.1 and 5.6.12: names, and versions with an
	// optional epoch and revision.
	debPackage = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	debVersion = regexp.MustCompile(`^([0-9]+:)?[0-9][A-Za-z0-9.+~:-]*$`)
	debSuite   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	timezoneRe = regexp.MustCompile(`^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$`)
	localeRe   = regexp.MustCompile(`^[A-Za-z]{1,8}(_[A-Za-z0-9]+)?(\.[A-Za-z0-9-]+)?(@[A-Za-z0-9]+)?$`)
	unitName   = regexp.MustCompile(`^[A-Za-z0-9:_.@\\-]+\.(service|socket|target|mount|timer|path|swap|device)$`)
	ifaceMatch = regexp.MustCompile(`^[A-Za-z0-9_.:*?\[\]-]{1,64}$`)
)

// maxID is the largest uid or gid: (uid_t)-1 is "no id".
const maxID = 1<<32 - 2

func (c *checker) check() {
	p := c.p
	if p.Name != "" && !imageName.MatchString(p.Name) {
		c.errorf("name", "%q is not a valid name (lowercase letters, digits, '.', '_', '-')", p.Name)
	}
	if p.Version != "" && !versionRe.MatchString(p.Version) {
		c.errorf("version", "%q is not a valid version (letters, digits, '.', '_', '+', '~', '-')", p.Version)
	}
	if strings.ContainsAny(p.Compatible, " \t\n") && c.has("compatible") {
		c.errorf("compatible", "%q must not contain white space", p.Compatible)
	}
	if !validHostname(p.Hostname) && c.has("hostname") {
		c.errorf("hostname", "%q is not a valid host name", p.Hostname)
	} else if !validHostname(p.Hostname) && imageName.MatchString(p.Name) {
		c.errorf("hostname", "the default, name %q, is not a valid host name; set hostname", p.Hostname)
	}
	c.kernel()
	c.debian()
	c.system()
	for i := range p.Sources {
		c.source(fmt.Sprintf("sources[%d]", i), &p.Sources[i])
	}
	c.accounts()
	c.services()
	if p.Boot.EFI != "" {
		c.localFile("boot.efi", p.Boot.EFI)
		if p.Boot.Loader != "systemd-boot" && c.ok("boot.efi") {
			c.errorf("boot.efi", "is systemd-boot's EFI binary; boot.loader is %s", p.Boot.Loader)
		}
	}
	if c.ok("boot.loader", "arch") {
		switch {
		case p.Boot.Loader == "grub" && p.Arch != "x86_64":
			c.errorf("boot.loader", "keel installs GRUB for x86_64, not %s (use systemd-boot or u-boot)", p.Arch)
		case p.Boot.Loader == "u-boot" && p.Arch != "aarch64":
			c.errorf("boot.loader", "keel writes U-Boot scripts for aarch64 boards, not %s (use systemd-boot or grub)", p.Arch)
		}
	}
	if p.Boot.Loader != "systemd-boot" && c.ok("boot.loader") {
		switch {
		case p.Boot.UKI && c.ok("boot.uki"):
			c.errorf("boot.uki", "unified kernel images boot through systemd-boot, not %s", p.Boot.Loader)
		case p.Disk.Verity && c.ok("disk.verity"):
			c.errorf("disk.verity", "a verity root is bound to its unified kernel image, which boots through systemd-boot, not %s", p.Boot.Loader)
		}
	}
	if p.Boot.Stub != "" {
		c.localFile("boot.stub", p.Boot.Stub)
	}
	if p.Arch == "aarch64" {
		c.notOnAarch64()
	}
	c.disk()
	c.update()
}

// notOnAarch64 refuses what keel builds for x86_64 only: a unified kernel
// image is assembled around x86's bzImage and its stub (bootloader/uki),
// and a verity root needs one (disk.verity turns boot.uki on, so it is
// the field to blame when set).
func (c *checker) notOnAarch64() {
	const no = "not supported for arch aarch64 yet (x86_64 only)"
	switch {
	case c.p.Disk.Verity && c.ok("disk.verity"):
		c.errorf("disk.verity", "a verity root, bound to a unified kernel image, is %s", no)
	case c.p.Boot.UKI && c.ok("boot.uki"):
		c.errorf("boot.uki", "unified kernel images are %s", no)
	}
	if c.p.Boot.Stub != "" && c.ok("boot.stub") {
		c.errorf("boot.stub", "unified kernel images are %s", no)
	}
}

// validHostname follows RFC 1123, within Linux's 64-byte HOST_NAME_MAX.
func validHostname(h string) bool {
	if h == "" || len(h) > 64 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if !hostLabel.MatchString(l) {
			return false
		}
	}
	return true
}

func (c *checker) kernel() {
	k := &c.p.Kernel
	switch {
	case !c.has("kernel"):
		// The decoder reported it missing.
	case k.File == "" && k.Image == "" && k.Package == "":
		if c.ok("kernel.file", "kernel.image", "kernel.package") {
			c.errorf("kernel", "needs package, file or image")
		}
	case k.Package != "" && (k.File != "" || k.Image != ""):
		other := "file"
		if k.Image != "" {
			other = "image"
		}
		c.errorf("kernel."+other, "kernel.package and kernel.%s are alternatives; give one", other)
	case k.File != "" && k.Image != "":
		c.errorf("kernel.image", "kernel.file and kernel.image are alternatives; give one")
	case k.Package != "":
		if !debPackage.MatchString(k.Package) {
			c.errorf("kernel.package", "%q is not a Debian package name", k.Package)
		}
		if k.Path != "" {
			c.errorf("kernel.path", "only with kernel.image")
		}
	case k.File != "":
		c.localFile("kernel.file", k.File)
		if k.Path != "" {
			c.errorf("kernel.path", "only with kernel.image")
		}
	default:
		c.imageRef("kernel.image", k.Image)
		if k.Path == "" {
			c.errorf("kernel.path", "required with kernel.image: the kernel's path inside the image")
		} else {
			c.absolute("kernel.path", k.Path)
		}
	}
	for i, m := range k.Modules {
		if !moduleName.MatchString(m) {
			c.errorf(fmt.Sprintf("kernel.modules[%d]", i), "%q is not a module name", m)
		}
	}
	for _, w := range strings.Fields(k.Cmdline) {
		if name, _, _ := strings.Cut(w, "="); name == "root" || name == "keel.slot" {
			c.errorf("kernel.cmdline", "%s= is set by keel", name)
		}
	}
}

// debian checks the repository and the package list. The repository itself
// is only reached by the build.
func (c *checker) debian() {
	p := c.p
	d := &p.Debian
	if !p.UsesDebian() {
		return
	}
	for i, pkg := range p.Packages {
		f := fmt.Sprintf("packages[%d]", i)
		name, ver, pinned := strings.Cut(pkg, "=")
		switch {
		case !debPackage.MatchString(name):
			c.errorf(f, "%q is not a Debian package name (two or more of lowercase letters, digits, '+', '-', '.'; name=version to pin)", name)
		case pinned && !debVersion.MatchString(ver):
			c.errorf(f, "%q is not a Debian version", ver)
		}
	}
	switch {
	case d.Suite == "":
		field := "packages"
		if len(p.Packages) == 0 {
			field = "kernel.package"
		}
		c.errorf(field, "needs debian.suite (e.g. bookworm): the repository to take packages from")
	case !debSuite.MatchString(d.Suite):
		c.errorf("debian.suite", "%q is not a suite name", d.Suite)
	}
	for i, comp := range d.Components {
		if !debSuite.MatchString(comp) {
			c.errorf(fmt.Sprintf("debian.components[%d]", i), "%q is not a component name", comp)
		}
	}
	if d.Architecture != "" && !debPackage.MatchString(d.Architecture) {
		c.errorf("debian.architecture", "%q is not a Debian architecture", d.Architecture)
	}
	if m := d.Mirror; m != "" {
		u, err := url.Parse(m)
		switch {
		case err != nil:
			c.errorf("debian.mirror", "%q is not a URL: %v", m, err)
		case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file":
			c.errorf("debian.mirror", "%q: want an http://, https:// or file:// URL", m)
		case u.Scheme != "file" && u.Host == "":
			c.errorf("debian.mirror", "%q names no host", m)
		}
	}
	if d.Keyring != "" {
		c.localFile("debian.keyring", d.Keyring)
	}
}

// system checks the declarative system settings: network, time zone,
// locale. Whether the image can honour them (systemd-networkd, tzdata) is
// only known once the tree is assembled.
func (c *checker) system() {
	p := c.p
	if p.Timezone != "" && (!timezoneRe.MatchString(p.Timezone) || strings.Contains(p.Timezone, "..")) {
		c.errorf("timezone", "%q is not a time zone name (like Europe/Berlin or UTC)", p.Timezone)
	}
	if p.Locale != "" && !localeRe.MatchString(p.Locale) {
		c.errorf("locale", "%q is not a locale name (like C.UTF-8 or en_US.UTF-8)", p.Locale)
	}
	for i, n := range p.Network {
		f := fmt.Sprintf("network[%d]", i)
		if c.has(f+".match") && !ifaceMatch.MatchString(n.Match) {
			c.errorf(f+".match", "%q is not an interface name or glob", n.Match)
		}
		if !n.DHCP && len(n.Address) == 0 && c.ok(f+".dhcp", f+".address") {
			c.errorf(f, "needs dhcp: true or an address")
		}
		for j, a := range n.Address {
			if _, err := netip.ParsePrefix(a); err != nil {
				c.errorf(fmt.Sprintf("%s.address[%d]", f, j), "%q is not an address with a prefix length (like 192.168.1.10/24)", a)
			}
		}
		if n.Gateway != "" {
			if _, err := netip.ParseAddr(n.Gateway); err != nil {
				c.errorf(f+".gateway", "%q is not an IP address", n.Gateway)
			}
		}
		for j, a := range n.DNS {
			if _, err := netip.ParseAddr(a); err != nil {
				c.errorf(fmt.Sprintf("%s.dns[%d]", f, j), "%q is not an IP address", a)
			}
		}
	}
}

func (c *checker) source(f string, s *Source) {
	var kinds []string
	for _, k := range []struct {
		name string
		set  bool
	}{{"image", s.Image != ""}, {"dir", s.Dir != ""}, {"file", s.File != ""}} {
		if k.set {
			kinds = append(kinds, k.name)
		}
	}
	switch {
	case len(kinds) == 0:
		if c.ok(f+".image", f+".dir", f+".file") {
			c.errorf(f, "needs one of image, dir, file")
		}
		return
	case len(kinds) > 1:
		c.errorf(f+"."+kinds[1], "%s are alternatives; give one per source", strings.Join(kinds, " and "))
		return
	}
	// Fields that only mean something with another kind of source.
	only := map[string]string{"to": "dir", "content": "file", "source": "file", "mode": "file", "uid": "file", "gid": "file"}
	for _, field := range []string{"to", "content", "source", "mode", "uid", "gid"} {
		if c.has(f+"."+field) && only[field] != kinds[0] {
			c.errorf(f+"."+field, "only with %s", only[field])
		}
	}
	switch kinds[0] {
	case "image":
		c.imageRef(f+".image", s.Image)
	case "dir":
		c.localDir(f+".dir", s.Dir)
		c.absolute(f+".to", s.To)
	case "file":
		if c.absolute(f+".file", s.File) && path.Clean(s.File) == "/" {
			c.errorf(f+".file", "must name a file, not /")
		}
		switch {
		case c.has(f+".content") && c.has(f+".source"):
			c.errorf(f+".source", "content and source are alternatives; give one")
		case c.has(f + ".source"):
			c.localFile(f+".source", s.Source)
		case !c.has(f + ".content"):
			c.errorf(f, "file needs content or source")
		}
		c.id(f+".uid", s.UID)
		c.id(f+".gid", s.GID)
	}
}

func (c *checker) accounts() {
	p := c.p
	// root exists whether listed or not; listing it (to give it a password
	// or keys) is fine as long as it stays uid/gid 0.
	groupNames := map[string]string{"root": ""}
	gids := map[int]string{0: "root"}
	for i, g := range p.Groups {
		f := fmt.Sprintf("groups[%d]", i)
		switch {
		case !accountName.MatchString(g.Name):
			c.errorf(f+".name", "%q is not a valid group name", g.Name)
		case groupNames[g.Name] != "":
			c.errorf(f+".name", "duplicate group %q (first at %s)", g.Name, groupNames[g.Name])
		default:
			pos, _ := c.p.Where(f + ".name")
			groupNames[g.Name] = pos.String()
		}
		switch {
		case !c.id(f+".gid", g.GID):
		case g.Name == "root" && g.GID != 0:
			c.errorf(f+".gid", "root's gid is 0")
		case gids[g.GID] != "" && gids[g.GID] != g.Name:
			c.errorf(f+".gid", "gid %d already belongs to group %q", g.GID, gids[g.GID])
		default:
			gids[g.GID] = g.Name
		}
	}
	userNames := map[string]string{}
	uids := map[int]string{0: "root"}
	for i, u := range p.Users {
		f := fmt.Sprintf("users[%d]", i)
		switch {
		case !accountName.MatchString(u.Name):
			c.errorf(f+".name", "%q is not a valid user name", u.Name)
		case userNames[u.Name] != "":
			c.errorf(f+".name", "duplicate user %q (first at %s)", u.Name, userNames[u.Name])
		default:
			pos, _ := c.p.Where(f + ".name")
			userNames[u.Name] = pos.String()
		}
		switch {
		case !c.id(f+".uid", u.UID):
		case u.Name == "root" && u.UID != 0:
			c.errorf(f+".uid", "root's uid is 0")
		case uids[u.UID] != "" && uids[u.UID] != u.Name:
			c.errorf(f+".uid", "uid %d already belongs to user %q", u.UID, uids[u.UID])
		default:
			uids[u.UID] = u.Name
		}
		if c.has(f + ".gid") { // a defaulted gid is the uid, checked above
			c.id(f+".gid", u.GID)
		}
		for j, g := range u.Groups {
			if _, ok := groupNames[g]; !ok {
				c.errorf(fmt.Sprintf("%s.groups[%d]", f, j), "unknown group %q (not in groups)", g)
			}
		}
		c.absolute(f+".home", u.Home)
		c.absolute(f+".shell", u.Shell)
		if pw := u.Password; pw != "" && !strings.HasPrefix(pw, "$") && !strings.HasPrefix(pw, "!") && !strings.HasPrefix(pw, "*") {
			c.errorf(f+".password", "must be a crypt(3) hash (\"$6$...\", \"$y$...\"), \"!\" or \"*\"; plain text is refused")
		} else if strings.ContainsAny(pw, ":\n") {
			c.errorf(f+".password", "must not contain ':' or a line break")
		}
		for j, k := range u.SSHAuthorizedKeys {
			if strings.TrimSpace(k) == "" || strings.Contains(k, "\n") {
				c.errorf(fmt.Sprintf("%s.ssh_authorized_keys[%d]", f, j), "must be one non-empty line")
			}
		}
	}
}

func (c *checker) services() {
	p := c.p
	users := map[string]bool{"root": true}
	for _, u := range p.Users {
		users[u.Name] = true
	}
	names := map[string]string{}
	for i, s := range p.Services {
		f := fmt.Sprintf("services[%d]", i)
		switch {
		case !serviceName.MatchString(s.Name) || len(s.Name) > 64:
			c.errorf(f+".name", "%q is not a valid service name", s.Name)
		case names[s.Name] != "":
			c.errorf(f+".name", "duplicate service %q (first at %s)", s.Name, names[s.Name])
		default:
			pos, _ := c.p.Where(f + ".name")
			names[s.Name] = pos.String()
		}
		if c.has(f+".command") && (len(s.Command) == 0 || s.Command[0] == "") {
			c.errorf(f+".command", "must name a program")
		}
		for j, a := range s.Command {
			if strings.ContainsRune(a, 0) {
				c.errorf(fmt.Sprintf("%s.command[%d]", f, j), "holds a NUL byte")
			}
		}
		c.absolute(f+".working_dir", s.WorkDir)
		if !users[s.User] {
			c.errorf(f+".user", "unknown user %q (not in users)", s.User)
		}
		for k := range s.Env {
			if !envName.MatchString(k) {
				c.errorf(f+".env."+k, "%q is not a variable name", k)
			} else if strings.ContainsRune(s.Env[k], 0) {
				c.errorf(f+".env."+k, "holds a NUL byte")
			}
		}
	}
}

func (c *checker) disk() {
	d := &c.p.Disk
	if c.ok("disk.size", "disk.esp", "disk.slot", "disk.data") {
		// The build's own planner decides, so that what validates lays out.
		if _, err := disk.Plan(d.planSizes(), nil); err != nil {
			c.planErrors(err)
		}
	}
	sq := d.Squashfs
	if ls, ok := levels[sq.Compression]; ok && c.has("disk.squashfs.level") && !slices.Contains(ls, sq.Level) {
		c.errorf("disk.squashfs.level", "%d is not a level of %s: want one of %s", sq.Level, sq.Compression,
			strings.ReplaceAll(strings.Trim(fmt.Sprint(ls), "[]"), " ", ", "))
	}
}

// planErrors reports each size image/disk's planner refused at its field.
func (c *checker) planErrors(err error) {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var se *disk.SizeError
		if !errors.As(e, &se) {
			c.errorf("disk", "%v", e)
			continue
		}
		c.errorf(se.Field, "%s", se.Explain(func(n int64) string { return Size(n).String() }))
	}
}

func (c *checker) update() {
	u := &c.p.Update
	if u.Tries < 1 && c.has("update.tries") {
		c.errorf("update.tries", "must be at least 1")
	}
	services := map[string]bool{}
	for _, s := range c.p.Services {
		services[s.Name] = true
	}
	for i, r := range u.Health.Require {
		// A systemd unit (ssh.service) is checked against the image at
		// build time, once it is known whether systemd is its init.
		if !services[r] && !unitName.MatchString(r) {
			c.errorf(fmt.Sprintf("update.health.require[%d]", i), "unknown service %q (not in services; a systemd unit is written with its suffix, like ssh.service)", r)
		}
	}
	for i, k := range u.Keys {
		c.localFile(fmt.Sprintf("update.keys[%d]", i), k)
	}
	if u.Source == "" {
		for _, f := range []string{"update.interval", "update.reboot", "update.ca", "update.auth", "update.rate", "update.insecure"} {
			if c.has(f) {
				c.errorf(f, "only means something with update.source")
			}
		}
		return
	}
	if err := poll.CheckSource(u.Source, u.Insecure); err != nil {
		c.errorf("update.source", "%v", err)
	}
	if len(u.Keys) == 0 {
		c.errorf("update.source", "a device that fetches updates needs update.keys to trust their signatures")
	}
	if time.Duration(u.Interval) < poll.MinInterval {
		c.errorf("update.interval", "%v: at least %v", time.Duration(u.Interval), poll.MinInterval)
	}
	if _, err := poll.ParseReboot(u.Reboot); err != nil {
		c.errorf("update.reboot", "%v", err)
	}
	if u.CA != "" {
		c.localFile("update.ca", u.CA)
	}
	if u.Auth != "" {
		c.localFile("update.auth", u.Auth)
	}
}

// id checks a uid or gid's range.
func (c *checker) id(field string, id int) bool {
	if id < 0 || id > maxID {
		c.errorf(field, "%d is out of range (0-%d)", id, maxID)
		return false
	}
	return true
}

// absolute checks a path in the image: absolute, and clean, because a
// "/etc/../x" in a profile is a mistake more often than not, and the tree
// model keys on clean paths.
func (c *checker) absolute(field, p string) bool {
	switch {
	case p == "":
	case !path.IsAbs(p):
		c.errorf(field, "%q must be an absolute path in the image", p)
		return false
	case p != "/" && path.Clean(p) != strings.TrimSuffix(p, "/"):
		c.errorf(field, "%q is not a clean path (%s)", p, path.Clean(p))
		return false
	}
	return true
}

// localFile checks that a file named by the profile exists, is a regular
// file (or a link to one) and can be opened for reading, so that a typo fails the load
// and not a build minutes later.
func (c *checker) localFile(field, p string) {
	if !c.ok(field) {
		return
	}
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		c.errorf(field, "%s: %s", p, fsMsg(err))
	case fi.IsDir():
		c.errorf(field, "%s: is a directory, not a file", p)
	case !fi.Mode().IsRegular():
		// Not opened: opening a FIFO would wait for a writer forever.
		c.errorf(field, "%s: not a regular file", p)
	default:
		f, err := os.Open(p)
		if err != nil {
			c.errorf(field, "%s: %s", p, fsMsg(err))
			return
		}
		f.Close()
	}
}

// localDir is localFile for a directory, which must also be listable.
func (c *checker) localDir(field, p string) {
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		c.errorf(field, "%s: %s", p, fsMsg(err))
	case !fi.IsDir():
		c.errorf(field, "%s: not a directory", p)
	default:
		f, err := os.Open(p)
		if err == nil {
			_, err = f.Readdirnames(1)
			f.Close()
		}
		if err != nil && err != io.EOF {
			c.errorf(field, "%s: %s", p, fsMsg(err))
		}
	}
}

// imageRef checks what can be checked of an image reference without
// fetching it: its shape, and that the path of a local transport exists.
func (c *checker) imageRef(field, ref string) {
	if strings.ContainsAny(ref, " \t\n") {
		c.errorf(field, "%q is not an image reference", ref)
		return
	}
	for _, tr := range localTransports {
		if rest, ok := strings.CutPrefix(ref, tr); ok {
			p, _, _ := strings.Cut(rest, ":")
			if p == "" {
				c.errorf(field, "%q names no path", ref)
			} else if _, err := os.Stat(p); err != nil {
				c.errorf(field, "%s: %s", p, fsMsg(err))
			}
			return
		}
	}
}
