package squashfs_test

// Checks of a written image against the tree it came from, through real
// readers only: unsquashfs's listing and superblock dump, an unsquashfs
// extraction, and the kernel through a loop mount. Our own reader agreeing
// with our own writer would prove little.

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"keel/rootfs"
	"keel/rootfs/squashfs"
)

func requireUnsquashfs(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("unsquashfs"); err != nil {
		t.Skip("unsquashfs not installed: apt-get install squashfs-tools")
	}
}

func requireRoot(t testing.TB, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("%s needs root (to restore owners, device nodes and trusted.* xattrs); running as uid %d", what, os.Geteuid())
	}
}

// run runs a tool and returns its stdout. Anything on stderr counts as a
// failure too: unsquashfs reports many problems (a failed xattr, a file it
// could not create) as warnings and still exits 0.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("%s: %v\nstderr:\n%s\nstdout (first 2000 bytes):\n%s", cmd, err, stderr.String(), head(stdout.String(), 2000))
	}
	return stdout.String()
}

func head(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// report prints the first mismatches only: a systematic bug would otherwise
// bury the one useful line under thousands of identical ones.
type report struct {
	t testing.TB
	n int
}

const reportMax = 25

func (r *report) errorf(format string, args ...any) {
	r.t.Helper()
	r.n++
	if r.n <= reportMax {
		r.t.Errorf(format, args...)
	}
}

func (r *report) done() {
	r.t.Helper()
	if r.n > reportMax {
		r.t.Errorf("... and %d more mismatches (%d in all)", r.n-reportMax, r.n)
	}
}

// wantEntry is one path of the tree, as every reader should show it.
type wantEntry struct {
	path       string
	e          *rootfs.Entry
	names      int      // paths holding e: its link count, unless a directory
	sum        [32]byte // sha256 of the content of a file
	zeroBlocks int      // whole, aligned zero blocks: holes in a sparse file
}

// expectations lists the tree in walk order, which is also the order
// unsquashfs lists an image in (directories sorted bytewise, depth first).
func expectations(t testing.TB, tree *rootfs.Tree, blockSize int) []wantEntry {
	t.Helper()
	var want []wantEntry
	names := map[*rootfs.Entry]int{}
	first := map[*rootfs.Entry]wantEntry{} // hard links share one digest
	buf := make([]byte, blockSize)
	if err := tree.Walk(func(p string, e *rootfs.Entry) error {
		names[e]++
		w, ok := first[e]
		if !ok && e.Type == rootfs.TypeFile {
			var err error
			w.sum, w.zeroBlocks, err = digest(e, buf)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		w.path, w.e = p, e
		first[e] = w
		want = append(want, w)
		return nil
	}); err != nil {
		t.Fatalf("reading the tree: %v", err)
	}
	for i := range want {
		want[i].names = names[want[i].e]
	}
	return want
}

// digest hashes a file's content and counts its zero blocks; block is a
// buffer of the image's block size.
func digest(e *rootfs.Entry, block []byte) (sum [32]byte, zeroBlocks int, err error) {
	h := sha256.New()
	if e.Size > 0 {
		// A nil Opener means Size zero bytes.
		var rc io.ReadCloser = io.NopCloser(io.LimitReader(zeroReader{}, e.Size))
		if e.Content != nil {
			if rc, err = e.Content(); err != nil {
				return sum, 0, err
			}
		}
		defer rc.Close()
		for {
			n, err := io.ReadFull(rc, block)
			h.Write(block[:n])
			if n == len(block) && allZero(block) {
				zeroBlocks++
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				return sum, 0, err
			}
		}
	}
	copy(sum[:], h.Sum(nil))
	return sum, zeroBlocks, nil
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// modeString is the "ls -l" mode column unsquashfs prints.
func modeString(e *rootfs.Entry) string {
	s := []byte{map[rootfs.Type]byte{
		rootfs.TypeDir: 'd', rootfs.TypeFile: '-', rootfs.TypeSymlink: 'l', rootfs.TypeCharDev: 'c',
		rootfs.TypeBlockDev: 'b', rootfs.TypeFifo: 'p', rootfs.TypeSocket: 's',
	}[e.Type]}
	for i := range 9 {
		c := byte('-')
		if e.Mode&(1<<(8-i)) != 0 {
			c = "rwx"[i%3]
		}
		s = append(s, c)
	}
	// setuid, setgid and sticky take the place of an x: lower case when the
	// x bit is set too, upper case when it is not.
	for i, bit := range []uint32{0o4000, 0o2000, 0o1000} {
		if e.Mode&bit != 0 {
			c, at := "sst"[i], 3+3*i
			if s[at] == '-' {
				c -= 'a' - 'A'
			}
			s[at] = c
		}
	}
	return string(s)
}

// squashfsDev is the 32-bit device number squashfs stores, in the kernel's
// new_encode_dev layout.
func squashfsDev(major, minor uint32) uint32 {
	return minor&0xff | major<<8 | (minor&^0xff)<<12
}

// lsHeader matches the columns before the path in "unsquashfs -llnumeric".
var lsHeader = regexp.MustCompile(`^([-dlcbps][-rwxsStT]{9}) (\d+)/(\d+) +(?:(\d+)|(-?\d+), *(\d+)) (\d{4}-\d\d-\d\d \d\d:\d\d) `)

// checkListing compares "unsquashfs -llnumeric" with the tree, entry by
// entry. The output is consumed as one string, not split into lines, because
// names and symlink targets may themselves hold newlines.
func checkListing(t testing.TB, image string, want []wantEntry) {
	t.Helper()
	out := run(t, "unsquashfs", "-llnumeric", "-UTC", image)
	r := &report{t: t}
	defer r.done()
	pos := 0
	for _, w := range want {
		window := out[pos:min(len(out), pos+200)]
		m := lsHeader.FindStringSubmatch(window)
		if m == nil {
			r.errorf("listing: at %q expected an entry line, got %q", w.path, firstLine(out[pos:]))
			return
		}
		e := w.e
		if got, want := m[1], modeString(e); got != want {
			r.errorf("listing %q: mode %s, want %s (%s %#o)", w.path, got, want, e.Type, e.Mode)
		}
		if got, want := m[2]+"/"+m[3], fmt.Sprintf("%d/%d", e.UID, e.GID); got != want {
			r.errorf("listing %q: owner %s, want %s", w.path, got, want)
		}
		switch e.Type {
		case rootfs.TypeCharDev, rootfs.TypeBlockDev:
			// unsquashfs 4.5 prints the stored number as a signed int split
			// at bit 8, not decoded: 259:300 shows as "4355, 44" and
			// 4095:1048575 as " -1,255".
			dev := int32(squashfsDev(e.Major, e.Minor))
			if got, want := m[5]+","+m[6], fmt.Sprintf("%d,%d", dev>>8, dev&0xff); got != want {
				r.errorf("listing %q: device %s, want %s (major %d, minor %d)", w.path, got, want, e.Major, e.Minor)
			}
		case rootfs.TypeDir:
			// A directory's size is its encoded length: the writer's business.
		default:
			size := e.Size
			if e.Type == rootfs.TypeSymlink {
				size = int64(len(e.Target))
			}
			if got, want := m[4], strconv.FormatInt(size, 10); got != want {
				r.errorf("listing %q: size %s, want %s", w.path, got, want)
			}
		}
		if got, want := m[7], time.Unix(e.Mtime, 0).UTC().Format("2006-01-02 15:04"); got != want {
			r.errorf("listing %q: mtime %s, want %s (%d)", w.path, got, want, e.Mtime)
		}
		pos += len(m[0])
		rest := "squashfs-root" + strings.TrimSuffix(w.path, "/")
		if e.Type == rootfs.TypeSymlink {
			rest += " -> " + e.Target
		}
		rest += "\n"
		if !strings.HasPrefix(out[pos:], rest) {
			r.errorf("listing: expected path %q, got line %q", rest, firstLine(out[pos:]))
			return
		}
		pos += len(rest)
	}
	if pos != len(out) {
		r.errorf("listing: more entries than the tree has, first: %q", firstLine(out[pos:]))
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return head(s, 300)
}

// checkSuperblock compares "unsquashfs -s" and "-mkfs-time" with what the
// tree, the options and the writer's Stats say.
func checkSuperblock(t testing.TB, image string, want []wantEntry, opts squashfs.Options, st *squashfs.Stats) {
	t.Helper()
	out := run(t, "unsquashfs", "-s", image)
	lines := map[string]bool{}
	var fsSize int64 = -1
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		lines[l] = true
		if n, ok := strings.CutPrefix(l, "Filesystem size "); ok {
			fsSize, _ = strconv.ParseInt(strings.Fields(n)[0], 10, 64)
		}
	}
	c := census(want)
	comp := opts.Compression
	if comp == "" {
		comp = squashfs.Zstd
	}
	block := opts.BlockSize
	if block == 0 {
		block = squashfs.DefaultBlockSize
	}
	wantLines := []string{
		"Compression " + string(comp),
		fmt.Sprintf("Block size %d", block),
		fmt.Sprintf("Number of inodes %d", c.inodes),
		fmt.Sprintf("Number of ids %d", c.ids),
		fmt.Sprintf("Number of fragments %d", st.Fragments),
		"Duplicates are removed",
	}
	if opts.NoExport {
		wantLines = append(wantLines, "Filesystem is not exportable via NFS")
	} else {
		wantLines = append(wantLines, "Filesystem is exportable via NFS")
	}
	if c.xattrSets > 0 {
		wantLines = append(wantLines, fmt.Sprintf("Number of xattr ids %d", c.xattrSets))
	}
	// The compressor options block, printed indented under "Compression":
	// written, as mksquashfs does, only when a setting is not the default.
	switch level := opts.Level; comp {
	case squashfs.Zstd:
		if level == 0 {
			level = squashfs.DefaultZstdLevel
		}
		if level != 15 {
			wantLines = append(wantLines, fmt.Sprintf("compression-level %d", level))
		}
	case squashfs.Gzip:
		if level != 0 && level != 9 {
			wantLines = append(wantLines, fmt.Sprintf("compression-level %d", level), "window-size 15")
		}
	case squashfs.XZ:
		if opts.XZBCJ {
			wantLines = append(wantLines, fmt.Sprintf("Dictionary size %d", max(block, 8192)), "Filters selected: x86")
		}
	}
	for _, l := range wantLines {
		if !lines[l] {
			t.Errorf("unsquashfs -s: no line %q in:\n%s", l, out)
		}
	}
	fi, err := os.Stat(image)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes != fi.Size() || st.Bytes%4096 != 0 {
		t.Errorf("Stats.Bytes = %d, image file is %d bytes; want equal and a multiple of 4096", st.Bytes, fi.Size())
	}
	if fsSize <= st.Bytes-4096 || fsSize > st.Bytes {
		t.Errorf("superblock says %d bytes used, Stats.Bytes (padded to 4 KiB) is %d", fsSize, st.Bytes)
	}
	if st.Inodes != uint32(c.inodes) {
		t.Errorf("Stats.Inodes = %d, tree has %d inodes", st.Inodes, c.inodes)
	}
	if st.ContentBytes != c.content {
		t.Errorf("Stats.ContentBytes = %d, tree has %d bytes of file content", st.ContentBytes, c.content)
	}
	if st.Duplicates != c.duplicates {
		t.Errorf("Stats.Duplicates = %d, tree has %d non-empty files whose content an earlier file already has", st.Duplicates, c.duplicates)
	}
	got := strings.TrimSpace(run(t, "unsquashfs", "-mkfs-time", image))
	if got != strconv.FormatUint(uint64(opts.ModTime), 10) {
		t.Errorf("unsquashfs -mkfs-time = %s, want Options.ModTime %d", got, opts.ModTime)
	}
}

// treeCensus is what the superblock and Stats count.
type treeCensus struct {
	inodes     int
	ids        int   // distinct uids and gids
	xattrSets  int   // distinct sets of xattrs (shared sets stored once)
	content    int64 // bytes of file content, each inode once
	duplicates int   // non-empty files whose content an earlier file already has
}

func census(want []wantEntry) treeCensus {
	var c treeCensus
	seen := map[*rootfs.Entry]bool{}
	ids := map[uint32]bool{}
	sets := map[string]bool{}
	sums := map[[32]byte]bool{}
	for _, w := range want {
		e := w.e
		if seen[e] {
			continue
		}
		seen[e] = true
		c.inodes++
		ids[e.UID], ids[e.GID] = true, true
		if len(e.Xattrs) > 0 {
			sets[xattrKey(e.Xattrs)] = true
		}
		if e.Type == rootfs.TypeFile && e.Size > 0 {
			c.content += e.Size
			if sums[w.sum] {
				c.duplicates++
			}
			sums[w.sum] = true
		}
	}
	c.ids, c.xattrSets = len(ids), len(sets)
	return c
}

func xattrKey(x map[string][]byte) string {
	names := make([]string, 0, len(x))
	for n := range x {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%q=%q;", n, x[n])
	}
	return b.String()
}

// extract unpacks image with unsquashfs into a new directory and returns it.
func extract(t testing.TB, image string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "root")
	run(t, "unsquashfs", "-no-progress", "-xattrs", "-d", dir, image)
	return dir
}

// fsCheck says which checks apply to a directory tree on a real filesystem.
type fsCheck struct {
	// holes: whole zero blocks must be holes, which unsquashfs makes only
	// for blocks the image stores as sparse.
	holes     bool
	blockSize int
}

// compareFS compares the tree with what root holds, through lstat, readlink,
// read and the xattr calls: for an unsquashfs extraction or a kernel mount.
func compareFS(t testing.TB, root string, want []wantEntry, how fsCheck) {
	t.Helper()
	r := &report{t: t}
	defer r.done()
	inodeOf := map[*rootfs.Entry]uint64{}
	entryOf := map[uint64]*rootfs.Entry{}
	pathOf := map[*rootfs.Entry]string{}
	for _, w := range want {
		p := filepath.Join(root, w.path)
		e := w.e
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			r.errorf("%q: %v", w.path, err)
			continue
		}
		if got, want := st.Mode&unix.S_IFMT, ifmt(e.Type); got != want {
			r.errorf("%q: file type %#o, want %#o (%s)", w.path, got, want, e.Type)
			continue
		}
		// Linux gives every symlink 0777, whatever the image says.
		if got := st.Mode & 0o7777; e.Type != rootfs.TypeSymlink && got != e.Mode {
			r.errorf("%q: mode %#o, want %#o", w.path, got, e.Mode)
		}
		if st.Uid != e.UID || st.Gid != e.GID {
			r.errorf("%q: owner %d:%d, want %d:%d", w.path, st.Uid, st.Gid, e.UID, e.GID)
		}
		if st.Mtim.Sec != e.Mtime {
			r.errorf("%q: mtime %d, want %d", w.path, st.Mtim.Sec, e.Mtime)
		}
		if e.Type != rootfs.TypeDir {
			if st.Nlink != uint64(w.names) {
				r.errorf("%q: %d links, want %d", w.path, st.Nlink, w.names)
			}
			if other, ok := entryOf[st.Ino]; ok && other != e {
				r.errorf("%q: inode %d is also %q, a different entry in the tree", w.path, st.Ino, pathOf[other])
			}
			if ino, ok := inodeOf[e]; ok && ino != st.Ino {
				r.errorf("%q: inode %d, but its hard link %q is inode %d", w.path, st.Ino, pathOf[e], ino)
			}
			entryOf[st.Ino], inodeOf[e] = e, st.Ino
			if _, ok := pathOf[e]; !ok {
				pathOf[e] = w.path
			}
		}
		switch e.Type {
		case rootfs.TypeFile:
			if st.Size != e.Size {
				r.errorf("%q: size %d, want %d", w.path, st.Size, e.Size)
				break
			}
			if sum, err := fileSum(p); err != nil {
				r.errorf("%q: %v", w.path, err)
			} else if sum != w.sum {
				r.errorf("%q: content differs (sha256 %x, want %x)", w.path, sum, w.sum)
			}
			if how.holes && w.zeroBlocks > 0 {
				if dense := e.Size - int64(w.zeroBlocks*how.blockSize); st.Blocks*512 > dense+64<<10 {
					r.errorf("%q: %d bytes allocated for %d bytes with %d zero blocks: the zero blocks were not stored as sparse", w.path, st.Blocks*512, e.Size, w.zeroBlocks)
				}
			}
		case rootfs.TypeSymlink:
			if target, err := os.Readlink(p); err != nil {
				r.errorf("%q: %v", w.path, err)
			} else if target != e.Target {
				r.errorf("%q: symlink to %q, want %q", w.path, head(target, 100), head(e.Target, 100))
			}
			if st.Size != int64(len(e.Target)) {
				r.errorf("%q: symlink size %d, want %d", w.path, st.Size, len(e.Target))
			}
		case rootfs.TypeCharDev, rootfs.TypeBlockDev:
			if maj, mnr := unix.Major(st.Rdev), unix.Minor(st.Rdev); maj != e.Major || mnr != e.Minor {
				r.errorf("%q: device %d:%d, want %d:%d", w.path, maj, mnr, e.Major, e.Minor)
			}
		}
		if got, err := listXattrs(p); err != nil {
			r.errorf("%q: %v", w.path, err)
		} else if xattrKey(got) != xattrKey(e.Xattrs) {
			r.errorf("%q: xattrs %s, want %s", w.path, head(xattrKey(got), 300), head(xattrKey(e.Xattrs), 300))
		}
	}
	// Nothing beyond the tree: count what is there.
	var n int
	_ = filepath.WalkDir(root, func(string, fs.DirEntry, error) error { n++; return nil })
	if n != len(want) {
		r.errorf("%s holds %d paths, the tree %d", root, n, len(want))
	}
}

func ifmt(t rootfs.Type) uint32 {
	return map[rootfs.Type]uint32{
		rootfs.TypeDir: unix.S_IFDIR, rootfs.TypeFile: unix.S_IFREG, rootfs.TypeSymlink: unix.S_IFLNK,
		rootfs.TypeCharDev: unix.S_IFCHR, rootfs.TypeBlockDev: unix.S_IFBLK, rootfs.TypeFifo: unix.S_IFIFO,
		rootfs.TypeSocket: unix.S_IFSOCK,
	}[t]
}

func fileSum(p string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(p)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// listXattrs reads every xattr of p, not following a symlink. No xattrs is
// nil, to compare equal with an entry without xattrs.
func listXattrs(p string) (map[string][]byte, error) {
	size, err := unix.Llistxattr(p, nil)
	if errors.Is(err, unix.EOPNOTSUPP) {
		// The kernel answers so for some inodes of an image without an
		// xattr table, mksquashfs's too: there are none to list.
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("llistxattr: %w", err)
	}
	if size == 0 {
		return nil, nil
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, fmt.Errorf("llistxattr: %w", err)
	}
	x := map[string][]byte{}
	for _, name := range strings.Split(strings.TrimSuffix(string(buf[:size]), "\x00"), "\x00") {
		n, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			return nil, fmt.Errorf("lgetxattr %s: %w", name, err)
		}
		v := make([]byte, n)
		if n > 0 {
			if n, err = unix.Lgetxattr(p, name, v); err != nil {
				return nil, fmt.Errorf("lgetxattr %s: %w", name, err)
			}
		}
		x[name] = v[:n]
	}
	return x, nil
}

// mountImage loop-mounts image read-only and unmounts it at cleanup. It
// first mounts an image made by mksquashfs with the same compressor, so that
// a machine that cannot mount at all skips, while a kernel that mounts
// mksquashfs's image and refuses ours fails the test.
func mountImage(t *testing.T, image string, comp squashfs.Compression) string {
	t.Helper()
	requireRoot(t, "mounting")
	if err := probeMount(comp); err != nil {
		t.Skipf("cannot mount a squashfs (%s) made by mksquashfs here, so not ours either: %v", comp, err)
	}
	dir := t.TempDir()
	if err := mount(t, image, dir); err != nil {
		if strings.Contains(err.Error(), "failed to setup loop device") {
			t.Skipf("no loop device free right now (the machine's, not the image's, fault): %v", err)
		}
		t.Fatalf("the kernel refuses the image, though it mounts one of mksquashfs's: %v%s", err, kernelLog())
	}
	return dir
}

// probes remembers, per compressor, whether mksquashfs's image mounted.
var probes sync.Map // squashfs.Compression → probeResult

type probeResult struct{ err error }

func probeMount(comp squashfs.Compression) error {
	if r, ok := probes.Load(comp); ok {
		return r.(probeResult).err
	}
	err := func() error {
		if _, err := exec.LookPath("mksquashfs"); err != nil {
			return fmt.Errorf("mksquashfs not installed: %w", err)
		}
		tmp, err := os.MkdirTemp("", "keel-mount-probe-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		src, img, mnt := filepath.Join(tmp, "src"), filepath.Join(tmp, "probe.sqfs"), filepath.Join(tmp, "mnt")
		if err := errors.Join(os.Mkdir(src, 0o755), os.Mkdir(mnt, 0o755), os.WriteFile(filepath.Join(src, "f"), []byte("probe"), 0o644)); err != nil {
			return err
		}
		if out, err := exec.Command("mksquashfs", src, img, "-quiet", "-no-progress", "-comp", string(comp)).CombinedOutput(); err != nil {
			return fmt.Errorf("mksquashfs: %v: %s", err, out)
		}
		if out, err := exec.Command("mount", "-t", "squashfs", "-o", "loop,ro", img, mnt).CombinedOutput(); err != nil {
			return fmt.Errorf("mount -t squashfs -o loop,ro: %v: %s", err, bytes.TrimSpace(out))
		}
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			return fmt.Errorf("umount: %v: %s", err, out)
		}
		return nil
	}()
	probes.Store(comp, probeResult{err})
	return err
}

func mount(t *testing.T, image, dir string) error {
	out, err := exec.Command("mount", "-t", "squashfs", "-o", "loop,ro", image, dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mount -t squashfs -o loop,ro %s %s: %v: %s", image, dir, err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return nil
}

// kernelLog returns the kernel's last squashfs messages, which say why it
// refused an image; empty if dmesg cannot be read.
func kernelLog() string {
	out, err := exec.Command("dmesg").Output()
	if err != nil {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(strings.ToLower(l), "squashfs") {
			lines = append(lines, l)
		}
	}
	lines = lines[max(0, len(lines)-8):]
	if len(lines) == 0 {
		return ""
	}
	return "\nkernel log:\n" + strings.Join(lines, "\n")
}

// memImage is an in-memory io.WriterAt; the writer may call it from several
// goroutines at once, as io.WriterAt allows for disjoint ranges.
type memImage struct {
	mu  sync.Mutex
	buf []byte
}

func (m *memImage) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := int(off) + len(p); end > len(m.buf) {
		m.buf = append(m.buf, make([]byte, end-len(m.buf))...)
	}
	copy(m.buf[off:], p)
	return len(p), nil
}

// checkExportTable opens every entry by NFS file handle on a second, cold
// mount of the image. The kernel turns a handle's inode number into an inode
// through the export table (and a directory's parent through it too), which
// no other read path touches; the first mount's caches would hide a bad
// table, hence the second mount.
func checkExportTable(t *testing.T, image, first string, want []wantEntry) {
	t.Helper()
	r := &report{t: t}
	defer r.done()
	type probe struct {
		w   wantEntry
		h   unix.FileHandle
		ino uint64
	}
	var probes []probe
	for _, w := range want {
		p := filepath.Join(first, w.path)
		h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, p, 0)
		if err != nil {
			r.errorf("name_to_handle_at %q: %v", w.path, err)
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			r.errorf("%q: %v", w.path, err)
			continue
		}
		probes = append(probes, probe{w, h, st.Ino})
	}
	second := t.TempDir()
	if err := mount(t, image, second); err != nil {
		t.Fatalf("second mount: %v", err)
	}
	mfd, err := unix.Open(second, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(mfd)
	for _, p := range probes {
		fd, err := unix.OpenByHandleAt(mfd, p.h, unix.O_PATH)
		if err != nil {
			r.errorf("open_by_handle_at %q (inode %d): %v", p.w.path, p.ino, err)
			continue
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		unix.Close(fd)
		if err != nil {
			r.errorf("fstat %q by handle: %v", p.w.path, err)
			continue
		}
		if st.Ino != p.ino || st.Mode&unix.S_IFMT != ifmt(p.w.e.Type) || st.Uid != p.w.e.UID || st.Mtim.Sec != p.w.e.Mtime {
			r.errorf("%q by handle: inode %d, mode %#o, uid %d, mtime %d; want inode %d, a %s, uid %d, mtime %d",
				p.w.path, st.Ino, st.Mode, st.Uid, st.Mtim.Sec, p.ino, p.w.e.Type, p.w.e.UID, p.w.e.Mtime)
		}
	}
}
