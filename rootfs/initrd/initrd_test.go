package initrd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"keel/rootfs"
)

// pseudoRandom returns n deterministic, poorly compressible bytes, so the
// compressors have real work and two builds still agree.
func pseudoRandom(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// testTree builds a tree with every entry type, odd sizes and name lengths
// (to exercise the 4-byte padding), special mode bits, owners, mtimes, a
// three-way hard-link group across directories, a hard-linked device node
// and a hard-linked empty file.
func testTree(t testing.TB) *rootfs.Tree {
	t.Helper()
	tree := rootfs.New()
	tree.Root().Mtime = 1700000000
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	dir := func(p string, mode, uid, gid uint32) {
		must(tree.Add(p, &rootfs.Entry{Type: rootfs.TypeDir, Mode: mode, UID: uid, GID: gid, Mtime: 1700000100}))
	}
	file := func(p string, mode, uid, gid uint32, b []byte) *rootfs.Entry {
		e := rootfs.NewFile(mode, b)
		e.UID, e.GID, e.Mtime = uid, gid, 1600000000+int64(len(p))
		must(tree.Add(p, e))
		return e
	}
	node := func(p string, typ rootfs.Type, mode, major, minor uint32) {
		must(tree.Add(p, &rootfs.Entry{Type: typ, Mode: mode, Major: major, Minor: minor, GID: 6, Mtime: 1500000000}))
	}
	symlink := func(p, target string) {
		must(tree.Add(p, &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: target, Mtime: 1400000000}))
	}

	dir("/bin", 0o755, 0, 0)
	dir("/sbin", 0o755, 0, 0)
	dir("/dev", 0o755, 0, 0)
	dir("/etc", 0o755, 0, 0)
	dir("/home", 0o755, 0, 0)
	dir("/home/user", 0o700, 1000, 1000)
	dir("/run", 0o755, 0, 0)
	dir("/tmp", 0o1777, 0, 0)
	dir("/usr", 0o755, 0, 0)
	dir("/usr/bin", 0o755, 0, 0)
	dir("/var", 0o755, 0, 0)
	dir("/var/mail", 0o2775, 0, 8)
	dir("/var/empty", 0o555, 0, 0)

	file("/bin/busybox", 0o755, 0, 0, pseudoRandom(1, 300_001))
	must(tree.Link("/bin/ls", "/bin/busybox"))
	must(tree.Link("/sbin/init", "/bin/busybox"))
	symlink("/bin/sh", "busybox")
	symlink("/sbin/sh", "/bin/busybox")
	symlink("/etc/mtab", "../proc/self/mounts") // dangling, as in a real rootfs
	file("/usr/bin/passwd", 0o4755, 0, 0, []byte("setuid\n"))
	file("/usr/bin/wall", 0o2755, 0, 5, []byte("setgid!\n"))
	file("/usr/bin/all", 0o7777, 0, 0, []byte("x"))
	file("/home/user/.profile", 0o600, 1000, 1000, []byte("PS1='$ '\n"))
	file("/etc/a", 0o644, 0, 0, []byte("a"))
	file("/etc/ab", 0o644, 0, 0, []byte("ab"))
	file("/etc/abc", 0o644, 0, 0, []byte("abc"))
	file("/etc/abcd", 0o644, 0, 0, []byte("abcd"))
	file("/etc/empty", 0o644, 0, 0, nil)
	must(tree.Link("/etc/empty-link", "/etc/empty"))
	file("/etc/"+strings.Repeat("long", 50), 0o400, 65534, 65534, []byte("long name\n"))
	zeros := &rootfs.Entry{Type: rootfs.TypeFile, Mode: 0o644, Size: 5000, Mtime: 1} // nil Content: zeros
	must(tree.Add("/etc/zeros", zeros))

	node("/dev/console", rootfs.TypeCharDev, 0o600, 5, 1)
	node("/dev/null", rootfs.TypeCharDev, 0o666, 1, 3)
	must(tree.Link("/dev/null2", "/dev/null"))
	node("/dev/vda", rootfs.TypeBlockDev, 0o660, 254, 0)
	node("/dev/big", rootfs.TypeBlockDev, 0o600, 4095, 1048575) // Linux's largest major and minor
	node("/run/fifo", rootfs.TypeFifo, 0o620, 0, 0)
	node("/run/sock", rootfs.TypeSocket, 0o755, 0, 0)
	return tree
}

// linkGroups returns, for each entry, its paths in walk order.
func linkGroups(t *testing.T, tree *rootfs.Tree) (order []string, byEntry map[*rootfs.Entry][]string) {
	byEntry = map[*rootfs.Entry][]string{}
	err := tree.Walk(func(p string, e *rootfs.Entry) error {
		order = append(order, p)
		byEntry[e] = append(byEntry[e], p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return order, byEntry
}

// lookTool finds a command the test needs or skips, naming the Debian
// package that provides it.
func lookTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s: not installed (apt-get install %s)", name, pkg)
	}
	return p
}

func run(t *testing.T, dir string, stdin io.Reader, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdin = stdin
	cmd.Env = append(os.Environ(), "TZ=UTC", "LC_ALL=C") // for cpio -tv's dates
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// decompress turns a written initrd back into the cpio archive with the
// reference tool for its compressor.
func decompress(t *testing.T, c Compression, file string) []byte {
	t.Helper()
	switch c {
	case XZ:
		return run(t, "", nil, lookTool(t, "xz", "xz-utils"), "-dc", file)
	case Zstd:
		return run(t, "", nil, lookTool(t, "zstd", "zstd"), "-dc", file)
	case None:
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Fatalf("no decompressor for %q", c)
	return nil
}

func TestWithRealTools(t *testing.T) {
	cpio := lookTool(t, "cpio", "cpio")
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"none", Options{Compression: None}},
		{"xz", Options{Compression: XZ}},
		{"default is xz", Options{}},
		{"zstd", Options{Compression: Zstd}},
		{"zstd level 1", Options{Compression: Zstd, Level: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := testTree(t)
			file := filepath.Join(t.TempDir(), "initrd")
			if err := WriteFile(context.Background(), file, tree, tc.opts); err != nil {
				t.Fatal(err)
			}
			c := tc.opts.Compression
			if c == "" {
				c = XZ
			}
			checkCompressedStream(t, c, file)
			archive := decompress(t, c, file)
			if len(archive)%4 != 0 {
				t.Errorf("archive is %d bytes, not a multiple of 4", len(archive))
			}
			archiveFile := filepath.Join(t.TempDir(), "initrd.cpio")
			if err := os.WriteFile(archiveFile, archive, 0o644); err != nil {
				t.Fatal(err)
			}
			checkListing(t, tree, run(t, "", bytes.NewReader(archive), cpio, "-itv", "-n", "--quiet"))
			checkExtracted(t, cpio, tree, archive)
		})
	}
}

// checkCompressedStream checks the compressed container with the reference
// tool: an xz stream must use CRC32 (the kernel's decoder takes nothing
// else), a zstd stream must be one frame with a window the kernel's
// streaming decoder accepts.
func checkCompressedStream(t *testing.T, c Compression, file string) {
	t.Helper()
	switch c {
	case XZ:
		out := run(t, "", nil, lookTool(t, "xz", "xz-utils"), "--robot", "-lv", file)
		var checks []string
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Split(line, "\t")
			// stream  number  blocks  offset  offset  size  size  ratio  check  padding
			if f[0] == "stream" && len(f) > 8 {
				checks = append(checks, f[8])
			}
		}
		if len(checks) != 1 || checks[0] != "CRC32" {
			t.Errorf("xz streams' checks = %q, want one CRC32 stream\n%s", checks, out)
		}
	case Zstd:
		out := string(run(t, "", nil, lookTool(t, "zstd", "zstd"), "-lv", file))
		frames := regexp.MustCompile(`# Zstandard Frames: (\d+)`).FindStringSubmatch(out)
		if frames == nil || frames[1] != "1" {
			t.Errorf("want exactly one zstd frame (the kernel stops after the first):\n%s", out)
		}
		win := regexp.MustCompile(`Window Size: .*\((\d+) B\)`).FindStringSubmatch(out)
		if win == nil {
			t.Fatalf("no window size in zstd -lv output:\n%s", out)
		}
		if n, _ := strconv.Atoi(win[1]); n <= 0 || n > ZstdWindow {
			t.Errorf("zstd window %s bytes, want 1..%d", win[1], ZstdWindow)
		}
	}
}

// lsMode formats a mode as ls and cpio -tv do.
func lsMode(e *rootfs.Entry) string {
	typ := map[rootfs.Type]byte{
		rootfs.TypeDir: 'd', rootfs.TypeFile: '-', rootfs.TypeSymlink: 'l',
		rootfs.TypeCharDev: 'c', rootfs.TypeBlockDev: 'b', rootfs.TypeFifo: 'p', rootfs.TypeSocket: 's',
	}[e.Type]
	b := []byte{typ}
	special := [3]struct {
		bit       uint32
		set, only byte // shown with x, shown without x
	}{{0o4000, 's', 'S'}, {0o2000, 's', 'S'}, {0o1000, 't', 'T'}}
	for i := 0; i < 3; i++ {
		shift := uint(6 - 3*i)
		perm := (e.Mode >> shift) & 7
		for j, c := range []byte("rwx") {
			if perm&(4>>j) != 0 {
				b = append(b, c)
			} else {
				b = append(b, '-')
			}
		}
		if s := special[i]; e.Mode&s.bit != 0 {
			if perm&1 != 0 {
				b[len(b)-1] = s.set
			} else {
				b[len(b)-1] = s.only
			}
		}
	}
	return string(b)
}

// checkListing compares GNU cpio's `-itvn` listing, line by line, with what
// the tree says each member must show.
func checkListing(t *testing.T, tree *rootfs.Tree, listing []byte) {
	t.Helper()
	order, groups := linkGroups(t, tree)
	lines := strings.Split(strings.TrimSuffix(string(listing), "\n"), "\n")
	if len(lines) != len(order) {
		t.Fatalf("cpio lists %d members, the tree has %d paths:\n%s", len(lines), len(order), listing)
	}
	for i, p := range order {
		e, _ := tree.Get(p)
		f := strings.Fields(lines[i])
		if len(f) < 8 {
			t.Errorf("short listing line %q", lines[i])
			continue
		}
		got := struct {
			mode, nlink, uid, gid, size, date, name, target string
		}{mode: f[0], nlink: f[1], uid: f[2], gid: f[3]}
		rest := f[5:]
		if e.Type == rootfs.TypeCharDev || e.Type == rootfs.TypeBlockDev {
			got.size = f[4] + " " + f[5] // "major, minor"
			rest = f[6:]
		} else {
			got.size = f[4]
		}
		got.date = strings.Join(rest[:3], " ")
		name := strings.Join(rest[3:], " ") // after the three date fields
		got.name, got.target, _ = strings.Cut(name, " -> ")

		want := got
		want.mode = lsMode(e)
		group := groups[e]
		want.nlink = strconv.Itoa(len(group))
		want.uid = strconv.Itoa(int(e.UID))
		want.gid = strconv.Itoa(int(e.GID))
		want.name = "."
		if p != "/" {
			want.name = p[1:]
		}
		want.target = ""
		// The test's times are all more than six months old, which cpio
		// (like ls) shows as month, day and year.
		want.date = time.Unix(e.Mtime, 0).UTC().Format("Jan 2 2006")
		switch e.Type {
		case rootfs.TypeDir:
			want.nlink = strconv.Itoa(2 + countSubdirs(tree, p))
			want.size = "0"
		case rootfs.TypeFile:
			want.size = "0" // the data goes with the group's last member
			if group[len(group)-1] == p {
				want.size = strconv.FormatInt(e.Size, 10)
			}
		case rootfs.TypeSymlink:
			want.size = strconv.Itoa(len(e.Target))
			want.target = e.Target
		case rootfs.TypeCharDev, rootfs.TypeBlockDev:
			want.size = fmt.Sprintf("%d, %d", e.Major, e.Minor)
		default:
			want.size = "0"
		}
		if got != want {
			t.Errorf("member %d:\n got %+v\nwant %+v\n(line %q)", i, got, want, lines[i])
		}
	}
}

func countSubdirs(tree *rootfs.Tree, p string) int {
	n := 0
	for _, c := range tree.Children(p) {
		if e, _ := tree.Get(filepath.Join(p, c)); e.Type == rootfs.TypeDir {
			n++
		}
	}
	return n
}

// checkExtracted unpacks the archive with GNU cpio as root and compares
// every path with the tree: type, permission bits, owner, mtime, content,
// symlink target, device numbers and hard-link identity.
func checkExtracted(t *testing.T, cpio string, tree *rootfs.Tree, archive []byte) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("extracting with owners and device nodes needs root")
	}
	dir := t.TempDir()
	run(t, dir, bytes.NewReader(archive), cpio, "-idmu", "--no-absolute-filenames", "--quiet")
	order, groups := linkGroups(t, tree)
	inodes := map[uint64]string{}
	for _, p := range order {
		if p == "/" {
			continue
		}
		e, _ := tree.Get(p)
		host := filepath.Join(dir, p)
		var st syscall.Stat_t
		if err := syscall.Lstat(host, &st); err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		wantType := map[rootfs.Type]uint32{
			rootfs.TypeDir: syscall.S_IFDIR, rootfs.TypeFile: syscall.S_IFREG,
			rootfs.TypeSymlink: syscall.S_IFLNK, rootfs.TypeCharDev: syscall.S_IFCHR,
			rootfs.TypeBlockDev: syscall.S_IFBLK, rootfs.TypeFifo: syscall.S_IFIFO,
			rootfs.TypeSocket: syscall.S_IFSOCK,
		}[e.Type]
		if st.Mode&syscall.S_IFMT != wantType {
			t.Errorf("%s: type %#o, want %#o", p, st.Mode&syscall.S_IFMT, wantType)
			continue
		}
		if e.Type != rootfs.TypeSymlink {
			if st.Mode&0o7777 != e.Mode {
				t.Errorf("%s: mode %#o, want %#o", p, st.Mode&0o7777, e.Mode)
			}
			// GNU cpio 2.13 sets a directory's mtime when it creates it,
			// and creating the children then moves it on; only an empty
			// directory keeps the archived time.
			if st.Mtim.Sec != e.Mtime && (e.Type != rootfs.TypeDir || len(tree.Children(p)) == 0) {
				t.Errorf("%s: mtime %d, want %d", p, st.Mtim.Sec, e.Mtime)
			}
		}
		if st.Uid != e.UID || st.Gid != e.GID {
			t.Errorf("%s: owner %d:%d, want %d:%d", p, st.Uid, st.Gid, e.UID, e.GID)
		}
		switch e.Type {
		case rootfs.TypeFile:
			got, err := os.ReadFile(host)
			if err != nil {
				t.Error(err)
				break
			}
			if want := content(t, e); !bytes.Equal(got, want) {
				t.Errorf("%s: content differs (%d bytes, want %d)", p, len(got), len(want))
			}
		case rootfs.TypeSymlink:
			if got, err := os.Readlink(host); err != nil || got != e.Target {
				t.Errorf("%s: target %q (%v), want %q", p, got, err, e.Target)
			}
		case rootfs.TypeCharDev, rootfs.TypeBlockDev:
			if ma, mi := unix.Major(st.Rdev), unix.Minor(st.Rdev); ma != e.Major || mi != e.Minor {
				t.Errorf("%s: device %d,%d, want %d,%d", p, ma, mi, e.Major, e.Minor)
			}
		}
		// Paths of one link group share an inode; paths of different
		// entries never do. Symlinks are recreated one by one by every
		// reader, so only other types are held to this.
		if e.Type == rootfs.TypeSymlink || e.Type == rootfs.TypeDir {
			continue
		}
		if first, ok := inodes[st.Ino]; ok {
			if fe, _ := tree.Get(first); fe != e {
				t.Errorf("%s shares inode %d with %s, which is another entry", p, st.Ino, first)
			}
		} else {
			inodes[st.Ino] = p
			if g := groups[e]; g[0] != p {
				t.Errorf("%s: not linked to %s", p, g[0])
			}
		}
		if want := len(groups[e]); st.Nlink != uint64(want) {
			t.Errorf("%s: nlink %d, want %d", p, st.Nlink, want)
		}
	}
}

func content(t *testing.T, e *rootfs.Entry) []byte {
	t.Helper()
	if e.Content == nil {
		return make([]byte, e.Size)
	}
	rc, err := e.Content()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDeterministic writes two separately built copies of the same tree and
// wants the same bytes, for every compressor.
func TestDeterministic(t *testing.T) {
	for _, c := range Compressions {
		t.Run(string(c), func(t *testing.T) {
			var a, b bytes.Buffer
			if err := Write(context.Background(), &a, testTree(t), Options{Compression: c}); err != nil {
				t.Fatal(err)
			}
			if err := Write(context.Background(), &b, testTree(t), Options{Compression: c}); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Errorf("two writes of the same tree differ (%d and %d bytes)", a.Len(), b.Len())
			}
		})
	}
}

// TestHeaderBytes pins the exact encoding of a small archive, worked out by
// hand from the newc description, so a change in field order or padding
// cannot slip through two readers that might both be lenient.
func TestHeaderBytes(t *testing.T) {
	tree := rootfs.New()
	f := rootfs.NewFile(0o4755, []byte("hello"))
	f.UID, f.GID, f.Mtime = 1, 2, 0x12345678
	if err := tree.Add("/init", f); err != nil {
		t.Fatal(err)
	}
	if err := tree.Add("/dev", &rootfs.Entry{Type: rootfs.TypeCharDev, Mode: 0o600, Major: 5, Minor: 1}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(context.Background(), &buf, tree, Options{Compression: None}); err != nil {
		t.Fatal(err)
	}
	want := "070701" + "00000001" + "000041ED" + "00000000" + "00000000" + "00000002" + "00000000" +
		"00000000" + "00000000" + "00000000" + "00000000" + "00000000" + "00000002" + "00000000" +
		".\x00" + // 110+2 = 112: already aligned
		"070701" + "00000002" + "00002180" + "00000000" + "00000000" + "00000001" + "00000000" +
		"00000000" + "00000000" + "00000000" + "00000005" + "00000001" + "00000004" + "00000000" +
		"dev\x00" + "\x00\x00" + // 112+110+4 = 226, padded to 228
		"070701" + "00000003" + "000089ED" + "00000001" + "00000002" + "00000001" + "12345678" +
		"00000005" + "00000000" + "00000000" + "00000000" + "00000000" + "00000005" + "00000000" +
		"init\x00" + "\x00" + // 228+110+5 = 343, padded to 344
		"hello" + "\x00\x00\x00" + // 349, padded to 352
		"070701" + "00000000" + "00000000" + "00000000" + "00000000" + "00000001" + "00000000" +
		"00000000" + "00000000" + "00000000" + "00000000" + "00000000" + "0000000B" + "00000000" +
		"TRAILER!!!\x00" + "\x00\x00\x00" // 352+110+11 = 473, padded to 476
	if got := buf.String(); got != want {
		t.Errorf("archive bytes:\n got %q\nwant %q", got, want)
	}
}

func TestErrors(t *testing.T) {
	errOpen := errors.New("source gone")
	for _, tc := range []struct {
		name   string
		opts   Options
		modify func(t *testing.T, tree *rootfs.Tree)
		want   string // substring of the error
		wantIs error
	}{
		{
			name: "content shorter than size",
			modify: func(t *testing.T, tree *rootfs.Tree) {
				e := rootfs.NewFile(0o644, []byte("abc"))
				e.Size = 10
				add(t, tree, "/short", e)
			},
			want: "/short: content is 3 bytes, shorter than its size 10",
		},
		{
			name: "content longer than size",
			modify: func(t *testing.T, tree *rootfs.Tree) {
				e := rootfs.NewFile(0o644, []byte("abcdef"))
				e.Size = 2
				add(t, tree, "/long", e)
			},
			want: "/long: content is longer than its size 2",
		},
		{
			name: "opener fails",
			modify: func(t *testing.T, tree *rootfs.Tree) {
				e := &rootfs.Entry{Type: rootfs.TypeFile, Mode: 0o644, Size: 1,
					Content: func() (io.ReadCloser, error) { return nil, errOpen }}
				add(t, tree, "/gone", e)
			},
			want:   "/gone: opening content: source gone",
			wantIs: errOpen,
		},
		{
			name: "xattrs refused",
			modify: func(t *testing.T, tree *rootfs.Tree) {
				e := rootfs.NewFile(0o755, []byte("x"))
				e.Xattrs = map[string][]byte{"security.capability": {1}}
				add(t, tree, "/ping", e)
			},
			want: "/ping: has extended attributes",
		},
		{
			name: "negative mtime",
			modify: func(t *testing.T, tree *rootfs.Tree) {
				add(t, tree, "/old", &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755, Mtime: -1})
			},
			want: "/old: mtime -1 does not fit",
		},
		{
			name: "mtime past 2106",
			modify: func(t *testing.T, tree *rootfs.Tree) {
				add(t, tree, "/new", &rootfs.Entry{Type: rootfs.TypeFifo, Mode: 0o644, Mtime: 1 << 32})
			},
			want: "/new: mtime 4294967296 does not fit",
		},
		{
			name: "file of 4 GiB",
			modify: func(t *testing.T, tree *rootfs.Tree) {
				add(t, tree, "/huge", &rootfs.Entry{Type: rootfs.TypeFile, Mode: 0o644, Size: 1 << 32})
			},
			want: "/huge: size 4294967296 does not fit",
		},
		{
			name: "symlink target beyond PATH_MAX",
			modify: func(t *testing.T, tree *rootfs.Tree) {
				add(t, tree, "/deep", &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: strings.Repeat("a/", 2048)})
			},
			want: "/deep: symlink target is 4096 bytes",
		},
		{
			name: "name beyond PATH_MAX",
			modify: func(t *testing.T, tree *rootfs.Tree) {
				add(t, tree, "/"+strings.Repeat("n", 4096), rootfs.NewFile(0o644, nil))
			},
			want: "/nnnn",
		},
		{
			name: "mode changed after Add",
			modify: func(t *testing.T, tree *rootfs.Tree) {
				e := rootfs.NewFile(0o644, nil)
				add(t, tree, "/m", e)
				e.Mode = 0o100644
			},
			want: "/m: mode 0100644 has bits beyond permissions",
		},
		{
			name: "directory at two paths",
			modify: func(t *testing.T, tree *rootfs.Tree) {
				d := &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755}
				add(t, tree, "/d1", d)
				add(t, tree, "/d2", d)
			},
			want: "/d2: the same directory is also at /d1",
		},
		{
			name: "unknown compression",
			opts: Options{Compression: "lz4"},
			want: `unsupported initrd compression "lz4"`,
		},
		{
			name: "zstd level out of range",
			opts: Options{Compression: Zstd, Level: 23},
			want: "zstd level 23 out of range",
		},
		{
			name: "xz takes no level",
			opts: Options{Compression: XZ, Level: 6},
			want: "compression xz takes no level",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := rootfs.New()
			if tc.modify != nil {
				tc.modify(t, tree)
			}
			err := Write(context.Background(), io.Discard, tree, tc.opts)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %q does not wrap %v", err, tc.wantIs)
			}
		})
	}
}

func add(t *testing.T, tree *rootfs.Tree, p string, e *rootfs.Entry) {
	t.Helper()
	if err := tree.Add(p, e); err != nil {
		t.Fatal(err)
	}
}

func TestDropXattrs(t *testing.T) {
	tree := rootfs.New()
	e := rootfs.NewFile(0o755, []byte("x"))
	e.Xattrs = map[string][]byte{"user.a": {1}}
	add(t, tree, "/f", e)
	if err := Write(context.Background(), io.Discard, tree, Options{DropXattrs: true}); err != nil {
		t.Fatal(err)
	}
}

func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Write(ctx, io.Discard, testTree(t), Options{Compression: None})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

// TestWriteFileLeavesNothingOnFailure: a failed write must not leave the
// output name or a temporary file behind.
func TestWriteFileLeavesNothingOnFailure(t *testing.T) {
	dir := t.TempDir()
	tree := rootfs.New()
	e := rootfs.NewFile(0o644, []byte("abc"))
	e.Size = 100
	add(t, tree, "/short", e)
	name := filepath.Join(dir, "initrd.img")
	err := WriteFile(context.Background(), name, tree, Options{})
	if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "/short") {
		t.Fatalf("error %v, want one naming %s and /short", err, name)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}

func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "initrd.img")
	if err := os.WriteFile(name, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(context.Background(), name, testTree(t), Options{Compression: None}); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := Write(context.Background(), &want, testTree(t), Options{Compression: None}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Error("file content differs from Write's output")
	}
	st, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d files, want 1", len(ents))
	}
}
