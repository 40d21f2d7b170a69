package systemd

import (
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"keel/rootfs"
)

const epoch = 1700000000

// fixtureEntry is one entry of a test root, written both into a tree and,
// for the systemctl comparison, into a directory on disk.
type fixtureEntry struct {
	path   string
	dir    bool
	target string // symlink when set
	body   string
}

// keelUnit stands for a unit keel generates into /etc/systemd/system.
const keelUnit = `[Unit]
Description=keel test service

[Service]
ExecStart=/usr/bin/true

[Install]
WantedBy=multi-user.target
RequiredBy=keel-app.target
Alias=keel-alias.service
`

// templated exercises specifiers: %i takes the default instance.
const templatedUnit = `[Service]
ExecStart=/usr/bin/true
[Install]
WantedBy=keel-%i.target multi-user.target
Alias=keel-y@.service
DefaultInstance=bar
`

// fixture is a merged-/usr root as Debian 12 packages leave it: /lib and
// /bin links into /usr, the units of testdata/units (copied from Debian 12
// packages) in /usr/lib/systemd/system, an alias link and a masked unit
// as systemd ships them, and one unit in /etc as keel writes its own.
func fixture(t *testing.T) []fixtureEntry {
	t.Helper()
	es := []fixtureEntry{
		{path: "/etc", dir: true},
		{path: "/etc/systemd", dir: true},
		{path: "/etc/systemd/system", dir: true},
		{path: "/usr", dir: true},
		{path: "/usr/bin", dir: true},
		{path: "/usr/lib", dir: true},
		{path: "/usr/lib/systemd", dir: true},
		{path: "/usr/lib/systemd/system", dir: true},
		{path: "/usr/lib/systemd/system-preset", dir: true},
		{path: "/lib", target: "usr/lib"},
		{path: "/bin", target: "usr/bin"},
		{path: "/usr/lib/systemd/system/autovt@.service", target: "getty@.service"},
		{path: "/usr/lib/systemd/system/cryptdisks.service", target: "/dev/null"},
		{path: "/usr/lib/systemd/system/keel-x@.service", body: templatedUnit},
		{path: "/etc/systemd/system/keel-app.service", body: keelUnit},
	}
	files, err := filepath.Glob("testdata/units/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no unit fixtures: %v", err)
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, fixtureEntry{path: "/usr/lib/systemd/system/" + filepath.Base(f), body: string(b)})
	}
	b, err := os.ReadFile("testdata/90-systemd.preset")
	if err != nil {
		t.Fatal(err)
	}
	es = append(es, fixtureEntry{path: "/usr/lib/systemd/system-preset/90-systemd.preset", body: string(b)})
	return es
}

func buildTree(t *testing.T, es []fixtureEntry) *rootfs.Tree {
	t.Helper()
	tr := rootfs.New()
	for _, e := range es {
		var ent *rootfs.Entry
		switch {
		case e.dir:
			ent = &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755}
		case e.target != "":
			ent = &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: e.target}
		default:
			ent = rootfs.NewFile(0o644, []byte(e.body))
		}
		if err := tr.Add(e.path, ent); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

func buildDir(t *testing.T, es []fixtureEntry) string {
	t.Helper()
	root := t.TempDir()
	for _, e := range es {
		p := filepath.Join(root, e.path)
		var err error
		switch {
		case e.dir:
			err = os.Mkdir(p, 0o755)
		case e.target != "":
			err = os.Symlink(e.target, p)
		default:
			err = os.WriteFile(p, []byte(e.body), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// treeLinks lists the symlinks under /etc/systemd/system of a tree.
func treeLinks(t *testing.T, tr *rootfs.Tree) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := tr.Walk(func(p string, e *rootfs.Entry) error {
		if e.Type == rootfs.TypeSymlink && strings.HasPrefix(p, ConfigDir+"/") {
			out[p] = e.Target
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func dirLinks(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	base := filepath.Join(root, ConfigDir)
	err := filepath.Walk(base, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out["/"+strings.TrimPrefix(p, root+"/")] = target
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

const (
	libUnits = "/lib/systemd/system/"
	wants    = "/etc/systemd/system/"
)

// enableCases are the links `systemctl --root=DIR enable` (or, with
// preset set, `systemctl --root=DIR preset --preset-mode=enable-only`)
// of systemd 252 writes for the fixture, recorded from Debian 12's
// systemctl. TestEnableMatchesSystemctl checks them again when systemctl
// is installed.
var enableCases = []struct {
	name   string
	units  []string
	preset bool
	want   map[string]string
}{
	{
		name:  "alias and wants",
		units: []string{"ssh.service"},
		want: map[string]string{
			wants + "sshd.service":                        libUnits + "ssh.service",
			wants + "multi-user.target.wants/ssh.service": libUnits + "ssh.service",
		},
	},
	{
		name:  "socket",
		units: []string{"ssh.socket"},
		want:  map[string]string{wants + "sockets.target.wants/ssh.socket": libUnits + "ssh.socket"},
	},
	{
		name:  "template with DefaultInstance",
		units: []string{"getty@.service"},
		want:  map[string]string{wants + "getty.target.wants/getty@tty1.service": libUnits + "getty@.service"},
	},
	{
		name:  "explicit instance",
		units: []string{"getty@ttyS0.service"},
		want:  map[string]string{wants + "getty.target.wants/getty@ttyS0.service": libUnits + "getty@.service"},
	},
	{
		name:  "instance of a template without DefaultInstance",
		units: []string{"serial-getty@ttyS0.service"},
		want:  map[string]string{wants + "getty.target.wants/serial-getty@ttyS0.service": libUnits + "serial-getty@.service"},
	},
	{
		name:  "instance through a template alias",
		units: []string{"autovt@tty2.service"},
		want:  map[string]string{wants + "getty.target.wants/getty@tty2.service": libUnits + "getty@.service"},
	},
	{
		name:  "Also and Alias, missing auxiliary unit ignored",
		units: []string{"systemd-networkd.service"},
		want: map[string]string{
			wants + "dbus-org.freedesktop.network1.service":                            libUnits + "systemd-networkd.service",
			wants + "multi-user.target.wants/systemd-networkd.service":                 libUnits + "systemd-networkd.service",
			wants + "sockets.target.wants/systemd-networkd.socket":                     libUnits + "systemd-networkd.socket",
			wants + "network-online.target.wants/systemd-networkd-wait-online.service": libUnits + "systemd-networkd-wait-online.service",
		},
	},
	{
		name:  "target",
		units: []string{"remote-fs.target"},
		want:  map[string]string{wants + "multi-user.target.wants/remote-fs.target": libUnits + "remote-fs.target"},
	},
	{
		name:  "what systemd's postinst enables",
		units: []string{"getty@tty1.service", "remote-fs.target", "systemd-pstore.service"},
		want: map[string]string{
			wants + "getty.target.wants/getty@tty1.service":       libUnits + "getty@.service",
			wants + "multi-user.target.wants/remote-fs.target":    libUnits + "remote-fs.target",
			wants + "sysinit.target.wants/systemd-pstore.service": libUnits + "systemd-pstore.service",
		},
	},
	{
		name:  "keel's own unit in /etc",
		units: []string{"keel-app.service"},
		want: map[string]string{
			wants + "keel-alias.service":                        wants + "keel-app.service",
			wants + "multi-user.target.wants/keel-app.service":  wants + "keel-app.service",
			wants + "keel-app.target.requires/keel-app.service": wants + "keel-app.service",
		},
	},
	{
		name:  "specifiers take the default instance",
		units: []string{"keel-x@.service"},
		want: map[string]string{
			wants + "keel-y@.service":                            libUnits + "keel-x@.service",
			wants + "keel-bar.target.wants/keel-x@bar.service":   libUnits + "keel-x@.service",
			wants + "multi-user.target.wants/keel-x@bar.service": libUnits + "keel-x@.service",
		},
	},
	{
		name:  "specifiers of an explicit instance",
		units: []string{"keel-x@baz.service"},
		want: map[string]string{
			wants + "keel-y@baz.service":                         libUnits + "keel-x@.service",
			wants + "keel-baz.target.wants/keel-x@baz.service":   libUnits + "keel-x@.service",
			wants + "multi-user.target.wants/keel-x@baz.service": libUnits + "keel-x@.service",
		},
	},
	{
		name:   "presets: enabled, disabled, template, template without instance",
		units:  []string{"systemd-timesyncd.service", "systemd-networkd-wait-online.service", "getty@.service", "serial-getty@.service"},
		preset: true,
		want: map[string]string{
			wants + "dbus-org.freedesktop.timesync1.service":         libUnits + "systemd-timesyncd.service",
			wants + "sysinit.target.wants/systemd-timesyncd.service": libUnits + "systemd-timesyncd.service",
			wants + "getty.target.wants/getty@tty1.service":          libUnits + "getty@.service",
		},
	},
}

func runCase(tr *rootfs.Tree, units []string, preset bool) error {
	for _, u := range units {
		var err error
		if preset {
			_, err = Preset(tr, u, epoch)
		} else {
			_, err = Enable(tr, u, epoch)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func TestEnable(t *testing.T) {
	es := fixture(t)
	for _, tc := range enableCases {
		t.Run(tc.name, func(t *testing.T) {
			tr := buildTree(t, es)
			if err := runCase(tr, tc.units, tc.preset); err != nil {
				t.Fatal(err)
			}
			if got := treeLinks(t, tr); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("links:\n got %v\nwant %v", got, tc.want)
			}
			// Every entry Enable wrote carries the epoch and the modes
			// systemctl's umask gives.
			err := tr.Walk(func(p string, e *rootfs.Entry) error {
				if !strings.HasPrefix(p, ConfigDir+"/") || p == ConfigDir+"/keel-app.service" {
					return nil
				}
				want := uint32(0o755)
				if e.Type == rootfs.TypeSymlink {
					want = 0o777
				}
				if e.Mtime != epoch || e.Mode != want || e.UID != 0 || e.GID != 0 {
					t.Errorf("%s: mtime %d mode %#o owner %d:%d", p, e.Mtime, e.Mode, e.UID, e.GID)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// Again: nothing changes.
			before := treeLinks(t, tr)
			n := tr.Len()
			if err := runCase(tr, tc.units, tc.preset); err != nil {
				t.Fatalf("second run: %v", err)
			}
			if !reflect.DeepEqual(treeLinks(t, tr), before) || tr.Len() != n {
				t.Error("second run changed the tree")
			}
		})
	}
}

// TestEnableMatchesSystemctl runs the real systemctl on the same fixture
// laid out on disk and compares link names and targets.
func TestEnableMatchesSystemctl(t *testing.T) {
	systemctl, err := exec.LookPath("systemctl")
	if err != nil {
		t.Skip("systemctl: not installed")
	}
	es := fixture(t)
	for _, tc := range enableCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := buildDir(t, es)
			args := []string{"--root=" + dir}
			if tc.preset {
				args = append(args, "preset", "--preset-mode=enable-only")
			} else {
				args = append(args, "enable")
			}
			cmd := exec.Command(systemctl, append(args, tc.units...)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
			}
			got := dirLinks(t, dir)
			tr := buildTree(t, es)
			if err := runCase(tr, tc.units, tc.preset); err != nil {
				t.Fatal(err)
			}
			if ours := treeLinks(t, tr); !reflect.DeepEqual(ours, got) {
				t.Errorf("keel and systemctl differ:\nkeel      %v\nsystemctl %v", ours, got)
			}
		})
	}
}

func TestEnableErrors(t *testing.T) {
	es := fixture(t)
	for _, tc := range []struct {
		name  string
		unit  string
		setup func(*rootfs.Tree)
		want  error
		text  string
	}{
		{name: "missing", unit: "nginx.service", want: ErrNotFound},
		{name: "masked", unit: "cryptdisks.service", want: ErrMasked},
		{name: "bad name", unit: "../../etc/shadow", want: ErrInvalidName},
		{name: "bad suffix", unit: "ssh.exe", want: ErrInvalidName},
		{name: "template without instance", unit: "serial-getty@.service", text: "no DefaultInstance"},
		{
			name: "link exists elsewhere",
			unit: "ssh.service",
			setup: func(tr *rootfs.Tree) {
				tr.MkdirAll(wants+"multi-user.target.wants", 0o755)
				tr.Add(wants+"multi-user.target.wants/ssh.service", &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: "/opt/other.service"})
			},
			want: ErrExists,
		},
		{
			name: "file in the way",
			unit: "ssh.service",
			setup: func(tr *rootfs.Tree) {
				tr.Add(wants+"sshd.service", rootfs.NewFile(0o644, []byte("[Unit]\n")))
			},
			want: ErrExists,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := buildTree(t, es)
			if tc.setup != nil {
				tc.setup(tr)
			}
			_, err := Enable(tr, tc.unit, epoch)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			if tc.text != "" && !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not say %q", err, tc.text)
			}
		})
	}
}

func TestEnableAcceptsEquivalentLink(t *testing.T) {
	tr := buildTree(t, fixture(t))
	// A relative link another tool wrote to the same file is fine.
	tr.MkdirAll(wants+"multi-user.target.wants", 0o755)
	tr.Add(wants+"multi-user.target.wants/ssh.service", &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: "../../../../usr/lib/systemd/system/ssh.service"})
	ch, err := Enable(tr, "ssh.service", epoch)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Links) != 1 || ch.Links[0].Path != wants+"sshd.service" {
		t.Errorf("changes %+v", ch.Links)
	}
}

func TestEnableNotes(t *testing.T) {
	tr := buildTree(t, fixture(t))
	ch, err := Enable(tr, "systemd-networkd.service", epoch)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Notes) != 1 || !strings.Contains(ch.Notes[0], "systemd-network-generator.service") {
		t.Errorf("notes %q", ch.Notes)
	}
	ch, err = Enable(tr, "getty.target", epoch)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Links) != 0 || len(ch.Notes) != 1 || !strings.Contains(ch.Notes[0], "no installation config") {
		t.Errorf("static unit: %+v", ch)
	}
}

func TestDisableUndoesEnable(t *testing.T) {
	for _, units := range [][]string{
		{"ssh.service"},
		{"systemd-networkd.service"},
		{"getty@.service"},
		{"keel-app.service"},
	} {
		t.Run(units[0], func(t *testing.T) {
			tr := buildTree(t, fixture(t))
			if err := runCase(tr, units, false); err != nil {
				t.Fatal(err)
			}
			ch, err := Disable(tr, units[0])
			if err != nil {
				t.Fatal(err)
			}
			if got := treeLinks(t, tr); len(got) != 0 {
				t.Errorf("left %v", got)
			}
			if len(ch.Removed) == 0 {
				t.Error("nothing reported removed")
			}
		})
	}
}

func TestMask(t *testing.T) {
	tr := buildTree(t, fixture(t))
	if _, err := Mask(tr, "ssh.socket", epoch); err != nil {
		t.Fatal(err)
	}
	if _, err := Find(tr, "ssh.socket"); !errors.Is(err, ErrMasked) {
		t.Errorf("after Mask, Find: %v", err)
	}
	if _, err := Enable(tr, "ssh.socket", epoch); !errors.Is(err, ErrMasked) {
		t.Errorf("Enable of a masked unit: %v", err)
	}
	if _, err := Mask(tr, "keel-app.service", epoch); !errors.Is(err, ErrExists) {
		t.Errorf("masking over a unit file: %v", err)
	}
}

func TestWriteUnitAndDropIn(t *testing.T) {
	tr := rootfs.New()
	if err := WriteUnit(tr, "keel-hostkeys.service", []byte(keelUnit), epoch); err != nil {
		t.Fatal(err)
	}
	if err := WriteDropIn(tr, "ssh.service", "keel", []byte("[Unit]\nAfter=keel-hostkeys.service\n"), epoch); err != nil {
		t.Fatal(err)
	}
	if err := WriteDropIn(tr, "getty@.service", "10-keel.conf", []byte("[Service]\n"), epoch); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		"/etc", "/etc/systemd", ConfigDir, ConfigDir + "/keel-hostkeys.service",
		ConfigDir + "/ssh.service.d", ConfigDir + "/ssh.service.d/keel.conf",
		ConfigDir + "/getty@.service.d/10-keel.conf",
	} {
		e, ok := tr.Get(p)
		if !ok {
			t.Fatalf("%s missing", p)
		}
		want := uint32(0o755)
		if e.Type == rootfs.TypeFile {
			want = 0o644
		}
		if e.Mode != want || e.Mtime != epoch {
			t.Errorf("%s: mode %#o mtime %d", p, e.Mode, e.Mtime)
		}
	}
	// A unit keel wrote is enabled like any other.
	if _, err := Enable(tr, "keel-hostkeys.service", epoch); err != nil {
		t.Fatal(err)
	}
	if got := treeLinks(t, tr)[wants+"multi-user.target.wants/keel-hostkeys.service"]; got != wants+"keel-hostkeys.service" {
		t.Errorf("link target %q", got)
	}
	for _, bad := range []struct{ unit, name string }{
		{"ssh.service", "../x"}, {"ssh.service", ""}, {"../ssh.service", "x"}, {"ssh", "x"},
	} {
		if err := WriteDropIn(tr, bad.unit, bad.name, nil, epoch); err == nil {
			t.Errorf("WriteDropIn(%q, %q) accepted", bad.unit, bad.name)
		}
	}
	if err := WriteUnit(tr, "a/b.service", nil, epoch); !errors.Is(err, ErrInvalidName) {
		t.Errorf("WriteUnit with a slash: %v", err)
	}
}

func TestFindFollowsTreeLinksOnly(t *testing.T) {
	// /lib is a link inside the tree; an absolute link target must resolve
	// from the tree's root, not the host's.
	tr := rootfs.New()
	tr.MkdirAll("/opt/units", 0o755)
	tr.Add("/opt/units/x.service", rootfs.NewFile(0o644, []byte("[Install]\nWantedBy=multi-user.target\n")))
	tr.MkdirAll("/usr/lib/systemd", 0o755)
	tr.Add("/usr/lib/systemd/system", &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: "/opt/units"})
	tr.Add("/lib", &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: "usr/lib"})
	u, err := Find(tr, "x.service")
	if err != nil {
		t.Fatal(err)
	}
	if u.Path != "/lib/systemd/system/x.service" || len(u.Install.WantedBy) != 1 {
		t.Errorf("found %+v", u)
	}
	if _, err := Find(tr, "ssh.service"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a unit only the host has: %v", err)
	}
}

func TestPresetQuery(t *testing.T) {
	tr := buildTree(t, fixture(t))
	// An admin preset in /etc hides the vendor file of the same name, and
	// files apply in name order.
	tr.MkdirAll("/etc/systemd/system-preset", 0o755)
	tr.Add("/etc/systemd/system-preset/10-keel.preset", rootfs.NewFile(0o644, []byte("# keel\ndisable ssh.socket\nenable serial-getty@.service ttyS0 ttyS1\n")))
	p, err := LoadPresets(tr)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		unit      string
		on        bool
		instances []string
	}{
		{"systemd-networkd.service", true, nil},
		{"systemd-networkd-wait-online.service", false, nil},
		{"systemd-journal-remote.service", false, nil},
		{"ssh.socket", false, nil},
		{"ssh.service", true, nil},
		{"serial-getty@.service", true, []string{"ttyS0", "ttyS1"}},
		{"serial-getty@ttyS1.service", true, nil},
		{"getty@.service", true, nil},
		{"rescue.target", false, nil},
	} {
		on, inst := p.Query(tc.unit)
		if on != tc.on || !reflect.DeepEqual(inst, tc.instances) {
			t.Errorf("%s: %v %v, want %v %v", tc.unit, on, inst, tc.on, tc.instances)
		}
	}
	ch, err := Preset(tr, "serial-getty@.service", epoch)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range ch.Links {
		got = append(got, path.Base(l.Path))
	}
	if !reflect.DeepEqual(got, []string{"serial-getty@ttyS0.service", "serial-getty@ttyS1.service"}) {
		t.Errorf("preset instances: %v", got)
	}
}

func TestParseInstall(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Install
	}{
		{
			name: "lists, quotes and continuation",
			in: "[Unit]\nWantedBy=not-this.target\n[Install]\n# comment\n; comment\n" +
				"WantedBy=a.target \"b.target\"\nWantedBy=c.target \\\n  d.target\nAlias='x.service'\nAlso=y.socket z.service\n" +
				"DefaultInstance=tty1\nUnknownKey=1\n",
			want: Install{
				WantedBy: []string{"a.target", "b.target", "c.target", "d.target"},
				Alias:    []string{"x.service"}, Also: []string{"y.socket", "z.service"},
				DefaultInstance: "tty1",
			},
		},
		{
			name: "empty assignment resets",
			in:   "[Install]\nWantedBy=a.target\nWantedBy=\nWantedBy=b.target\nRequiredBy=c.target\nUpheldBy=d.target\n",
			want: Install{WantedBy: []string{"b.target"}, RequiredBy: []string{"c.target"}, UpheldBy: []string{"d.target"}},
		},
		{name: "no install section", in: "[Service]\nExecStart=/bin/true\n", want: Install{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseInstall(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"[Install\nWantedBy=a\n", "[Install]\nWantedBy=\"a.target\n", "[Install]\nnot an assignment\n"} {
		if _, err := ParseInstall(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"ssh.service": true, "getty@.service": true, "getty@tty1.service": true,
		"system-systemd\\x2dcryptsetup.slice": true, "dev-sda1.device": true,
		"": false, ".service": false, "@.service": false, "ssh": false, "ssh.conf": false,
		"a/b.service": false, "../x.service": false, "a@b@c.service": false, "a b.service": false,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v", name, got)
		}
	}
}

func TestExpand(t *testing.T) {
	n, _ := parseName("foo-bar@baz.service")
	for in, want := range map[string]string{
		"%n": "foo-bar@baz.service", "%N": "foo-bar@baz", "%p": "foo-bar", "%i": "baz", "%j": "bar",
		"x-%i.target": "x-baz.target", "100%%": "100%", "plain": "plain",
	} {
		got, err := expand(in, n)
		if err != nil || got != want {
			t.Errorf("expand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"%H", "%m", "x%"} {
		if _, err := expand(bad, n); err == nil {
			t.Errorf("expand(%q) accepted", bad)
		}
	}
}
