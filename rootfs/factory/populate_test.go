package factory

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fent is one entry of a test tree, made in order by build.
type fent struct {
	path     string
	kind     string // dir, file, symlink, fifo, link (a hard link to data)
	mode     uint32
	uid, gid int // applied when the test runs as root
	data     string
}

const baseMtime = 1_600_000_000

// build makes ents under root, then gives entry i the mtime baseMtime+i,
// children before parents so that making an entry does not change its
// directory's mtime afterwards. Owners other than the test user are
// applied only as root.
func build(t *testing.T, root string, ents []fent) {
	t.Helper()
	root0 := os.Geteuid() == 0
	for _, e := range ents {
		p := filepath.Join(root, e.path)
		var err error
		switch e.kind {
		case "dir":
			err = os.Mkdir(p, 0o700)
		case "file":
			err = os.WriteFile(p, []byte(e.data), 0o600)
		case "symlink":
			err = os.Symlink(e.data, p)
		case "fifo":
			err = unix.Mkfifo(p, 0o600)
		case "link":
			err = os.Link(filepath.Join(root, e.data), p)
		default:
			t.Fatalf("bad kind %q", e.kind)
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.kind == "link" {
			continue
		}
		if root0 && (e.uid != 0 || e.gid != 0) {
			if err := os.Lchown(p, e.uid, e.gid); err != nil {
				t.Fatal(err)
			}
		}
		if e.kind != "symlink" {
			if err := unix.Fchmodat(unix.AT_FDCWD, p, e.mode, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := len(ents) - 1; i >= 0; i-- {
		ts := unix.NsecToTimespec(int64(baseMtime+i) * int64(time.Second))
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, ents[i].path), []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
}

// info is what a comparison looks at for one entry.
type info struct {
	Kind     uint32
	Mode     uint32
	UID, GID uint32
	Mtime    int64
	Data     string // content or symlink target
	Xattrs   string
	LinkedTo string // for a file with several names: the first, in walk order
}

// snapshot describes every entry below root (root itself excluded).
func snapshot(t *testing.T, root string) map[string]info {
	t.Helper()
	out := map[string]info{}
	firstName := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		in := info{Kind: st.Mode & unix.S_IFMT, Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, Mtime: st.Mtim.Nano()}
		switch in.Kind {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			in.Data = string(b)
			if st.Nlink > 1 {
				if f, ok := firstName[st.Ino]; ok {
					in.LinkedTo = f
				} else {
					firstName[st.Ino] = rel
				}
			}
		case unix.S_IFLNK:
			in.Data, _ = os.Readlink(p)
			in.Mode = 0 // not meaningful on Linux
		}
		if in.Kind == unix.S_IFREG || in.Kind == unix.S_IFDIR {
			in.Xattrs = xattrs(t, p)
		}
		out[rel] = in
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// xattrs lists p's user.* xattrs, the namespace a test can set as any
// user.
func xattrs(t *testing.T, p string) string {
	t.Helper()
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz == 0 {
		return ""
	}
	b := make([]byte, sz)
	sz, _ = unix.Llistxattr(p, b)
	var out []string
	for _, n := range strings.Split(string(b[:sz]), "\x00") {
		if !strings.HasPrefix(n, "user.") {
			continue
		}
		v := make([]byte, 256)
		m, _ := unix.Lgetxattr(p, n, v)
		out = append(out, n+"="+string(v[:max(m, 0)]))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func diff(t *testing.T, want, got map[string]info) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		w, wok := want[k]
		g, gok := got[k]
		switch {
		case !gok:
			t.Errorf("%s: missing", k)
		case !wok:
			t.Errorf("%s: unexpected %+v", k, g)
		case w != g:
			t.Errorf("%s:\n got %+v\nwant %+v", k, g, w)
		}
	}
}

// logs collects Populate's log lines.
type logs struct{ lines []string }

func (l *logs) logf(format string, args ...any) {
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logs) has(t *testing.T, subs ...string) {
	t.Helper()
	for _, line := range l.lines {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			return
		}
	}
	t.Errorf("no log line with %q in:\n%s", subs, strings.Join(l.lines, "\n"))
}

// factoryTree is a /var as a Debian image has it, in small: every type
// Populate makes, modes with the special bits, owners, hard links across
// directories, symlinks that go out of /var.
var factoryTree = []fent{
	{path: "cache", kind: "dir", mode: 0o755},
	{path: "cache/debconf", kind: "dir", mode: 0o700},
	{path: "cache/debconf/config.dat", kind: "file", mode: 0o600, data: "Name: x\n"},
	{path: "home", kind: "dir", mode: 0o755},
	{path: "home/keel", kind: "dir", mode: 0o700, uid: 1000, gid: 1000},
	{path: "home/keel/.ssh", kind: "dir", mode: 0o700, uid: 1000, gid: 1000},
	{path: "home/keel/.ssh/authorized_keys", kind: "file", mode: 0o600, uid: 1000, gid: 1000, data: "ssh-ed25519 AAAA keel\n"},
	{path: "lib", kind: "dir", mode: 0o755},
	{path: "lib/app", kind: "dir", mode: 0o2775, uid: 0, gid: 50},
	{path: "lib/app/config", kind: "file", mode: 0o640, gid: 50, data: "factory config\n"},
	{path: "lib/app/empty", kind: "file", mode: 0o644},
	{path: "lib/app/helper", kind: "file", mode: 0o4755, data: "#!/bin/sh\n"},
	{path: "lib/app/fifo", kind: "fifo", mode: 0o620},
	{path: "lib/app/current", kind: "symlink", data: "config"},
	{path: "lib/dpkg", kind: "dir", mode: 0o755},
	{path: "lib/dpkg/status", kind: "file", mode: 0o644, data: "Package: base-files\n"},
	{path: "lib/dpkg/status-old", kind: "link", data: "lib/dpkg/status"},
	{path: "lib/dpkg/info", kind: "dir", mode: 0o755},
	{path: "lib/dpkg/info/base-files.list", kind: "link", data: "lib/dpkg/status"},
	{path: "lock", kind: "symlink", data: "/run/lock"},
	{path: "run", kind: "symlink", data: "/run"},
	{path: "tmp", kind: "dir", mode: 0o1777},
	{path: "big", kind: "file", mode: 0o644, data: strings.Repeat("0123456789abcdef", 40_000)},
}

func setXattr(t *testing.T, p, name, value string) bool {
	t.Helper()
	err := unix.Lsetxattr(p, name, []byte(value), 0)
	if errors.Is(err, unix.ENOTSUP) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

func newFactory(t *testing.T) string {
	t.Helper()
	fac := filepath.Join(t.TempDir(), "factory")
	if err := os.Mkdir(fac, 0o755); err != nil {
		t.Fatal(err)
	}
	build(t, fac, factoryTree)
	if !setXattr(t, filepath.Join(fac, "lib/app/config"), "user.keel", "file") ||
		!setXattr(t, filepath.Join(fac, "lib/app"), "user.keel", "dir") {
		t.Log("user xattrs not supported here: not compared")
	}
	// Setting xattrs changed no mtime; the build's mtimes stand.
	if os.Geteuid() != 0 {
		t.Log("not root: every entry is owned by the test user, so copying owners is not exercised")
	}
	return fac
}

func newVar(t *testing.T) string {
	t.Helper()
	v := filepath.Join(t.TempDir(), "var")
	if err := os.Mkdir(v, 0o755); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestPopulateFreshAndAgain(t *testing.T) {
	fac, v := newFactory(t), newVar(t)
	var l logs
	st, err := Populate(fac, v, l.logf)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Stats{Created: len(factoryTree)}); st != want {
		t.Errorf("first run: %+v, want %+v\n%s", st, want, strings.Join(l.lines, "\n"))
	}
	if len(l.lines) != 0 {
		t.Errorf("log lines on a clean run:\n%s", strings.Join(l.lines, "\n"))
	}
	want := snapshot(t, fac)
	diff(t, want, snapshot(t, v))
	if got := snapshot(t, v)["lib/dpkg/status-old"].LinkedTo; got != "lib/dpkg/info/base-files.list" {
		t.Errorf("status-old linked to %q, want the first name of its group", got)
	}

	// Idempotence: everything is there, nothing is made or touched.
	st, err = Populate(fac, v, l.logf)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Stats{Kept: len(want)}); st != want {
		t.Errorf("second run: %+v, want %+v", st, want)
	}
	diff(t, want, snapshot(t, v))
	if len(l.lines) != 0 {
		t.Errorf("log lines:\n%s", strings.Join(l.lines, "\n"))
	}
}

func TestPopulateHardLinks(t *testing.T) {
	fac, v := newFactory(t), newVar(t)
	if _, err := Populate(fac, v, nil); err != nil {
		t.Fatal(err)
	}
	var a, b, c unix.Stat_t
	for p, st := range map[string]*unix.Stat_t{"lib/dpkg/status": &a, "lib/dpkg/status-old": &b, "lib/dpkg/info/base-files.list": &c} {
		if err := unix.Lstat(filepath.Join(v, p), st); err != nil {
			t.Fatal(err)
		}
	}
	if a.Ino != b.Ino || a.Ino != c.Ino || a.Nlink != 3 {
		t.Errorf("inodes %d %d %d, nlink %d: want one inode with 3 names", a.Ino, b.Ino, c.Ino, a.Nlink)
	}

	// A group whose first name the user already has: the others are
	// copies of the factory's content, not links to the user's file.
	v2 := newVar(t)
	build(t, v2, []fent{{path: "lib", kind: "dir", mode: 0o755}, {path: "lib/dpkg", kind: "dir", mode: 0o755},
		{path: "lib/dpkg/status", kind: "file", mode: 0o644, data: "the user's\n"}})
	if _, err := Populate(fac, v2, nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"lib/dpkg/status-old", "lib/dpkg/info/base-files.list"} {
		if b, _ := os.ReadFile(filepath.Join(v2, p)); string(b) != "Package: base-files\n" {
			t.Errorf("%s: %q", p, b)
		}
	}
	var s1, s2, s3 unix.Stat_t
	unix.Lstat(filepath.Join(v2, "lib/dpkg/status"), &s1)
	unix.Lstat(filepath.Join(v2, "lib/dpkg/status-old"), &s2)
	unix.Lstat(filepath.Join(v2, "lib/dpkg/info/base-files.list"), &s3)
	if s1.Ino == s2.Ino || s2.Ino != s3.Ino {
		t.Errorf("inodes %d %d %d: want the user's file apart, the two new names linked", s1.Ino, s2.Ino, s3.Ino)
	}
}

func TestPopulateKeepsWhatExists(t *testing.T) {
	fac := newFactory(t)
	want := snapshot(t, fac)
	tests := []struct {
		name     string
		existing []fent
		same     []string // paths whose state must be the existing one, not the factory's
		log      []string // a log line with all of these
	}{
		{
			name: "a file with other content and mode",
			existing: []fent{{path: "lib", kind: "dir", mode: 0o755}, {path: "lib/app", kind: "dir", mode: 0o700},
				{path: "lib/app/config", kind: "file", mode: 0o666, data: "the user's config\n"}},
			same: []string{"lib", "lib/app", "lib/app/config"},
		},
		{
			name:     "a directory where the factory has a file",
			existing: []fent{{path: "big", kind: "dir", mode: 0o755}, {path: "big/mine", kind: "file", mode: 0o644, data: "x"}},
			same:     []string{"big", "big/mine"},
			log:      []string{"big: kept as it is: a directory where the factory copy has a file"},
		},
		{
			name:     "a file where the factory has a directory",
			existing: []fent{{path: "cache", kind: "file", mode: 0o644, data: "not a dir"}},
			same:     []string{"cache"},
			log:      []string{"cache: kept as it is: a file where the factory copy has a directory"},
		},
		{
			name:     "a symlink of the user's where the factory has another",
			existing: []fent{{path: "run", kind: "symlink", data: "/elsewhere"}},
			same:     []string{"run"},
		},
		{
			name:     "a fifo where the factory has a symlink",
			existing: []fent{{path: "lock", kind: "fifo", mode: 0o600}},
			same:     []string{"lock"},
			log:      []string{"lock: kept as it is: a fifo where the factory copy has a symlink"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVar(t)
			build(t, v, tt.existing)
			before := snapshot(t, v)
			var l logs
			st, err := Populate(fac, v, l.logf)
			if err != nil {
				t.Fatal(err)
			}
			if st.Failed != 0 || st.Skipped != 0 {
				t.Errorf("stats %+v\n%s", st, strings.Join(l.lines, "\n"))
			}
			got := snapshot(t, v)
			exp := map[string]info{}
			for k, in := range want {
				exp[k] = in
			}
			for _, p := range tt.same {
				// Below a kept entry of another type, the factory's
				// entries are not made.
				if before[p].Kind == want[p].Kind {
					continue
				}
				for k := range exp {
					if strings.HasPrefix(k, p+"/") {
						delete(exp, k)
					}
				}
			}
			for _, p := range tt.same {
				in := before[p]
				if in.Kind == unix.S_IFDIR && want[p].Kind == unix.S_IFDIR {
					// A kept directory gains the factory's missing
					// entries, which moves its mtime.
					in.Mtime = got[p].Mtime
				}
				exp[p] = in
			}
			diff(t, exp, got)
			for _, s := range tt.log {
				l.has(t, filepath.Join(v, s))
			}
		})
	}
}

func TestPopulateAddsNewFactoryEntries(t *testing.T) {
	fac, v := newFactory(t), newVar(t)
	if _, err := Populate(fac, v, nil); err != nil {
		t.Fatal(err)
	}
	// The user changes a file; an update brings a new file in an
	// existing directory and a new directory.
	if err := os.WriteFile(filepath.Join(v, "lib/app/config"), []byte("changed\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	build(t, fac, []fent{
		{path: "lib/app/new", kind: "file", mode: 0o644, data: "new in v2\n"},
		{path: "lib/new", kind: "dir", mode: 0o750},
		{path: "lib/new/state", kind: "file", mode: 0o600, data: "s"},
	})
	st, err := Populate(fac, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Created != 3 || st.Failed != 0 {
		t.Errorf("stats %+v, want 3 created", st)
	}
	got, want := snapshot(t, v), snapshot(t, fac)
	for _, p := range []string{"lib/app/new", "lib/new", "lib/new/state"} {
		if got[p] != want[p] {
			t.Errorf("%s: %+v, want %+v", p, got[p], want[p])
		}
	}
	if got["lib/app/config"].Data != "changed\n" {
		t.Errorf("the user's change was overwritten: %q", got["lib/app/config"].Data)
	}
}

// TestPopulateNeverFollowsSymlinks: a user's symlinks on /var, to a
// directory outside, must not make Populate write there, whatever their
// place: where the factory has a directory (lib), a file (big), or a
// missing directory (a dangling link).
func TestPopulateNeverFollowsSymlinks(t *testing.T) {
	fac, v := newFactory(t), newVar(t)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "big"), []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	build(t, v, []fent{
		{path: "lib", kind: "symlink", data: outside},
		{path: "big", kind: "symlink", data: filepath.Join(outside, "big")},
		{path: "cache", kind: "symlink", data: filepath.Join(outside, "cache")},
		{path: "home", kind: "dir", mode: 0o755},
		{path: "home/keel", kind: "symlink", data: outside},
	})
	var l logs
	st, err := Populate(fac, v, l.logf)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(outside)
	if len(ents) != 1 || ents[0].Name() != "big" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("written outside /var: %v", names)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "big")); string(b) != "outside" {
		t.Errorf("outside file changed: %q", b)
	}
	for _, p := range []string{"lib", "big", "cache", "home/keel"} {
		if fi, err := os.Lstat(filepath.Join(v, p)); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("%s is no longer the user's symlink", p)
		}
	}
	if st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
	l.has(t, filepath.Join(v, "lib")+": kept as it is: a symlink where the factory copy has a directory")
	l.has(t, filepath.Join(v, "home/keel")+": kept as it is: a symlink")
}

func TestPopulateRemovesLeftovers(t *testing.T) {
	fac, v := newFactory(t), newVar(t)
	build(t, v, []fent{
		{path: "lib", kind: "dir", mode: 0o755},
		{path: "lib/app", kind: "dir", mode: 0o2775},
		// A cut boot wrote half of config and made cache/ but had not
		// renamed either into place.
		{path: "lib/app/" + tmpPrefix + "config", kind: "file", mode: 0o600, data: "fact"},
		{path: tmpPrefix + "cache", kind: "dir", mode: 0o700},
	})
	st, err := Populate(fac, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
	for _, p := range []string{"lib/app/" + tmpPrefix + "config", tmpPrefix + "cache"} {
		if _, err := os.Lstat(filepath.Join(v, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("leftover %s still there (%v)", p, err)
		}
	}
	got, want := snapshot(t, v), snapshot(t, fac)
	for _, p := range []string{"lib/app/config", "cache", "cache/debconf/config.dat"} {
		if got[p] != want[p] {
			t.Errorf("%s: %+v, want %+v", p, got[p], want[p])
		}
	}
}

// TestPopulateGoesOnAfterAFailure: an entry that cannot be made (here
// because a non-empty directory sits on its temporary name) is logged and
// counted, and the rest is made.
func TestPopulateGoesOnAfterAFailure(t *testing.T) {
	fac, v := newFactory(t), newVar(t)
	build(t, v, []fent{
		{path: tmpPrefix + "cache", kind: "dir", mode: 0o755},
		{path: tmpPrefix + "cache/mine", kind: "file", mode: 0o644},
	})
	var l logs
	st, err := Populate(fac, v, l.logf)
	if err != nil {
		t.Fatal(err)
	}
	if st.Failed != 1 {
		t.Errorf("stats %+v, want 1 failed", st)
	}
	l.has(t, filepath.Join(v, "cache")+": not created: removing the leftover")
	if b, err := os.ReadFile(filepath.Join(v, "lib/app/config")); err != nil || string(b) != "factory config\n" {
		t.Errorf("lib/app/config after a failure elsewhere: %q %v", b, err)
	}
}

func TestPopulateSkipsDevicesAndSockets(t *testing.T) {
	fac, v := t.TempDir(), newVar(t)
	sock := filepath.Join(fac, "sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	want := Stats{Skipped: 2, Created: 1}
	if os.Geteuid() == 0 {
		if err := unix.Mknod(filepath.Join(fac, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
			t.Fatal(err)
		}
		want.Skipped++
	} else {
		t.Log("not root: no device node in the factory copy")
	}
	if err := os.WriteFile(filepath.Join(fac, tmpPrefix+"x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fac, "plain"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var l logs
	st, err := Populate(fac, v, l.logf)
	if err != nil {
		t.Fatal(err)
	}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	l.has(t, filepath.Join(v, "sock")+": not created: the factory copy's socket is not copied")
	if os.Geteuid() == 0 {
		l.has(t, filepath.Join(v, "null")+": not created: the factory copy's character device is not copied")
	}
	ents, _ := os.ReadDir(v)
	if len(ents) != 1 || ents[0].Name() != "plain" {
		t.Errorf("/var holds %v, want only plain", ents)
	}
}

func TestPopulateLongNames(t *testing.T) {
	fac, v := t.TempDir(), newVar(t)
	long := strings.Repeat("n", 250)
	if err := os.MkdirAll(filepath.Join(fac, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fac, "d", long), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(v, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if n := len(tmpName(long)); n > 255 {
		t.Fatalf("temporary name of %d bytes", n)
	}
	st, err := Populate(fac, v, nil)
	if err != nil || st.Created != 1 {
		t.Fatalf("%+v %v", st, err)
	}
	if b, err := os.ReadFile(filepath.Join(v, "d", long)); err != nil || string(b) != "x" {
		t.Errorf("%q %v", b, err)
	}
}

func TestPopulateNoFactoryCopy(t *testing.T) {
	_, err := Populate(filepath.Join(t.TempDir(), "none"), newVar(t), nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v, want fs.ErrNotExist", err)
	}
}

// TestPopulateManyDirectories makes more directories than Populate holds
// open at once, so files are put in place over several syncs, and checks
// the new directories' mtimes survive the renames into them.
func TestPopulateManyDirectories(t *testing.T) {
	fac, v := t.TempDir(), newVar(t)
	makeWide(t, fac, maxOpen+40, 3)
	st, err := Populate(fac, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, fac)
	if st.Created != len(want) || st.Failed != 0 {
		t.Errorf("stats %+v, want %d created", st, len(want))
	}
	diff(t, want, snapshot(t, v))
}

// makeWide makes dirs directories of files files each, every entry with
// a fixed mtime.
func makeWide(t testing.TB, root string, dirs, files int) {
	t.Helper()
	ts := []unix.Timespec{{Sec: baseMtime}, {Sec: baseMtime}}
	for i := range dirs {
		d := filepath.Join(root, fmt.Sprintf("d%04d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for j := range files {
			p := filepath.Join(d, fmt.Sprintf("f%03d", j))
			if err := os.WriteFile(p, bytes.Repeat([]byte{byte(j)}, 100), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := unix.UtimesNano(p, ts); err != nil {
				t.Fatal(err)
			}
		}
		if err := unix.UtimesNano(d, ts); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkPopulate measures a first boot (everything made) and a later
// one (everything there) for 5,000 entries: 100 directories of 49 files.
func BenchmarkPopulate(b *testing.B) {
	fac := b.TempDir()
	makeWide(b, fac, 100, 49)
	b.Run("first boot", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			v := filepath.Join(b.TempDir(), fmt.Sprint(i))
			if err := os.Mkdir(v, 0o755); err != nil {
				b.Fatal(err)
			}
			if st, err := Populate(fac, v, nil); err != nil || st.Created != 5000 {
				b.Fatal(st, err)
			}
		}
	})
	b.Run("second boot", func(b *testing.B) {
		v := filepath.Join(b.TempDir(), "var")
		if err := os.Mkdir(v, 0o755); err != nil {
			b.Fatal(err)
		}
		if _, err := Populate(fac, v, nil); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if st, err := Populate(fac, v, nil); err != nil || st.Kept != 5000 {
				b.Fatal(st, err)
			}
		}
	})
}
