// Package sysconf writes a profile's declarative system settings into the
// root tree: the time zone and locale in every image, and, in an image whose
// init is systemd, the profile's services as systemd units, the network
// through systemd-networkd, SSH host keys made at first boot on /var, the
// ESP mounted for systemd-bless-boot, and the health check that judges a
// trial boot (DESIGN §3, step 5).
//
// Units are enabled the way systemctl enable would, by links in the tree
// (rootfs/systemd), never by running systemctl. Everything written is
// generated from the profile alone, with the build's mtime, so two builds
// give the same bytes.
package sysconf

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"keel/profiles"
	"keel/rootfs"
	"keel/rootfs/systemd"
)

// Paths keel writes; tests and keel-init refer to them.
const (
	// ESPMountPoint is where systemd images mount the ESP, one of the
	// places systemd-bless-boot looks for it.
	ESPMountPoint = "/efi"
	// SSHKeyDir holds the machine's SSH host keys, on the data partition:
	// they are made at first boot, so no two disks share them and none is
	// in the read-only image.
	SSHKeyDir = "/var/lib/keel/ssh"
	// HealthUnit judges a trial boot; BootFailedUnit marks it bad.
	HealthUnit     = "keel-health.service"
	BootFailedUnit = "keel-boot-failed.service"
	SSHKeygenUnit  = "keel-ssh-keygen.service"
	ESPMountUnit   = "efi.mount"
	ESPCleanupUnit = "keel-esp-cleanup.service"
	KeelctlPath    = "/usr/bin/keelctl"
)

// Enabler enables a unit of the tree as systemctl enable would (rootfs/systemd.Enable).
type Enabler func(t *rootfs.Tree, unit string) error

// Options are what Apply needs besides the profile.
type Options struct {
	Epoch  int64
	Enable Enabler
}

// HasSystemd reports whether systemd is the image's init.
func HasSystemd(t *rootfs.Tree) bool {
	return findFile(t, "/usr/lib/systemd/systemd", "/lib/systemd/systemd") != ""
}

// findFile returns the first of paths that is a regular file once the
// tree's symlinks are followed (/lib is usr/lib in a merged-/usr tree, not
// in an older one), or "".
func findFile(t *rootfs.Tree, paths ...string) string {
	for _, p := range paths {
		if _, e, err := t.Resolve(p); err == nil && e.Type == rootfs.TypeFile {
			return p
		}
	}
	return ""
}

// Apply writes p's system settings into t. Settings the image cannot honour
// are errors naming the profile field: network without systemd-networkd, a
// time zone without its zoneinfo file.
func Apply(t *rootfs.Tree, p *profiles.Profile, o Options) error {
	w := &writer{t: t, epoch: o.Epoch}
	if err := timezone(w, p); err != nil {
		return err
	}
	if err := locale(w, p); err != nil {
		return err
	}
	if !HasSystemd(t) {
		if len(p.Network) > 0 {
			return p.Errorf("network", "needs systemd and systemd-networkd in the image (keel-init does not configure networks): add systemd to packages")
		}
		for i, r := range p.Update.Health.Require {
			if _, unit := requiredUnit(p, r); unit {
				return p.Errorf(fmt.Sprintf("update.health.require[%d]", i), "%s is a systemd unit, but the image has no systemd", r)
			}
		}
		return nil
	}
	if o.Enable == nil {
		return fmt.Errorf("sysconf: no unit enabler")
	}
	steps := []func(*writer, *profiles.Profile, Enabler) error{readOnlyRoot, services, network, sshHostKeys, espMount, health}
	for _, step := range steps {
		if err := step(w, p, o.Enable); err != nil {
			return err
		}
	}
	return nil
}

type writer struct {
	t     *rootfs.Tree
	epoch int64
}

func (w *writer) mkdirAll(p string) error {
	if e, ok := w.t.Get(p); ok {
		if e.Type != rootfs.TypeDir {
			return fmt.Errorf("%s is a %s, not a directory", p, e.Type)
		}
		return nil
	}
	if err := w.mkdirAll(path.Dir(p)); err != nil {
		return err
	}
	return w.t.Add(p, &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755, Mtime: w.epoch})
}

func (w *writer) file(p string, mode uint32, content string) error {
	if err := w.mkdirAll(path.Dir(p)); err != nil {
		return err
	}
	if old, ok := w.t.Get(p); ok && old.Type == rootfs.TypeDir {
		return fmt.Errorf("%s is a directory", p)
	}
	e := rootfs.NewFile(mode, []byte(content))
	e.Mtime = w.epoch
	if err := w.t.Remove(p); err != nil {
		return err
	}
	return w.t.Add(p, e)
}

func (w *writer) symlink(p, target string) error {
	if err := w.mkdirAll(path.Dir(p)); err != nil {
		return err
	}
	if err := w.t.Remove(p); err != nil {
		return err
	}
	return w.t.Add(p, &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: target, Mtime: w.epoch})
}

func (w *writer) exists(p string) bool {
	_, ok := w.t.Get(p)
	return ok
}

// unitExists looks for a unit where systemd looks. A link counts, even a
// dangling one: an alias or a mask is a unit of that name too.
func (w *writer) unitExists(name string) bool {
	for _, dir := range systemd.UnitPath {
		real, err := w.t.ResolveParent(path.Join(dir, name))
		if err == nil && w.exists(real) {
			return true
		}
	}
	return false
}

func timezone(w *writer, p *profiles.Profile) error {
	tz := p.Timezone
	if tz == "" {
		tz = "UTC"
	}
	zone := "/usr/share/zoneinfo/" + tz
	if _, e, err := w.t.Resolve(zone); err != nil || e.Type != rootfs.TypeFile {
		if p.Timezone == "" || tz == "UTC" {
			// glibc takes a missing /etc/localtime as UTC.
			return nil
		}
		if err == nil {
			// "Europe" passes the name check but is a directory.
			return p.Errorf("timezone", "%s is a %s in the image, not a time zone", zone, e.Type)
		}
		return p.Errorf("timezone", "%s is not in the image: add the tzdata package", zone)
	}
	if err := w.symlink("/etc/localtime", "../usr/share/zoneinfo/"+tz); err != nil {
		return err
	}
	return w.file("/etc/timezone", 0o644, tz+"\n")
}

func locale(w *writer, p *profiles.Profile) error {
	lang := p.Locale
	if lang == "" {
		if !HasSystemd(w.t) {
			return nil
		}
		// glibc's built-in UTF-8 locale; PAM and systemd read these files
		// and complain when they are missing.
		lang = "C.UTF-8"
	}
	l := "LANG=" + lang + "\n"
	if err := w.file("/etc/locale.conf", 0o644, l); err != nil {
		return err
	}
	return w.file("/etc/default/locale", 0o644, l)
}

// readOnlyRoot makes a systemd image at home on a read-only root: /tmp is a
// tmpfs (systemd's own tmp.mount, which Debian leaves disabled; private
// /dev and /tmp namespaces need a writable /tmp) and /etc/mtab is the link
// systemd-tmpfiles would make.
func readOnlyRoot(w *writer, _ *profiles.Profile, enable Enabler) error {
	unit := `# Written by keel: the root is read-only, so /tmp is a tmpfs.
[Unit]
Description=Temporary Directory /tmp
Documentation=https://systemd.io/TEMPORARY_DIRECTORIES
ConditionPathIsSymbolicLink=!/tmp
DefaultDependencies=no
Conflicts=umount.target
Before=local-fs.target umount.target
After=swap.target

[Mount]
What=tmpfs
Where=/tmp
Type=tmpfs
Options=mode=1777,strictatime,nosuid,nodev,size=50%%,nr_inodes=1m

[Install]
WantedBy=local-fs.target
`
	if err := w.file("/etc/systemd/system/tmp.mount", 0o644, strings.ReplaceAll(unit, "%%", "%")); err != nil {
		return err
	}
	if err := enable(w.t, "tmp.mount"); err != nil {
		return fmt.Errorf("enabling tmp.mount: %w", err)
	}
	if !w.exists("/etc/mtab") {
		return w.symlink("/etc/mtab", "../proc/self/mounts")
	}
	return nil
}

// ServiceUnit is the unit a profile service becomes.
func ServiceUnit(name string) string { return name + ".service" }

// keelUnits are the units keel writes besides the profile's services; a
// service of the same name would be overwritten by them.
var keelUnits = []string{"tmp.mount", ESPMountUnit, SSHKeygenUnit, HealthUnit, BootFailedUnit}

func services(w *writer, p *profiles.Profile, enable Enabler) error {
	for i, s := range p.Services {
		f := fmt.Sprintf("services[%d]", i)
		unit := ServiceUnit(s.Name)
		switch {
		case slices.Contains(keelUnits, unit):
			return p.Errorf(f+".name", "%s is a unit keel writes itself: give the service another name", unit)
		case strings.HasSuffix(s.Name, "@"):
			return p.Errorf(f+".name", "%s would be a systemd template, which does not run by itself: give the service another name", unit)
		case w.unitExists(unit):
			return p.Errorf(f+".name", "the image already has a unit %s (from a package): give the service another name", unit)
		}
		if len(s.Command) == 0 || s.Command[0] == "" {
			return p.Errorf(f+".command", "must name a program")
		}
		if strings.ContainsAny(s.Command[0][:1], execPrefixes) {
			// systemd reads these as flags even inside quotes.
			return p.Errorf(f+".command[0]", "%q: a program name starting with one of %s cannot be written in a systemd unit", s.Command[0], execPrefixes)
		}
		restart, ok := map[string]string{"always": "always", "on-failure": "on-failure", "never": "no", "": profiles.DefaultRestart}[s.Restart]
		if !ok {
			return p.Errorf(f+".restart", "%q is not one of always, on-failure, never", s.Restart)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "# Written by keel from the profile's services[%d].\n[Unit]\nDescription=%s (keel service)\n", i, s.Name)
		if s.OnExit != "" {
			// Gone for good, whether it succeeded or used up its
			// restarts. Unit settings: in [Service], systemd 252 ignores
			// SuccessAction=.
			fmt.Fprintf(&b, "SuccessAction=%s\nFailureAction=%s\n", s.OnExit, s.OnExit)
		}
		b.WriteString("\n[Service]\n")
		fmt.Fprintf(&b, "ExecStart=%s\n", execLine(s.Command))
		if s.User != "" && s.User != "root" {
			fmt.Fprintf(&b, "User=%s\n", s.User)
		}
		switch {
		case s.WorkDir != "":
			dir, err := unitPath(s.WorkDir)
			if err != nil {
				return p.Errorf(f+".working_dir", "%v", err)
			}
			fmt.Fprintf(&b, "WorkingDirectory=%s\n", dir)
		case s.User != "" && s.User != "root":
			// keel-init's rule: the user's home if it exists.
			b.WriteString("WorkingDirectory=-~\n")
		}
		keys := make([]string, 0, len(s.Env))
		for k := range s.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "Environment=%s\n", quoteEnv(k+"="+s.Env[k]))
		}
		fmt.Fprintf(&b, "Restart=%s\n", restart)
		if restart != "no" {
			b.WriteString("RestartSec=1\n")
		}
		b.WriteString("\n[Install]\nWantedBy=multi-user.target\n")
		if err := w.file("/etc/systemd/system/"+unit, 0o644, b.String()); err != nil {
			return err
		}
		if err := enable(w.t, unit); err != nil {
			return fmt.Errorf("enabling %s: %w", unit, err)
		}
	}
	return nil
}

// execPrefixes are the characters systemd takes as flags at the start of
// an ExecStart= program (systemd.service(5), "Command lines").
const execPrefixes = "-@:+!"

// execLine quotes argv for ExecStart= so that the command runs exactly as
// the profile wrote it.
func execLine(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = quoteArg(a)
	}
	return strings.Join(out, " ")
}

// quoteArg writes one ExecStart= word. systemd expands specifiers (%) in
// the whole line before splitting it, splits at whitespace outside quotes,
// C-unescapes, and substitutes $VAR and ${VAR} when it runs the command,
// "$$" giving one "$". A word of plain characters is written as it is;
// any other is double-quoted with backslash escapes.
func quoteArg(s string) string {
	plain := s != ""
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/._-+=:,@%$", c)) {
			plain = false
			break
		}
	}
	s = strings.NewReplacer("%", "%%", "$", "$$").Replace(s)
	if plain {
		return s
	}
	return `"` + cEscape(s) + `"`
}

// quoteEnv writes one Environment= assignment, which is split, unquoted
// and C-unescaped like an ExecStart= word and has specifiers expanded, but
// no variables substituted: a "$" stays as it is.
func quoteEnv(s string) string {
	return `"` + cEscape(strings.ReplaceAll(s, "%", "%%")) + `"`
}

// cEscape escapes what cannot stand inside a double-quoted systemd word:
// the quote, the backslash, and control characters, which would end or
// continue the line (systemd ends lines at \r as well as \n).
func cEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch c {
		case '\\', '"':
			b.WriteByte('\\')
			b.WriteRune(c)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if c < ' ' || c == 0x7f {
				fmt.Fprintf(&b, `\x%02x`, c)
			} else {
				b.WriteRune(c)
			}
		}
	}
	return b.String()
}

// unitPath writes a path for a setting systemd takes verbatim (no quotes,
// no escapes), such as WorkingDirectory=: only specifiers are escaped.
// What such a setting cannot hold is refused.
func unitPath(p string) (string, error) {
	for _, c := range p {
		if c < ' ' || c == 0x7f {
			return "", fmt.Errorf("%q holds a control character, which a systemd unit cannot express", p)
		}
	}
	if strings.HasSuffix(p, " ") || strings.HasSuffix(p, "\\") {
		// systemd strips trailing blanks and joins a line ending in a
		// backslash with the next one.
		return "", fmt.Errorf("%q ends in a blank or a backslash, which a systemd unit cannot express", p)
	}
	return strings.ReplaceAll(p, "%", "%%"), nil
}

func network(w *writer, p *profiles.Profile, enable Enabler) error {
	if len(p.Network) == 0 {
		return nil
	}
	if !w.unitExists("systemd-networkd.service") {
		return p.Errorf("network", "needs systemd-networkd, which the image does not have (it is in Debian's systemd package)")
	}
	for i, n := range p.Network {
		var b strings.Builder
		fmt.Fprintf(&b, "# Written by keel from the profile's network[%d].\n[Match]\nName=%s\n\n[Network]\n", i, n.Match)
		if n.DHCP {
			b.WriteString("DHCP=yes\n")
		}
		for _, a := range n.Address {
			fmt.Fprintf(&b, "Address=%s\n", a)
		}
		if n.Gateway != "" {
			fmt.Fprintf(&b, "Gateway=%s\n", n.Gateway)
		}
		for _, d := range n.DNS {
			fmt.Fprintf(&b, "DNS=%s\n", d)
		}
		name := fmt.Sprintf("/etc/systemd/network/%02d-keel.network", 10+i)
		if err := w.file(name, 0o644, b.String()); err != nil {
			return err
		}
	}
	if err := enable(w.t, "systemd-networkd.service"); err != nil {
		return fmt.Errorf("enabling systemd-networkd: %w", err)
	}
	if w.unitExists("systemd-resolved.service") {
		if err := enable(w.t, "systemd-resolved.service"); err != nil {
			return fmt.Errorf("enabling systemd-resolved: %w", err)
		}
	}
	return nil
}

// sshHostKeys makes sshd use host keys that keel-ssh-keygen.service creates
// on the data partition at first boot (DESIGN: no per-machine secret in the
// read-only root).
func sshHostKeys(w *writer, _ *profiles.Profile, enable Enabler) error {
	if findFile(w.t, "/usr/sbin/sshd") == "" || !w.unitExists("ssh.service") {
		return nil
	}
	// No RSA key: making one takes a minute on a slow first boot (under
	// emulation), and every current client speaks ed25519 or ECDSA.
	types := []string{"ecdsa", "ed25519"}
	var conf, unit strings.Builder
	conf.WriteString("# Written by keel: this machine's host keys live on the data partition,\n# made at first boot by " + SSHKeygenUnit + ".\n")
	fmt.Fprintf(&unit, `# Written by keel.
[Unit]
Description=SSH host keys of this machine, on /var
Before=ssh.service
ConditionPathExists=!%s/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/bin/mkdir -p -m 0755 %s
`, SSHKeyDir, SSHKeyDir)
	for _, ty := range types {
		key := path.Join(SSHKeyDir, "ssh_host_"+ty+"_key")
		fmt.Fprintf(&conf, "HostKey %s\n", key)
		// Written under a temporary name and renamed, the ed25519 key
		// last: a cut leaves no half key, and the condition retries.
		fmt.Fprintf(&unit, "ExecStart=/bin/rm -f %s.tmp %s.tmp.pub\n", key, key)
		fmt.Fprintf(&unit, "ExecStart=/usr/bin/ssh-keygen -q -t %s -N \"\" -C \"\" -f %s.tmp\n", ty, key)
		// On disk before the renames, or a cut could leave an empty
		// key under the final name, which the condition never retries.
		fmt.Fprintf(&unit, "ExecStart=/bin/sync %s.tmp %s.tmp.pub\n", key, key)
		fmt.Fprintf(&unit, "ExecStart=/bin/mv %s.tmp.pub %s.pub\n", key, key)
		fmt.Fprintf(&unit, "ExecStart=/bin/mv %s.tmp %s\n", key, key)
	}
	fmt.Fprintf(&unit, "ExecStart=/bin/sync %s\n", SSHKeyDir)
	if err := w.file("/etc/ssh/sshd_config.d/keel-host-keys.conf", 0o644, conf.String()); err != nil {
		return err
	}
	if err := w.file("/etc/systemd/system/"+SSHKeygenUnit, 0o644, unit.String()); err != nil {
		return err
	}
	dropIn := "# Written by keel.\n[Unit]\nWants=" + SSHKeygenUnit + "\nAfter=" + SSHKeygenUnit + "\n"
	if err := w.file("/etc/systemd/system/ssh.service.d/keel-host-keys.conf", 0o644, dropIn); err != nil {
		return err
	}
	// No host key may sit in the image.
	for _, name := range w.t.Children("/etc/ssh") {
		if strings.HasPrefix(name, "ssh_host_") {
			if err := w.t.Remove("/etc/ssh/" + name); err != nil {
				return err
			}
		}
	}
	return nil
}

// espMount mounts the ESP at /efi, where systemd-bless-boot finds the
// entry to rename. keelctl mounts it on its own at /run/keel/esp; both see
// one filesystem, mounted with this unit's options since it comes first:
// the same as espdir.Mount's, errors=continue included (a leftover cut in
// its fsync must not turn the ESP read-only).
func espMount(w *writer, _ *profiles.Profile, enable Enabler) error {
	if err := w.mkdirAll(ESPMountPoint); err != nil {
		return err
	}
	unit := `# Written by keel: the ESP, for systemd-bless-boot and bootctl.
[Unit]
Description=EFI System Partition

[Mount]
What=/dev/disk/by-partlabel/esp
Where=/efi
Type=vfat
Options=umask=0077,dirsync,errors=continue,nosuid,nodev,noexec

[Install]
WantedBy=local-fs.target
`
	if err := w.file("/etc/systemd/system/"+ESPMountUnit, 0o644, unit); err != nil {
		return err
	}
	if err := enable(w.t, ESPMountUnit); err != nil {
		return err
	}
	// What an interrupted install or bless left on the ESP goes before
	// anything judges or changes the entries, as keel-init does it in
	// images without systemd.
	if findFile(w.t, KeelctlPath) == "" {
		return nil
	}
	cleanup := `# Written by keel: what an interrupted update left on the ESP.
[Unit]
Description=Clean up the ESP after an interrupted update
DefaultDependencies=no
After=local-fs.target
Before=basic.target systemd-bless-boot.service ` + HealthUnit + `

[Service]
Type=oneshot
ExecStart=` + KeelctlPath + ` cleanup

[Install]
WantedBy=basic.target
`
	if err := w.file("/etc/systemd/system/"+ESPCleanupUnit, 0o644, cleanup); err != nil {
		return err
	}
	return enable(w.t, ESPCleanupUnit)
}

// requiredUnit is the unit an update.health.require entry names, and
// whether it names a systemd unit (ssh.service) rather than one of the
// profile's services. A service's name wins: a service may be called
// "web.socket", and its unit is then web.socket.service.
func requiredUnit(p *profiles.Profile, r string) (unit string, isUnit bool) {
	for _, s := range p.Services {
		if s.Name == r {
			return ServiceUnit(r), false
		}
	}
	for _, suf := range []string{".service", ".socket", ".target", ".mount", ".timer", ".path", ".swap", ".device"} {
		if strings.HasSuffix(r, suf) {
			return r, true
		}
	}
	return ServiceUnit(r), false
}

// health writes the units that judge a trial boot. systemd-bless-boot
// (pulled in by its generator only when systemd-boot counts this boot)
// requires boot-complete.target; keel-health.service is required by that
// target and passes once every required unit has stayed up for the grace
// period. When it fails, keel-boot-failed.service reboots, leaving the
// entry's try counter (decremented by systemd-boot before each boot) to
// decide: the update gets update.tries boots, whether they fail their
// health check or hang, as under keel-init.
func health(w *writer, p *profiles.Profile, enable Enabler) error {
	req := p.Update.Health.Require
	if len(req) == 0 {
		return nil
	}
	// systemd-bless-boot knows systemd-boot's counter only. Under another
	// loader (GRUB, U-Boot), whose script puts keel.trial= on the command
	// line of a trial boot, keel-health.service runs on such a boot and
	// blesses it with keelctl bless.
	sdBoot := p.Boot.Loader == "" || p.Boot.Loader == profiles.DefaultLoader
	bless := findFile(w.t, "/usr/lib/systemd/systemd-bless-boot", "/lib/systemd/systemd-bless-boot")
	if bless == "" && sdBoot {
		return p.Errorf("update.health.require", "judging a trial boot under systemd needs systemd-bless-boot: add the systemd-boot package")
	}
	if findFile(w.t, KeelctlPath) == "" {
		return fmt.Errorf("sysconf: %s is not in the tree", KeelctlPath)
	}
	var units []string
	for _, r := range req {
		if u, _ := requiredUnit(p, r); !slices.Contains(units, u) {
			units = append(units, u)
		}
	}
	grace := time.Duration(p.Update.Health.Grace)
	// keelctl health ends about one poll after the grace period. The
	// start timeout is keel-init's deadline too (rootfs/services
	// StartTimeout, 90s, beyond the grace): a boot not healthy by then is
	// bad under either init, and a healthy boot whose grace is longer than
	// systemd's default 90s is not killed.
	timeout := (grace + 90*time.Second + time.Second - 1) / time.Second
	list := strings.Join(units, " ")
	cond, blessLine, install := "", "", "RequiredBy=boot-complete.target"
	if !sdBoot {
		cond = "ConditionKernelCommandLine=keel.trial\n"
		blessLine = "ExecStart=" + KeelctlPath + " bless\n"
		install = "WantedBy=multi-user.target"
	}
	h := fmt.Sprintf(`# Written by keel from the profile's update.health.
[Unit]
Description=Health of this trial boot (keel: %s up for %s)
%sWants=%s
After=%s
Before=boot-complete.target
OnFailure=%s

[Service]
Type=oneshot
RemainAfterExit=yes
TimeoutStartSec=%d
ExecStart=%s
%s
[Install]
%s
`, list, grace, cond, list, list, BootFailedUnit, timeout,
		execLine(append([]string{KeelctlPath, "health", "--grace", grace.String()}, units...)), blessLine, install)
	// The actions are unit settings: in [Service] systemd 252 ignores
	// SuccessAction=, and the machine would not reboot.
	// It does not run systemd-bless-boot bad: that would end the trial at
	// its first failure. keelctl status only puts the entries the loader
	// will see into the journal.
	f := `# Written by keel: a trial boot that failed its health check.
[Unit]
Description=Reboot this failed trial boot (the boot loader's try counter decides)
DefaultDependencies=no
SuccessAction=reboot
FailureAction=reboot

[Service]
Type=oneshot
ExecStart=` + KeelctlPath + ` status
`
	if err := w.file("/etc/systemd/system/"+HealthUnit, 0o644, h); err != nil {
		return err
	}
	if err := w.file("/etc/systemd/system/"+BootFailedUnit, 0o644, f); err != nil {
		return err
	}
	return enable(w.t, HealthUnit)
}
