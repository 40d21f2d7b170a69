package sysconf

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"keel/profiles"
	"keel/rootfs"
	"keel/rootfs/systemd"
)

const epoch = 1700000000

// Fixture trees are built in Go from pieces, each a few entries of what a
// Debian 12 package puts in the tree. Unit files are cut down to what
// matters here; their [Install] sections are the packages' own.

// fx is one fixture entry: a file (body), a symlink (target) or a
// directory (dir).
type fx struct {
	path, body, target string
	dir                bool
}

type piece []fx

var (
	// mergedUsr is the skeleton of every tree: merged /usr, as keel's
	// Debian trees are.
	mergedUsr = piece{
		{path: "/etc", dir: true},
		{path: "/usr/bin", dir: true},
		{path: "/usr/sbin", dir: true},
		{path: "/usr/lib", dir: true},
		{path: "/bin", target: "usr/bin"},
		{path: "/sbin", target: "usr/sbin"},
		{path: "/lib", target: "usr/lib"},
	}
	systemdInit = piece{
		{path: "/usr/lib/systemd/systemd", body: "\x7fELF systemd"},
		{path: "/usr/lib/systemd/system/multi-user.target", body: "[Unit]\nDescription=Multi-User System\n"},
	}
	networkd = piece{
		{path: "/usr/lib/systemd/systemd-networkd", body: "\x7fELF"},
		{path: "/usr/lib/systemd/system/systemd-networkd.service", body: `[Unit]
Description=Network Configuration
Wants=systemd-networkd.socket network.target

[Service]
Type=notify
ExecStart=!!/lib/systemd/systemd-networkd

[Install]
WantedBy=multi-user.target
Also=systemd-networkd.socket
Alias=dbus-org.freedesktop.network1.service
`},
		{path: "/usr/lib/systemd/system/systemd-networkd.socket", body: `[Unit]
Description=Network Service Netlink Socket

[Socket]
ListenNetlink=route 1361

[Install]
WantedBy=sockets.target
`},
	}
	resolved = piece{
		{path: "/usr/lib/systemd/system/systemd-resolved.service", body: `[Unit]
Description=Network Name Resolution

[Service]
Type=notify
ExecStart=!!/lib/systemd/systemd-resolved

[Install]
WantedBy=multi-user.target
Alias=dbus-org.freedesktop.resolve1.service
`},
	}
	openssh = piece{
		{path: "/usr/sbin/sshd", body: "\x7fELF sshd"},
		{path: "/usr/lib/systemd/system/ssh.service", body: sshService},
		{path: "/etc/ssh/sshd_config", body: "Include /etc/ssh/sshd_config.d/*.conf\n"},
		// openssh-server's postinst makes these; none may stay.
		{path: "/etc/ssh/ssh_host_rsa_key", body: "PRIVATE"},
		{path: "/etc/ssh/ssh_host_rsa_key.pub", body: "ssh-rsa AAAA"},
		{path: "/etc/ssh/ssh_host_ed25519_key", body: "PRIVATE"},
		{path: "/etc/ssh/ssh_import_id", body: "{}"},
	}
	blessBoot = piece{
		{path: "/usr/lib/systemd/systemd-bless-boot", body: "\x7fELF"},
		{path: "/usr/bin/keelctl", body: "\x7fELF keelctl"},
	}
	berlin = piece{
		{path: "/usr/share/zoneinfo/Europe/Berlin", body: "TZif2"},
		{path: "/usr/share/zoneinfo/UTC", body: "TZif2"},
	}
	// server is everything a systemd server image has.
	server = []piece{mergedUsr, systemdInit, networkd, resolved, openssh, blessBoot, berlin}
)

const sshService = `[Unit]
Description=OpenBSD Secure Shell server
After=network.target auditd.service

[Service]
ExecStart=/usr/sbin/sshd -D $SSHD_OPTS
Type=notify

[Install]
WantedBy=multi-user.target
Alias=sshd.service
`

func build(t *testing.T, pieces ...piece) *rootfs.Tree {
	t.Helper()
	tr := rootfs.New()
	for _, pc := range pieces {
		for _, e := range pc {
			if err := tr.MkdirAll(path.Dir(e.path), 0o755); err != nil {
				t.Fatal(err)
			}
			var err error
			switch {
			case e.dir:
				err = tr.MkdirAll(e.path, 0o755)
			case e.target != "":
				err = tr.Add(e.path, &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: e.target})
			default:
				err = tr.Add(e.path, rootfs.NewFile(0o644, []byte(e.body)))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return tr
}

// head makes a valid profile with no local file: the kernel comes from a
// package, so Parse needs no kernel file on disk. Cases append to it, so
// their lines start at 5.
const head = "name: t\nversion: \"1\"\ndebian: {suite: bookworm}\nkernel: {package: linux-image-amd64}\n"

func parse(t *testing.T, body string) *profiles.Profile {
	t.Helper()
	p, err := profiles.Parse("p.yaml", []byte(head+body))
	if err != nil {
		t.Fatalf("profile:\n%s\n%v", body, err)
	}
	return p
}

// enabler is keel's: rootfs/systemd.Enable with the build's mtime.
func enabler(t *rootfs.Tree, unit string) error {
	_, err := systemd.Enable(t, unit, epoch)
	return err
}

func apply(tr *rootfs.Tree, p *profiles.Profile) error {
	return Apply(tr, p, Options{Epoch: epoch, Enable: enabler})
}

// absent stands for "no entry at this path" in the wanted results.
const absent = "<absent>"

// show says what is at p, in the form the tests want it: a file's content,
// "-> TARGET" for a symlink, "dir" for a directory.
func show(t *testing.T, tr *rootfs.Tree, p string) string {
	t.Helper()
	e, ok := tr.Get(p)
	if !ok {
		return absent
	}
	switch e.Type {
	case rootfs.TypeDir:
		return "dir"
	case rootfs.TypeSymlink:
		return "-> " + e.Target
	case rootfs.TypeFile:
		return string(content(t, e))
	}
	return e.Type.String()
}

func content(t *testing.T, e *rootfs.Entry) []byte {
	t.Helper()
	if e.Content == nil {
		return nil
	}
	r, err := e.Content()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkPaths(t *testing.T, tr *rootfs.Tree, want map[string]string) {
	t.Helper()
	for _, p := range sortedKeys(want) {
		if got := show(t, tr, p); got != want[p] {
			t.Errorf("%s:\n got: %q\nwant: %q", p, got, want[p])
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// checkFieldErr checks that err is the profile error keel shows for field,
// placed at the line where the profile wrote it, with msg in its text.
func checkFieldErr(t *testing.T, err error, field, msg string) {
	t.Helper()
	var pe *profiles.Error
	if !errors.As(err, &pe) {
		t.Fatalf("got %v, want a profile error on %s", err, field)
	}
	if pe.Field != field || !strings.Contains(err.Error(), msg) || pe.File != "p.yaml" || pe.Line == 0 {
		t.Errorf("got %q (field %q at %s), want field %q and %q", err, pe.Field, pe.Pos, field, msg)
	}
}

// TestNoSystemd: an image whose init is keel-init gets the time zone and
// the locale, and nothing that only systemd would read; settings only
// systemd could honour are errors naming the field.
func TestNoSystemd(t *testing.T) {
	for _, c := range []struct {
		name, profile string
		field, msg    string // the error, when one is wanted
		want          map[string]string
	}{
		{name: "time zone and locale", profile: "timezone: Europe/Berlin\nlocale: en_US.UTF-8\nservices: [{name: app, command: [/app]}]\n",
			want: map[string]string{
				"/etc/localtime":      "-> ../usr/share/zoneinfo/Europe/Berlin",
				"/etc/timezone":       "Europe/Berlin\n",
				"/etc/locale.conf":    "LANG=en_US.UTF-8\n",
				"/etc/default/locale": "LANG=en_US.UTF-8\n",
				"/etc/systemd":        absent,
				"/efi":                absent,
				"/etc/mtab":           absent,
			}},
		{name: "no default locale without systemd", profile: "hostname: h\n",
			want: map[string]string{
				"/etc/locale.conf": absent,
				"/etc/localtime":   "-> ../usr/share/zoneinfo/UTC",
				"/etc/timezone":    "UTC\n",
			}},
		// The service's name wins over the unit suffix: keel-init runs
		// it, and the implied health requirement is that service.
		{name: "service named like a unit", profile: "services: [{name: web.socket, command: [/app]}]\n",
			want: map[string]string{"/etc/systemd": absent}},
		{name: "network", profile: "network: [{match: en*, dhcp: true}]\n",
			field: "network", msg: "p.yaml:5:10: network: needs systemd and systemd-networkd in the image"},
		{name: "health requires a unit", profile: "services: [{name: app, command: [/app]}]\nupdate: {health: {require: [app, ssh.service]}}\n",
			field: "update.health.require[1]", msg: "ssh.service is a systemd unit, but the image has no systemd"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := build(t, mergedUsr, berlin, piece{{path: "/usr/bin/busybox", body: "\x7fELF"}})
			// No enabler: without systemd, Apply must not need one.
			err := Apply(tr, parse(t, c.profile), Options{Epoch: epoch})
			if c.field != "" {
				checkFieldErr(t, err, c.field, c.msg)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkPaths(t, tr, c.want)
		})
	}
}

func TestTimezoneLocale(t *testing.T) {
	noZoneinfo := []piece{mergedUsr, systemdInit}
	withZoneinfo := []piece{mergedUsr, systemdInit, berlin}
	for _, c := range []struct {
		name, profile string
		tree          []piece
		field, msg    string
		want          map[string]string
	}{
		{name: "UTC default without zoneinfo writes nothing", tree: noZoneinfo, want: map[string]string{
			"/etc/localtime": absent, "/etc/timezone": absent,
		}},
		{name: "explicit UTC without zoneinfo writes nothing", profile: "timezone: UTC\n", tree: noZoneinfo, want: map[string]string{
			"/etc/localtime": absent, "/etc/timezone": absent,
		}},
		{name: "UTC default with zoneinfo", tree: withZoneinfo, want: map[string]string{
			"/etc/localtime": "-> ../usr/share/zoneinfo/UTC", "/etc/timezone": "UTC\n",
		}},
		{name: "Europe/Berlin", profile: "timezone: Europe/Berlin\n", tree: withZoneinfo, want: map[string]string{
			"/etc/localtime": "-> ../usr/share/zoneinfo/Europe/Berlin", "/etc/timezone": "Europe/Berlin\n",
		}},
		{name: "zone missing", profile: "timezone: America/New_York\n", tree: withZoneinfo,
			field: "timezone", msg: "/usr/share/zoneinfo/America/New_York is not in the image: add the tzdata package"},
		{name: "zone without tzdata", profile: "timezone: Europe/Berlin\n", tree: noZoneinfo,
			field: "timezone", msg: "add the tzdata package"},
		{name: "zone is a directory", profile: "timezone: Europe\n", tree: withZoneinfo,
			field: "timezone", msg: "/usr/share/zoneinfo/Europe is a directory in the image, not a time zone"},
		{name: "default locale under systemd", tree: noZoneinfo, want: map[string]string{
			"/etc/locale.conf": "LANG=C.UTF-8\n", "/etc/default/locale": "LANG=C.UTF-8\n",
		}},
		{name: "explicit locale", profile: "locale: de_DE.UTF-8\n", tree: noZoneinfo, want: map[string]string{
			"/etc/locale.conf": "LANG=de_DE.UTF-8\n", "/etc/default/locale": "LANG=de_DE.UTF-8\n",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := build(t, c.tree...)
			err := apply(tr, parse(t, c.profile))
			if c.field != "" {
				checkFieldErr(t, err, c.field, c.msg)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkPaths(t, tr, c.want)
			if e, ok := tr.Get("/etc/localtime"); ok && e.Mtime != epoch {
				t.Errorf("/etc/localtime mtime %d, want the build's %d", e.Mtime, epoch)
			}
		})
	}
}

// awkward is a service whose every argument needs care in ExecStart=.
const awkward = `users: [{name: app, uid: 1000}]
update: {health: {require: []}}
services:
  - name: awkward
    command: ["/usr/bin/app", "two words", "say \"hi\"", 'back\slash', "$HOME", "${HOME}", "100%", "%n",
      "line1\nline2", "tab\there", "", ";", "it's", "ü", "cr\r", "\x01", "--opt=a,b:c@d"]
    env: {B: "$HOME", A: "x y", C: "%h", D: "q\"b\\", E: ""}
    user: app
    working_dir: "/srv/my app/%i"
    restart: on-failure
    on_exit: poweroff
  - name: plain
    command: [/usr/bin/plain, --port, "8080"]
    restart: never
  - name: home
    command: [run]
    user: app
  - name: tester
    command: [/bin/test.sh]
    restart: never
    on_exit: reboot
`

// awkwardArgv is what systemd must parse awkward's ExecStart= into. The
// command runs with each "$$" as "$": systemd keeps "$$" in the parsed
// command and substitutes variables, "$$" included, when it runs it.
var awkwardArgv = []string{"/usr/bin/app", "two words", `say "hi"`, `back\slash`, "$$HOME", "$${HOME}", "100%", "%n",
	"line1\nline2", "tab\there", "", ";", "it's", "ü", "cr\r", "\x01", "--opt=a,b:c@d"}

var wantServices = map[string]string{
	"/etc/systemd/system/awkward.service": `# Written by keel from the profile's services[0].
[Unit]
Description=awkward (keel service)
SuccessAction=poweroff
FailureAction=poweroff

[Service]
ExecStart=/usr/bin/app "two words" "say \"hi\"" "back\\slash" $$HOME "$${HOME}" 100%% %%n "line1\nline2" "tab\there" "" ";" "it's" "ü" "cr\r" "\x01" --opt=a,b:c@d
User=app
WorkingDirectory=/srv/my app/%%i
Environment="A=x y"
Environment="B=$HOME"
Environment="C=%%h"
Environment="D=q\"b\\"
Environment="E="
Restart=on-failure
RestartSec=1

[Install]
WantedBy=multi-user.target
`,
	"/etc/systemd/system/plain.service": `# Written by keel from the profile's services[1].
[Unit]
Description=plain (keel service)

[Service]
ExecStart=/usr/bin/plain --port 8080
Restart=no

[Install]
WantedBy=multi-user.target
`,
	"/etc/systemd/system/home.service": `# Written by keel from the profile's services[2].
[Unit]
Description=home (keel service)

[Service]
ExecStart=run
User=app
WorkingDirectory=-~
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
`,
	"/etc/systemd/system/tester.service": `# Written by keel from the profile's services[3].
[Unit]
Description=tester (keel service)
SuccessAction=reboot
FailureAction=reboot

[Service]
ExecStart=/bin/test.sh
Restart=no

[Install]
WantedBy=multi-user.target
`,
	"/etc/systemd/system/multi-user.target.wants/awkward.service": "-> /etc/systemd/system/awkward.service",
	"/etc/systemd/system/multi-user.target.wants/plain.service":   "-> /etc/systemd/system/plain.service",
	"/etc/systemd/system/multi-user.target.wants/home.service":    "-> /etc/systemd/system/home.service",
	"/etc/systemd/system/multi-user.target.wants/tester.service":  "-> /etc/systemd/system/tester.service",
}

func TestServices(t *testing.T) {
	tr := build(t, mergedUsr, systemdInit)
	if err := apply(tr, parse(t, awkward)); err != nil {
		t.Fatal(err)
	}
	checkPaths(t, tr, wantServices)
	for _, p := range sortedKeys(wantServices) {
		if e, _ := tr.Get(p); e != nil && e.Type == rootfs.TypeFile && (e.Mode != 0o644 || e.UID != 0 || e.Mtime != epoch) {
			t.Errorf("%s: mode %04o uid %d mtime %d, want 0644 root %d", p, e.Mode, e.UID, e.Mtime, epoch)
		}
	}
}

func TestServiceErrors(t *testing.T) {
	// ssh.service enabled as openssh-server's postinst does, which makes
	// the alias link sshd.service.
	sshEnabled := func(t *testing.T) *rootfs.Tree {
		tr := build(t, mergedUsr, systemdInit, openssh)
		if err := enabler(tr, "ssh.service"); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	for _, c := range []struct {
		name, profile string
		field, msg    string
		edit          func(*profiles.Profile) // for what Parse would refuse
	}{
		{"clash with a package's unit", "services:\n  - {name: app, command: [/app]}\n  - {name: ssh, command: [/app]}\n",
			"services[1].name", "the image already has a unit ssh.service (from a package)", nil},
		{"clash with an alias", "services: [{name: sshd, command: [/app]}]\n",
			"services[0].name", "the image already has a unit sshd.service", nil},
		{"clash with keel's own unit", "services: [{name: keel-health, command: [/app]}]\n",
			"services[0].name", "keel-health.service is a unit keel writes itself", nil},
		{"template", "services: [{name: app@, command: [/app]}]\n",
			"services[0].name", "app@.service would be a systemd template", nil},
		{"flag character", "services: [{name: app, command: [-app]}]\n",
			"services[0].command[0]", `"-app": a program name starting with one of -@:+! cannot be written in a systemd unit`, nil},
		{"working dir with a newline", "services: [{name: app, command: [/app], working_dir: \"/srv\\nExecStartPre=/bin/evil\"}]\n",
			"services[0].working_dir", "holds a control character", nil},
		{"working dir ending in a backslash", "services: [{name: app, command: [/app], working_dir: '/srv\\'}]\n",
			"services[0].working_dir", "ends in a blank or a backslash", nil},
		{"unknown restart", "services: [{name: app, command: [/app]}]\n",
			"services[0].restart", `"sometimes" is not one of always, on-failure, never`,
			func(p *profiles.Profile) { p.Services[0].Restart = "sometimes" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := sshEnabled(t)
			p := parse(t, c.profile+"update: {health: {require: []}}\n")
			if c.edit != nil {
				c.edit(p)
			}
			checkFieldErr(t, apply(tr, p), c.field, c.msg)
		})
	}
}

func TestNetwork(t *testing.T) {
	twoNICs := `network:
  - {match: "en*", dhcp: true}
  - match: eth1
    address: [192.168.1.10/24, "fd00::10/64"]
    gateway: 192.168.1.1
    dns: [192.168.1.1, "fd00::1"]
`
	files := map[string]string{
		"/etc/systemd/network/10-keel.network": `# Written by keel from the profile's network[0].
[Match]
Name=en*

[Network]
DHCP=yes
`,
		"/etc/systemd/network/11-keel.network": `# Written by keel from the profile's network[1].
[Match]
Name=eth1

[Network]
Address=192.168.1.10/24
Address=fd00::10/64
Gateway=192.168.1.1
DNS=192.168.1.1
DNS=fd00::1
`,
		"/etc/systemd/network/12-keel.network": absent,
		// Enabled as systemctl would: the unit, its alias, its Also=.
		"/etc/systemd/system/multi-user.target.wants/systemd-networkd.service": "-> /lib/systemd/system/systemd-networkd.service",
		"/etc/systemd/system/dbus-org.freedesktop.network1.service":            "-> /lib/systemd/system/systemd-networkd.service",
		"/etc/systemd/system/sockets.target.wants/systemd-networkd.socket":     "-> /lib/systemd/system/systemd-networkd.socket",
	}
	withResolved := map[string]string{
		"/etc/systemd/system/multi-user.target.wants/systemd-resolved.service": "-> /lib/systemd/system/systemd-resolved.service",
		"/etc/systemd/system/dbus-org.freedesktop.resolve1.service":            "-> /lib/systemd/system/systemd-resolved.service",
	}
	noResolved := map[string]string{
		"/etc/systemd/system/multi-user.target.wants/systemd-resolved.service": absent,
	}
	noNetwork := map[string]string{
		"/etc/systemd/network": absent,
		"/etc/systemd/system/multi-user.target.wants/systemd-networkd.service": absent,
	}
	for _, c := range []struct {
		name, profile string
		tree          []piece
		field, msg    string
		want          []map[string]string
	}{
		{name: "networkd and resolved", profile: twoNICs, tree: []piece{mergedUsr, systemdInit, networkd, resolved},
			want: []map[string]string{files, withResolved}},
		{name: "networkd alone", profile: twoNICs, tree: []piece{mergedUsr, systemdInit, networkd},
			want: []map[string]string{files, noResolved}},
		{name: "no network, nothing enabled", tree: []piece{mergedUsr, systemdInit, networkd, resolved},
			want: []map[string]string{noNetwork, noResolved}},
		{name: "no networkd", profile: twoNICs, tree: []piece{mergedUsr, systemdInit},
			field: "network", msg: "p.yaml:6:3: network: needs systemd-networkd, which the image does not have"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := build(t, c.tree...)
			err := apply(tr, parse(t, c.profile))
			if c.field != "" {
				checkFieldErr(t, err, c.field, c.msg)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				checkPaths(t, tr, w)
			}
		})
	}
}

const keygenUnit = `# Written by keel.
[Unit]
Description=SSH host keys of this machine, on /var
Before=ssh.service
ConditionPathExists=!/var/lib/keel/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/bin/mkdir -p -m 0755 /var/lib/keel/ssh
ExecStart=/bin/rm -f /var/lib/keel/ssh/ssh_host_ecdsa_key.tmp /var/lib/keel/ssh/ssh_host_ecdsa_key.tmp.pub
ExecStart=/usr/bin/ssh-keygen -q -t ecdsa -N "" -C "" -f /var/lib/keel/ssh/ssh_host_ecdsa_key.tmp
ExecStart=/bin/sync /var/lib/keel/ssh/ssh_host_ecdsa_key.tmp /var/lib/keel/ssh/ssh_host_ecdsa_key.tmp.pub
ExecStart=/bin/mv /var/lib/keel/ssh/ssh_host_ecdsa_key.tmp.pub /var/lib/keel/ssh/ssh_host_ecdsa_key.pub
ExecStart=/bin/mv /var/lib/keel/ssh/ssh_host_ecdsa_key.tmp /var/lib/keel/ssh/ssh_host_ecdsa_key
ExecStart=/bin/rm -f /var/lib/keel/ssh/ssh_host_ed25519_key.tmp /var/lib/keel/ssh/ssh_host_ed25519_key.tmp.pub
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -C "" -f /var/lib/keel/ssh/ssh_host_ed25519_key.tmp
ExecStart=/bin/sync /var/lib/keel/ssh/ssh_host_ed25519_key.tmp /var/lib/keel/ssh/ssh_host_ed25519_key.tmp.pub
ExecStart=/bin/mv /var/lib/keel/ssh/ssh_host_ed25519_key.tmp.pub /var/lib/keel/ssh/ssh_host_ed25519_key.pub
ExecStart=/bin/mv /var/lib/keel/ssh/ssh_host_ed25519_key.tmp /var/lib/keel/ssh/ssh_host_ed25519_key
ExecStart=/bin/sync /var/lib/keel/ssh
`

func TestSSHHostKeys(t *testing.T) {
	with := map[string]string{
		"/etc/ssh/sshd_config.d/keel-host-keys.conf": `# Written by keel: this machine's host keys live on the data partition,
# made at first boot by keel-ssh-keygen.service.
HostKey /var/lib/keel/ssh/ssh_host_ecdsa_key
HostKey /var/lib/keel/ssh/ssh_host_ed25519_key
`,
		"/etc/systemd/system/keel-ssh-keygen.service": keygenUnit,
		"/etc/systemd/system/ssh.service.d/keel-host-keys.conf": `# Written by keel.
[Unit]
Wants=keel-ssh-keygen.service
After=keel-ssh-keygen.service
`,
		"/etc/ssh/ssh_host_rsa_key":         absent,
		"/etc/ssh/ssh_host_rsa_key.pub":     absent,
		"/etc/ssh/ssh_host_ed25519_key":     absent,
		"/etc/ssh/ssh_import_id":            "{}",
		"/etc/ssh/sshd_config":              "Include /etc/ssh/sshd_config.d/*.conf\n",
		"/var/lib/keel":                     absent, // made at first boot, on the data partition
		"/etc/systemd/system/ssh.service.d": "dir",
	}
	without := map[string]string{
		"/etc/ssh/sshd_config.d":                      absent,
		"/etc/systemd/system/keel-ssh-keygen.service": absent,
		"/etc/systemd/system/ssh.service.d":           absent,
	}
	for _, c := range []struct {
		name string
		tree []piece
		want map[string]string
	}{
		{"sshd and ssh.service", []piece{mergedUsr, systemdInit, openssh}, with},
		{"no sshd", []piece{mergedUsr, systemdInit, {{path: "/usr/lib/systemd/system/ssh.service", body: sshService}}}, without},
		{"no ssh.service", []piece{mergedUsr, systemdInit, {{path: "/usr/sbin/sshd", body: "\x7fELF"}}}, without},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := build(t, c.tree...)
			if err := apply(tr, parse(t, "")); err != nil {
				t.Fatal(err)
			}
			checkPaths(t, tr, c.want)
		})
	}
}

func TestESPCleanup(t *testing.T) {
	tr := build(t, mergedUsr, systemdInit, blessBoot)
	if err := apply(tr, parse(t, "")); err != nil {
		t.Fatal(err)
	}
	checkPaths(t, tr, map[string]string{
		"/etc/systemd/system/keel-esp-cleanup.service": `# Written by keel: what an interrupted update left on the ESP.
[Unit]
Description=Clean up the ESP after an interrupted update
DefaultDependencies=no
After=local-fs.target
Before=basic.target systemd-bless-boot.service keel-health.service

[Service]
Type=oneshot
ExecStart=/usr/bin/keelctl cleanup

[Install]
WantedBy=basic.target
`,
		"/etc/systemd/system/basic.target.wants/keel-esp-cleanup.service": "-> /etc/systemd/system/keel-esp-cleanup.service",
	})
}

func TestReadOnlyRootAndESP(t *testing.T) {
	tmpMount := `# Written by keel: the root is read-only, so /tmp is a tmpfs.
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
Options=mode=1777,strictatime,nosuid,nodev,size=50%,nr_inodes=1m

[Install]
WantedBy=local-fs.target
`
	efiMount := `# Written by keel: the ESP, for systemd-bless-boot and bootctl.
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
	common := map[string]string{
		"/etc/systemd/system/tmp.mount":                       tmpMount,
		"/etc/systemd/system/local-fs.target.wants/tmp.mount": "-> /etc/systemd/system/tmp.mount",
		"/etc/systemd/system/efi.mount":                       efiMount,
		"/etc/systemd/system/local-fs.target.wants/efi.mount": "-> /etc/systemd/system/efi.mount",
		"/efi": "dir",
	}
	for _, c := range []struct {
		name string
		tree []piece
		mtab string
	}{
		{"mtab made", []piece{mergedUsr, systemdInit}, "-> ../proc/self/mounts"},
		{"existing mtab kept", []piece{mergedUsr, systemdInit, {{path: "/etc/mtab", target: "/proc/mounts"}}}, "-> /proc/mounts"},
		{"existing mtab file kept", []piece{mergedUsr, systemdInit, {{path: "/etc/mtab", body: "rootfs / rootfs rw 0 0\n"}}}, "rootfs / rootfs rw 0 0\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := build(t, c.tree...)
			if err := apply(tr, parse(t, "")); err != nil {
				t.Fatal(err)
			}
			checkPaths(t, tr, common)
			if _, ok := tr.Get("/etc/systemd/system/" + ESPCleanupUnit); ok {
				t.Errorf("%s written without keelctl in the tree", ESPCleanupUnit)
			}
			checkPaths(t, tr, map[string]string{"/etc/mtab": c.mtab})
			if e, _ := tr.Get("/efi"); e.Mode != 0o755 || e.Mtime != epoch {
				t.Errorf("/efi: mode %04o mtime %d, want 0755 %d", e.Mode, e.Mtime, epoch)
			}
		})
	}
}

const healthUnit = `# Written by keel from the profile's update.health.
[Unit]
Description=Health of this trial boot (keel: app.service ssh.service up for 10s)
Wants=app.service ssh.service
After=app.service ssh.service
Before=boot-complete.target
OnFailure=keel-boot-failed.service

[Service]
Type=oneshot
RemainAfterExit=yes
TimeoutStartSec=100
ExecStart=/usr/bin/keelctl health --grace 10s app.service ssh.service

[Install]
RequiredBy=boot-complete.target
`

const bootFailedUnit = `# Written by keel: a trial boot that failed its health check.
[Unit]
Description=Reboot this failed trial boot (the boot loader's try counter decides)
DefaultDependencies=no
SuccessAction=reboot
FailureAction=reboot

[Service]
Type=oneshot
ExecStart=/usr/bin/keelctl status
`

func TestHealth(t *testing.T) {
	app := "services: [{name: app, command: [/app]}]\n"
	noHealth := map[string]string{
		"/etc/systemd/system/keel-health.service":           absent,
		"/etc/systemd/system/keel-boot-failed.service":      absent,
		"/etc/systemd/system/boot-complete.target.requires": absent,
	}
	// A tree without merged /usr, as older images have, with
	// systemd-bless-boot where Debian 12's package puts it.
	unmerged := piece{
		{path: "/lib/systemd/systemd", body: "\x7fELF"},
		{path: "/lib/systemd/systemd-bless-boot", body: "\x7fELF"},
		{path: "/usr/bin/keelctl", body: "\x7fELF"},
		{path: "/etc", dir: true},
	}
	for _, c := range []struct {
		name, profile string
		tree          []piece
		field, msg    string
		want          map[string]string
	}{
		{name: "no services, no require", tree: server, want: noHealth},
		{name: "require emptied", profile: app + "update: {health: {require: []}}\n", tree: server, want: noHealth},
		{name: "app and ssh.service", profile: app + "update: {health: {require: [app, ssh.service, app]}}\n", tree: server,
			want: map[string]string{
				"/etc/systemd/system/keel-health.service":                               healthUnit,
				"/etc/systemd/system/keel-boot-failed.service":                          bootFailedUnit,
				"/etc/systemd/system/boot-complete.target.requires/keel-health.service": "-> /etc/systemd/system/keel-health.service",
			}},
		// The default require is every service; a long grace gets a start
		// timeout that outlasts it; a unit name is passed on unescaped.
		{name: "default require, long grace", tree: server,
			profile: "services: [{name: web.socket, command: [/app]}]\nupdate: {health: {grace: 5m, require: [web.socket, 'dev-disk-by\\x2dlabel-data.device']}}\n",
			want: map[string]string{"/etc/systemd/system/keel-health.service": `# Written by keel from the profile's update.health.
[Unit]
Description=Health of this trial boot (keel: web.socket.service dev-disk-by\x2dlabel-data.device up for 5m0s)
Wants=web.socket.service dev-disk-by\x2dlabel-data.device
After=web.socket.service dev-disk-by\x2dlabel-data.device
Before=boot-complete.target
OnFailure=keel-boot-failed.service

[Service]
Type=oneshot
RemainAfterExit=yes
TimeoutStartSec=390
ExecStart=/usr/bin/keelctl health --grace 5m0s web.socket.service "dev-disk-by\\x2dlabel-data.device"

[Install]
RequiredBy=boot-complete.target
`}},
		{name: "bless-boot in /lib", profile: app, tree: []piece{unmerged},
			want: map[string]string{
				"/etc/systemd/system/keel-boot-failed.service": bootFailedUnit,
			}},
		{name: "no systemd-bless-boot", profile: app, tree: []piece{mergedUsr, systemdInit, {{path: "/usr/bin/keelctl", body: "x"}}},
			field: "update.health.require", msg: "needs systemd-bless-boot: add the systemd-boot package"},
		// GRUB: no systemd-bless-boot needed; the unit runs on a trial boot
		// (keel.trial= on the command line) and blesses it itself.
		{name: "grub", profile: app + "boot: {loader: grub}\nupdate: {health: {grace: 5s}}\n", tree: []piece{mergedUsr, systemdInit, {{path: "/usr/bin/keelctl", body: "x"}}},
			want: map[string]string{
				"/etc/systemd/system/keel-health.service": `# Written by keel from the profile's update.health.
[Unit]
Description=Health of this trial boot (keel: app.service up for 5s)
ConditionKernelCommandLine=keel.trial
Wants=app.service
After=app.service
Before=boot-complete.target
OnFailure=keel-boot-failed.service

[Service]
Type=oneshot
RemainAfterExit=yes
TimeoutStartSec=95
ExecStart=/usr/bin/keelctl health --grace 5s app.service
ExecStart=/usr/bin/keelctl bless

[Install]
WantedBy=multi-user.target
`,
				"/etc/systemd/system/multi-user.target.wants/keel-health.service": "-> /etc/systemd/system/keel-health.service",
				"/etc/systemd/system/boot-complete.target.requires":               absent,
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := build(t, c.tree...)
			err := apply(tr, parse(t, c.profile))
			if c.field != "" {
				checkFieldErr(t, err, c.field, c.msg)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkPaths(t, tr, c.want)
		})
	}
}

// serverProfile exercises every step at once.
const serverProfile = awkward + `timezone: Europe/Berlin
network: [{match: "en*", dhcp: true}]
`

// dump lists every entry of a tree with all that a filesystem writer
// would put on disk.
func dump(t *testing.T, tr *rootfs.Tree) string {
	t.Helper()
	var b strings.Builder
	err := tr.Walk(func(p string, e *rootfs.Entry) error {
		fmt.Fprintf(&b, "%s %s %04o %d:%d %d %q %x\n", p, e.Type, e.Mode, e.UID, e.GID, e.Mtime, e.Target, content(t, e))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestDeterministic(t *testing.T) {
	var dumps []string
	for range 2 {
		tr := build(t, server...)
		// Health for the awkward service and ssh too.
		p := parse(t, strings.Replace(serverProfile, "require: []", "require: [awkward, ssh.service]", 1))
		if err := apply(tr, p); err != nil {
			t.Fatal(err)
		}
		dumps = append(dumps, dump(t, tr))
	}
	if dumps[0] != dumps[1] {
		t.Errorf("two runs differ:\n%s\n---\n%s", dumps[0], dumps[1])
	}
	for _, want := range []string{"/etc/systemd/system/keel-health.service", "/etc/systemd/network/10-keel.network", "/etc/localtime"} {
		if !strings.Contains(dumps[0], want+" ") {
			t.Errorf("%s not written", want)
		}
	}
}

func TestQuoteArg(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"/usr/bin/app", "/usr/bin/app"},
		{"--a=b,c:d@e+f", "--a=b,c:d@e+f"},
		{"", `""`},
		{"a b", `"a b"`},
		{`"`, `"\""`},
		{`\`, `"\\"`},
		{"$X", "$$X"},
		{"${X}", `"$${X}"`},
		{"50%", "50%%"},
		{"\n\t\r\x1b\x7f", `"\n\t\r\x1b\x7f"`},
		{"'", `"'"`},
		{";", `";"`},
		{"é", `"é"`},
	} {
		if got := quoteArg(c.in); got != c.want {
			t.Errorf("quoteArg(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

// loadedUnit is a unit as systemd parsed it: its settings as systemd
// prints them ("Restart", "Success Action", "Wants"), in order, and the
// argv of each of its commands by setting ("ExecStart").
type loadedUnit struct {
	props map[string][]string
	exec  map[string][][]string
}

func (u *loadedUnit) prop(key string) string {
	if v := u.props[key]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

// deps lists the units of a dependency setting, without systemd's
// "(origin-file)" notes.
func (u *loadedUnit) deps(key string) []string {
	var out []string
	for _, v := range u.props[key] {
		name, _, _ := strings.Cut(v, " (")
		out = append(out, name)
	}
	return out
}

// loadWithSystemd has the real systemd parse the units of tr: those keel
// wrote in /etc/systemd/system (with drop-ins) and the packages' in
// /usr/lib/systemd/system. systemd in test mode (--test, which refuses to
// run as root) loads them from $SYSTEMD_UNIT_PATH, builds the boot
// transaction of a target that wants them all, and prints every unit it
// loaded, commands as argv; a warning about any of our files fails the
// test.
func loadWithSystemd(t *testing.T, tr *rootfs.Tree) map[string]*loadedUnit {
	t.Helper()
	bin := ""
	for _, p := range []string{"/usr/lib/systemd/systemd", "/lib/systemd/systemd"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Skip("systemd: not installed (no /usr/lib/systemd/systemd)")
	}
	argv := []string{bin, "--test", "--system", "--no-pager", "--unit=keel-check.target"}
	if os.Geteuid() == 0 {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skip("setpriv: not installed (needed to run systemd --test, which refuses root)")
		}
		argv = append([]string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"}, argv...)
	}
	dir, err := os.MkdirTemp("", "sysconf-systemd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // readable by nobody
		t.Fatal(err)
	}
	var names []string
	write := func(rel, body string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, src := range []struct{ tree, host string }{{"/etc/systemd/system", "etc"}, {"/usr/lib/systemd/system", "lib"}} {
		err := tr.Walk(func(p string, e *rootfs.Entry) error {
			rel, ok := strings.CutPrefix(p, src.tree+"/")
			if !ok || e.Type != rootfs.TypeFile {
				return nil // enablement links mean nothing to the parser
			}
			if !strings.Contains(rel, "/") {
				names = append(names, rel)
			}
			write(filepath.Join(src.host, rel), string(content(t, e)))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Default dependencies require these; they are not what is tested.
	write("stub/sysinit.target", "[Unit]\nDescription=stub\n")
	write("stub/basic.target", "[Unit]\nDescription=stub\n")
	write("stub/keel-check.target", "[Unit]\nDescription=every unit under test\nWants="+strings.Join(names, " ")+"\n")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + dir, "LANG=C",
		"SYSTEMD_UNIT_PATH=" + filepath.Join(dir, "etc") + ":" + filepath.Join(dir, "lib") + ":" + filepath.Join(dir, "stub")}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, stderr.String())
	}
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, dir) || strings.Contains(line, "bad unit file setting") {
			t.Errorf("systemd: %s", line)
		}
	}
	units, err := parseDump(stdout.String())
	if err != nil {
		t.Fatal(err)
	}
	return units
}

// parseDump reads the unit dump of systemd --test: "\t-> Unit NAME:"
// starts a unit, "\t\tKey: value" is a setting, "\t\t-> ExecStart:" starts
// a list of "\t\t\tCommand Line: ..." lines. A line without a tab goes on
// the value before it (a newline in an Environment= value).
func parseDump(out string) (map[string]*loadedUnit, error) {
	units := map[string]*loadedUnit{}
	var u *loadedUnit
	var execKey string
	var last *string
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "\t-> Unit "):
			u = &loadedUnit{props: map[string][]string{}, exec: map[string][][]string{}}
			units[strings.TrimSuffix(strings.TrimPrefix(line, "\t-> Unit "), ":")] = u
			last = nil
		case u == nil:
		case strings.HasPrefix(line, "\t\t\tCommand Line: ") && execKey != "":
			argv, err := splitCommandLine(strings.TrimPrefix(line, "\t\t\tCommand Line: "))
			if err != nil {
				return nil, err
			}
			u.exec[execKey] = append(u.exec[execKey], argv)
		case strings.HasPrefix(line, "\t\t-> "):
			execKey = strings.TrimSuffix(strings.TrimPrefix(line, "\t\t-> "), ":")
			last = nil
		case strings.HasPrefix(line, "\t\t") && !strings.HasPrefix(line, "\t\t\t"):
			k, v, _ := strings.Cut(strings.TrimPrefix(line, "\t\t"), ": ")
			u.props[k] = append(u.props[k], v)
			last = &u.props[k][len(u.props[k])-1]
			execKey = ""
		case !strings.HasPrefix(line, "\t") && last != nil:
			*last += "\n" + line
		}
	}
	return units, nil
}

// splitCommandLine undoes systemd's quote_command_line: words separated
// by spaces, a word with special characters in double quotes, inside
// which \ escapes one of \ " ` $ and C escapes stand for control
// characters (octal for those without a letter).
func splitCommandLine(s string) ([]string, error) {
	var out []string
	for s != "" {
		if s[0] == ' ' {
			s = s[1:]
			continue
		}
		if s[0] != '"' {
			w, rest, _ := strings.Cut(s, " ")
			out = append(out, w)
			s = rest
			continue
		}
		var w strings.Builder
		i := 1
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] != '\\' {
				w.WriteByte(s[i])
				continue
			}
			i++
			if i >= len(s) {
				return nil, fmt.Errorf("%q: trailing backslash", s)
			}
			switch c := s[i]; c {
			case '\\', '"', '`', '$', '\'':
				w.WriteByte(c)
			case 'a', 'b', 'f', 'n', 'r', 't', 'v':
				w.WriteByte(map[byte]byte{'a': '\a', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v'}[c])
			case '0', '1', '2', '3':
				if i+2 >= len(s) {
					return nil, fmt.Errorf("%q: short octal escape", s)
				}
				n, err := strconv.ParseUint(s[i:i+3], 8, 8)
				if err != nil {
					return nil, fmt.Errorf("%q: %w", s, err)
				}
				w.WriteByte(byte(n))
				i += 2
			default:
				return nil, fmt.Errorf("%q: unknown escape \\%c", s, c)
			}
		}
		if i >= len(s) {
			return nil, fmt.Errorf("%q: unbalanced quote", s)
		}
		out = append(out, w.String())
		s = s[i+1:]
	}
	return out, nil
}

func TestSplitCommandLine(t *testing.T) {
	got, err := splitCommandLine(`/bin/echo "" "a b" "\$\"\\\` + "`" + `" "\001\n" ü x`)
	want := []string{"/bin/echo", "", "a b", "$\"\\`", "\x01\n", "ü", "x"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{`"open`, `"\q"`, `"\`} {
		if _, err := splitCommandLine(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// TestSystemdParses checks what keel writes with systemd's own parser:
// every unit loads without a warning, and each setting means what keel
// meant, above all each argument of awkward's ExecStart=.
func TestSystemdParses(t *testing.T) {
	tr := build(t, server...)
	p := parse(t, strings.Replace(serverProfile, "require: []", "require: [awkward, ssh.service]", 1))
	if err := apply(tr, p); err != nil {
		t.Fatal(err)
	}
	units := loadWithSystemd(t, tr)
	for _, name := range []string{"awkward.service", "plain.service", "home.service", "tester.service", "tmp.mount", "efi.mount",
		SSHKeygenUnit, HealthUnit, BootFailedUnit, "ssh.service", "systemd-networkd.service"} {
		if u := units[name]; u == nil || u.prop("Unit Load State") != "loaded" {
			t.Fatalf("%s not loaded by systemd", name)
		}
	}
	aw := units["awkward.service"]
	if got := aw.exec["ExecStart"]; len(got) != 1 || !slices.Equal(got[0], awkwardArgv) {
		t.Errorf("awkward ExecStart parsed as\n%q\nwant\n%q", got, awkwardArgv)
	}
	// What runs, once systemd has substituted "$$", is the profile's argv.
	ran := make([]string, len(awkwardArgv))
	for i, a := range awkwardArgv {
		ran[i] = strings.ReplaceAll(a, "$$", "$")
	}
	if !slices.Equal(ran, p.Services[0].Command) {
		t.Errorf("runs %q, profile says %q", ran, p.Services[0].Command)
	}
	for _, c := range []struct {
		unit, key string
		want      []string
	}{
		{"awkward.service", "Environment", []string{"A=x y", "B=$HOME", "C=%h", `D=q"b\`, "E="}},
		{"awkward.service", "User", []string{"app"}},
		{"awkward.service", "WorkingDirectory", []string{"/srv/my app/%i"}},
		{"awkward.service", "Restart", []string{"on-failure"}},
		{"awkward.service", "RestartSec", []string{"1s"}},
		{"awkward.service", "Success Action", []string{"poweroff"}},
		{"awkward.service", "Failure Action", []string{"poweroff"}},
		{"plain.service", "Restart", []string{"no"}},
		{"plain.service", "Success Action", nil},
		{"home.service", "Restart", []string{"always"}},
		{"tester.service", "Success Action", []string{"reboot"}},
		{HealthUnit, "Type", []string{"oneshot"}},
		{HealthUnit, "RemainAfterExit", []string{"yes"}},
		{HealthUnit, "TimeoutStartSec", []string{"1min 40s"}},
		{BootFailedUnit, "Success Action", []string{"reboot"}},
		{BootFailedUnit, "Failure Action", []string{"reboot"}},
		{"tmp.mount", "Where", []string{"/tmp"}},
		{"tmp.mount", "Options", []string{"mode=1777,strictatime,nosuid,nodev,size=50%,nr_inodes=1m"}},
		{"efi.mount", "Where", []string{"/efi"}},
		{"efi.mount", "What", []string{"/dev/disk/by-partlabel/esp"}},
	} {
		if got := units[c.unit].props[c.key]; !slices.Equal(got, c.want) {
			t.Errorf("%s %s: systemd has %q, want %q", c.unit, c.key, got, c.want)
		}
	}
	for _, c := range []struct {
		unit, key string
		want      []string // among the unit's dependencies of that kind
	}{
		{HealthUnit, "Wants", []string{"awkward.service", "ssh.service"}},
		{HealthUnit, "After", []string{"awkward.service", "ssh.service"}},
		{HealthUnit, "Before", []string{"boot-complete.target"}},
		{HealthUnit, "OnFailure", []string{BootFailedUnit}},
		{"ssh.service", "Wants", []string{SSHKeygenUnit}},
		{"ssh.service", "After", []string{SSHKeygenUnit}},
	} {
		got := units[c.unit].deps(c.key)
		for _, w := range c.want {
			if !slices.Contains(got, w) {
				t.Errorf("%s %s: systemd has %q, want %s among them", c.unit, c.key, got, w)
			}
		}
	}
	if got := units[HealthUnit].exec["ExecStart"]; len(got) != 1 || !slices.Equal(got[0], []string{KeelctlPath, "health", "--grace", "10s", "awkward.service", "ssh.service"}) {
		t.Errorf("%s ExecStart: %q", HealthUnit, got)
	}
	if got := units[BootFailedUnit].exec["ExecStart"]; len(got) != 1 || !slices.Equal(got[0], []string{KeelctlPath, "status"}) {
		t.Errorf("%s ExecStart: %q", BootFailedUnit, got)
	}
	keygen := units[SSHKeygenUnit].exec["ExecStart"]
	if len(keygen) != 12 || !slices.Equal(keygen[2], []string{"/usr/bin/ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-C", "", "-f", "/var/lib/keel/ssh/ssh_host_ecdsa_key.tmp"}) {
		t.Errorf("%s ExecStart: %q", SSHKeygenUnit, keygen)
	}
}
