package squashfs_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"strings"
	"testing"
	"testing/iotest"

	"keel/rootfs"
	"keel/rootfs/squashfs"
)

// fixtureBlock is the block size the fixture's file sizes are chosen around:
// the writer's default, which the round-trip tests use.
const fixtureBlock = squashfs.DefaultBlockSize

// fixtureConfig sizes the generated tree. Every shape the writer must handle
// is present whatever the sizes; the sizes only decide how much content the
// compressors have to chew through.
type fixtureConfig struct {
	seed      uint64
	bigFiles  int // files over 1 MiB
	bulkFiles int // randomly sized files spread over the tree
	bulkMax   int // the largest bulk file
	dupGroups int // sets of files with identical content
}

// fullFixture has more than 10,000 inodes and about 35 MB of content.
var fullFixture = fixtureConfig{seed: 1, bigFiles: 4, bulkFiles: 5200, bulkMax: 2*fixtureBlock + 5000, dupGroups: 15}

// smallFixture has the same shapes and as many inodes (over 10,000, the
// 3000-entry directory too) with far less content, for gzip and xz, whose
// pure-Go encoders are an order of magnitude slower than zstd's, to keep the
// package's tests within a minute on two cores.
var smallFixture = fixtureConfig{seed: 2, bigFiles: 1, bulkFiles: 5200, bulkMax: 1500, dupGroups: 5}

// Owners and device numbers worth having: 0, typical users, nobody, a
// subordinate-uid range value, and values that do not fit 16 bits.
var (
	fixtureIDs     = []uint32{0, 0, 0, 1000, 1000, 65534, 100000, 123456789}
	fixtureModes   = []uint32{0o644, 0o644, 0o755, 0o600, 0o400, 0o444, 0o4755, 0o2755, 0o6755, 0o1777, 0o7777, 0o000}
	fixtureDirMode = []uint32{0o755, 0o755, 0o700, 0o555, 0o1777, 0o2775, 0o3777}
	fixtureDevices = [][2]uint32{{0, 0}, {1, 3}, {8, 1}, {259, 300}, {254, 256}, {300, 5}, {4095, 1048575}, {511, 65536}}
)

// fileCapability is a valid VFS_CAP_REVISION_2 security.capability value
// (cap_net_bind_service+ep): the kernel refuses malformed ones on extraction.
var fileCapability = []byte{1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// specialNames are names that break naive encoders: spaces, control
// characters, invalid UTF-8, the " -> " that unsquashfs prints before a
// symlink target, and the 255-byte limit in ASCII, 2-byte and 3-byte UTF-8.
var specialNames = []string{
	"with space", " leading-space", "trailing-space ", ".hidden", "-dash",
	"tab\tname", "new\nline", "日本語のファイル名", "emoji-🙂", "back\\slash",
	"glob*?[x]", "a -> b", "\xff\xfe-not-utf8", "%s%n", "UPPER", "upper",
	strings.Repeat("n", 255),
	strings.Repeat("é", 127) + "x",
	strings.Repeat("語", 85),
}

// fixture builds a tree deterministically from cfg.seed.
type fixture struct {
	t     testing.TB
	cfg   fixtureConfig
	rng   *rand.Rand
	tree  *rootfs.Tree
	dirs  []string // directories that random entries may land in
	files []string // paths of regular files, for hard links and duplicates
	other []string // paths of non-directories that are not regular files
	sets  []map[string][]byte
	n     int
}

// buildFixture returns a tree with every entry type and every corner the
// writer has to encode. Two calls with the same config return equal trees.
func buildFixture(t testing.TB, cfg fixtureConfig) *rootfs.Tree {
	t.Helper()
	f := &fixture{t: t, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.seed, 0x6b65656c)), tree: rootfs.New()}
	root := f.tree.Root()
	root.Mode, root.UID, root.GID, root.Mtime = 0o750, 65534, 100000, 1700000000
	root.Xattrs = map[string][]byte{"user.root": []byte("on the root directory")}
	f.sharedXattrSets()
	f.dirTree(400)
	f.deepPath(40)
	f.sizes()
	f.sparse()
	f.big()
	f.names()
	f.devices()
	f.bigDir(3000)
	f.bulk(cfg.bulkFiles)
	f.symlinks(1200)
	f.specials(120)
	f.duplicates(cfg.dupGroups)
	f.hardLinks(300)
	return f.tree
}

func (f *fixture) add(p string, e *rootfs.Entry) {
	f.t.Helper()
	if _, ok := f.tree.Get(p); ok {
		f.t.Fatalf("fixture: %s added twice", p)
	}
	if err := f.tree.Add(p, e); err != nil {
		f.t.Fatalf("fixture: %v", err)
	}
	switch e.Type {
	case rootfs.TypeDir:
		f.dirs = append(f.dirs, p)
	case rootfs.TypeFile:
		f.files = append(f.files, p)
	default:
		f.other = append(f.other, p)
	}
}

// name returns a fresh name; the counter keeps names unique in any directory.
func (f *fixture) name(stem string) string {
	f.n++
	return fmt.Sprintf("%s-%05d", stem, f.n)
}

func (f *fixture) dir() string { return f.dirs[f.rng.IntN(len(f.dirs))] }

func (f *fixture) pick(xs []uint32) uint32 { return xs[f.rng.IntN(len(xs))] }

// meta fills in owners, a mode, a mtime and xattrs of the kind the entry type
// can carry on Linux: user.* only on files and directories.
func (f *fixture) meta(e *rootfs.Entry) *rootfs.Entry {
	e.UID, e.GID = f.pick(fixtureIDs), f.pick(fixtureIDs)
	switch e.Type {
	case rootfs.TypeDir:
		e.Mode = f.pick(fixtureDirMode)
	case rootfs.TypeSymlink:
		e.Mode = 0o777
	default:
		e.Mode = f.pick(fixtureModes)
	}
	// squashfs keeps 32-bit times; stay below 2^31 so no reader has to guess
	// at the sign.
	switch f.rng.IntN(20) {
	case 0:
		e.Mtime = 0
	case 1:
		e.Mtime = 1<<31 - 1
	default:
		e.Mtime = 946684800 + f.rng.Int64N(1<<30)
	}
	e.Xattrs = f.xattrs(e.Type)
	return e
}

func (f *fixture) sharedXattrSets() {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	f.sets = []map[string][]byte{
		{"user.mime_type": []byte("text/plain")},
		{"user.a": []byte("1"), "user.b": []byte("2"), "user.c": []byte("3")},
		{"trusted.overlay.opaque": []byte("y")},
		{"security.keel": binary, "user.empty": {}},
		{"user.big": bytes.Repeat([]byte("0123456789abcdef"), 96), "trusted.t": {0, 0, 0}},
	}
}

func (f *fixture) xattrs(typ rootfs.Type) map[string][]byte {
	userOK := typ == rootfs.TypeDir || typ == rootfs.TypeFile
	switch r := f.rng.IntN(10); {
	case r < 6:
		return nil
	case r < 8:
		s := f.sets[f.rng.IntN(len(f.sets))]
		if !userOK {
			return map[string][]byte{"trusted.shared": []byte("special files share this set")}
		}
		return s
	default:
		x := map[string][]byte{}
		for range 1 + f.rng.IntN(4) {
			prefix := []string{"user.", "trusted.", "security."}[f.rng.IntN(3)]
			if !userOK && prefix == "user." {
				prefix = "trusted."
			}
			v := make([]byte, f.rng.IntN(300))
			for i := range v {
				v[i] = byte(f.rng.Uint32())
			}
			x[prefix+f.name("x")] = v
		}
		return x
	}
}

func (f *fixture) dirTree(n int) {
	f.dirs = append(f.dirs, "/")
	for range n {
		parent := f.dir()
		if strings.Count(parent, "/") > 6 {
			parent = "/"
		}
		f.add(path.Join(parent, f.name("dir")), f.meta(&rootfs.Entry{Type: rootfs.TypeDir}))
	}
}

func (f *fixture) deepPath(levels int) {
	p := "/deep"
	f.add(p, f.meta(&rootfs.Entry{Type: rootfs.TypeDir}))
	for i := 1; i <= levels; i++ {
		p = path.Join(p, fmt.Sprintf("level%02d", i))
		f.add(p, f.meta(&rootfs.Entry{Type: rootfs.TypeDir}))
	}
	f.add(p+"/bottom.txt", f.meta(f.file(f.text(5000))))
	f.add(p+"/up", &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: strings.Repeat("../", levels+1)})
}

// sizes are the boundaries of block and fragment handling.
func (f *fixture) sizes() {
	const b = fixtureBlock
	f.add("/sizes", &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755})
	for _, s := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one-byte", []byte{'x'}},
		{"block-minus-one", f.text(b - 1)},
		{"one-block-text", f.text(b)},
		{"one-block-random", f.random(b)},
		{"one-block-zeros", make([]byte, b)},
		{"block-plus-one", f.text(b + 1)},
		{"two-blocks", f.random(2 * b)},
		{"three-blocks-and-tail", f.text(3*b + 777)},
		{"random-tail", f.random(b + 4000)},
		{"mixed-blocks", append(append(f.text(b), f.random(b)...), f.text(b/2)...)},
	} {
		f.add("/sizes/"+s.name, f.meta(f.file(s.data)))
	}
}

// sparse files have whole zero blocks, which squashfs stores as holes.
func (f *fixture) sparse() {
	const b = fixtureBlock
	f.add("/sparse", &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755})
	zero := func(n int) []byte { return make([]byte, n) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, s := range []struct {
		name string
		data []byte
	}{
		{"hole-in-middle", cat(f.random(b), zero(2*b), f.text(b), f.random(3000))},
		{"leading-hole", cat(zero(b), f.text(b+10))},
		{"trailing-hole", cat(f.text(b), zero(b))},
		{"all-zero", zero(4*b + 100)},
		{"zero-tail", cat(f.text(2*b), zero(500))},
		{"almost-zero-block", cat(zero(b-1), []byte{1}, zero(b))},
		{"holes-everywhere", cat(zero(b), f.text(b), zero(b), f.random(b), zero(b), []byte("tail"))},
	} {
		f.add("/sparse/"+s.name, f.meta(f.file(s.data)))
	}
	// A nil Opener stands for Size zero bytes.
	f.add("/sparse/nil-content", f.meta(&rootfs.Entry{Type: rootfs.TypeFile, Size: 3*b + 10}))
	f.add("/sparse/nil-content-small", f.meta(&rootfs.Entry{Type: rootfs.TypeFile, Size: 10}))
}

func (f *fixture) big() {
	f.add("/big", &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755})
	sizes := []int{1<<20 + 1, 2 << 20, 3<<20 + 12345, 1<<20 + 3*fixtureBlock/2}
	for i := range f.cfg.bigFiles {
		s := sizes[i%len(sizes)]
		var data []byte
		if i%2 == 0 {
			data = f.text(s)
		} else {
			data = append(f.random(s/2), f.text(s-s/2)...)
		}
		f.add(fmt.Sprintf("/big/file%d", i), f.meta(f.file(data)))
	}
}

func (f *fixture) names() {
	f.add("/names", &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755})
	for i, n := range specialNames {
		var e *rootfs.Entry
		switch i % 3 {
		case 0:
			e = f.file(f.text(i * 100))
		case 1:
			e = &rootfs.Entry{Type: rootfs.TypeDir}
		default:
			e = &rootfs.Entry{Type: rootfs.TypeSymlink, Target: n}
		}
		f.add("/names/"+n, f.meta(e))
	}
	for _, n := range []int{1, 2, 60, 255, 256, 1000, 4000, 4095} {
		target := strings.Repeat("t/", n/2) + strings.Repeat("x", n%2)
		f.add(fmt.Sprintf("/names/target-%d", n), &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: target})
	}
	// squashfs times are unsigned 32-bit: past 2038 and up to 2106.
	for _, mtime := range []int64{1<<31 + 1, 3000000000, 1<<32 - 1} {
		f.add(fmt.Sprintf("/names/mtime-%d", mtime), &rootfs.Entry{Type: rootfs.TypeFifo, Mode: 0o644, Mtime: mtime})
	}
	f.add("/names/odd-symlink-mode", &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o755, UID: 1000, Target: "x"})
	f.add("/names/capability", &rootfs.Entry{Type: rootfs.TypeFile, Mode: 0o755, Size: 4, Content: rootfs.Bytes([]byte("bin\n")),
		Xattrs: map[string][]byte{"security.capability": fileCapability, "user.note": []byte("ping")}})
}

func (f *fixture) devices() {
	f.add("/dev", &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755})
	for _, d := range fixtureDevices {
		for _, typ := range []rootfs.Type{rootfs.TypeCharDev, rootfs.TypeBlockDev} {
			e := f.meta(&rootfs.Entry{Type: typ, Major: d[0], Minor: d[1]})
			f.add(fmt.Sprintf("/dev/%s-%d-%d", map[rootfs.Type]string{rootfs.TypeCharDev: "c", rootfs.TypeBlockDev: "b"}[typ], d[0], d[1]), e)
		}
	}
	f.add("/dev/fifo", f.meta(&rootfs.Entry{Type: rootfs.TypeFifo}))
	f.add("/dev/socket", f.meta(&rootfs.Entry{Type: rootfs.TypeSocket}))
}

// bigDir needs a directory index: its listing spans many metadata blocks.
func (f *fixture) bigDir(n int) {
	f.add("/many", f.meta(&rootfs.Entry{Type: rootfs.TypeDir}))
	for i := range n {
		// Names of varying length, so entries do not line up with blocks.
		name := fmt.Sprintf("entry-%04d-%s", i, strings.Repeat("z", f.rng.IntN(40)))
		var e *rootfs.Entry
		switch r := f.rng.IntN(100); {
		case r < 50:
			e = f.file(nil)
		case r < 80:
			e = f.file(f.text(f.rng.IntN(200)))
		case r < 92:
			e = &rootfs.Entry{Type: rootfs.TypeSymlink, Target: name}
		case r < 96:
			e = &rootfs.Entry{Type: rootfs.TypeFifo}
		case r < 99:
			e = &rootfs.Entry{Type: rootfs.TypeCharDev, Major: uint32(i % 4096), Minor: uint32(i)}
		default:
			e = &rootfs.Entry{Type: rootfs.TypeDir}
		}
		f.add("/many/"+name, f.meta(e))
	}
}

func (f *fixture) bulk(n int) {
	for range n {
		var size int
		switch r := f.rng.IntN(100); {
		case r < 25:
			size = 0
		case r < 85:
			size = 1 + f.rng.IntN(min(4000, f.cfg.bulkMax))
		case r < 99:
			size = f.rng.IntN(min(20000, f.cfg.bulkMax))
		default:
			size = f.rng.IntN(f.cfg.bulkMax)
		}
		var data []byte
		switch f.rng.IntN(4) {
		case 0:
			data = f.random(size)
		default:
			data = f.text(size)
		}
		f.add(path.Join(f.dir(), f.name("file")), f.meta(f.file(data)))
	}
}

func (f *fixture) symlinks(n int) {
	for range n {
		var target string
		switch f.rng.IntN(5) {
		case 0:
			target = "x"
		case 1:
			target = f.files[f.rng.IntN(len(f.files))]
		case 2:
			target = "../" + path.Base(f.dir())
		case 3:
			target = "/does/not/exist/" + f.name("nowhere")
		default:
			target = strings.Repeat("long/", 1+f.rng.IntN(800))
		}
		f.add(path.Join(f.dir(), f.name("link")), f.meta(&rootfs.Entry{Type: rootfs.TypeSymlink, Target: target}))
	}
}

func (f *fixture) specials(n int) {
	for i := range n {
		e := &rootfs.Entry{Type: []rootfs.Type{rootfs.TypeFifo, rootfs.TypeSocket, rootfs.TypeCharDev, rootfs.TypeBlockDev}[i%4]}
		if e.Type == rootfs.TypeCharDev || e.Type == rootfs.TypeBlockDev {
			d := fixtureDevices[f.rng.IntN(len(fixtureDevices))]
			e.Major, e.Minor = d[0], d[1]
		}
		f.add(path.Join(f.dir(), f.name("special")), f.meta(e))
	}
}

// duplicates are distinct inodes with identical content (and their own
// metadata), next to near-misses that a sloppy deduplicator would merge.
func (f *fixture) duplicates(groups int) {
	const b = fixtureBlock
	f.add("/dup", &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755})
	for g := range groups {
		var data []byte
		switch g % 5 {
		case 0:
			data = f.text(1 + f.rng.IntN(3000)) // fragment only
		case 1:
			data = f.random(b) // one full block
		case 2:
			data = f.text(b + f.rng.IntN(b)) // a block and a tail
		case 3:
			data = append(make([]byte, b), f.text(100)...) // sparse block and a tail
		default:
			data = f.random(2*b + 1)
		}
		for c := range 2 + f.rng.IntN(2) {
			dir := "/dup"
			if c > 0 {
				dir = f.dir()
			}
			f.add(path.Join(dir, f.name(fmt.Sprintf("dup%02d", g))), f.meta(f.file(data)))
		}
		if g%2 == 0 {
			near := bytes.Clone(data)
			near[len(near)-1] ^= 1
			f.add(path.Join("/dup", f.name(fmt.Sprintf("near%02d", g))), f.meta(f.file(near)))
			f.add(path.Join("/dup", f.name(fmt.Sprintf("prefix%02d", g))), f.meta(f.file(data[:len(data)-1])))
		}
	}
}

// hardLinks gives existing entries more names, in other directories, so a
// group's names are far apart in the walk order.
func (f *fixture) hardLinks(groups int) {
	f.add("/links", &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755})
	for g := range groups {
		var src string
		if g%10 == 9 {
			src = f.other[f.rng.IntN(len(f.other))] // symlinks, devices, fifos and sockets can be linked too
		} else {
			src = f.files[f.rng.IntN(len(f.files))]
		}
		extra := 1 + f.rng.IntN(4)
		for i := range extra {
			dir := f.dir()
			if i == 0 {
				dir = "/links"
			}
			if err := f.tree.Link(path.Join(dir, f.name("hardlink")), src); err != nil {
				f.t.Fatalf("fixture: %v", err)
			}
		}
	}
}

// file returns a file entry over data. Some files hand out their content in
// short reads, or with io.EOF on the last chunk, as real readers do.
func (f *fixture) file(data []byte) *rootfs.Entry {
	e := &rootfs.Entry{Type: rootfs.TypeFile, Mode: 0o644, Size: int64(len(data))}
	if len(data) == 0 && f.rng.IntN(2) == 0 {
		return e // nil Content means Size zero bytes
	}
	switch f.rng.IntN(6) {
	case 0:
		e.Content = func() (io.ReadCloser, error) {
			return io.NopCloser(iotest.HalfReader(bytes.NewReader(data))), nil
		}
	case 1:
		e.Content = func() (io.ReadCloser, error) {
			return io.NopCloser(iotest.DataErrReader(bytes.NewReader(data))), nil
		}
	default:
		e.Content = rootfs.Bytes(data)
	}
	return e
}

var words = strings.Fields(`squashfs inode block fragment directory index xattr
	kernel keel image slot boot entry root data the of and a to in is that for
	it with as was on be by this are or from at which but not have has had`)

// text is compressible content.
func (f *fixture) text(n int) []byte {
	var b bytes.Buffer
	b.Grow(n + 16)
	for b.Len() < n {
		b.WriteString(words[f.rng.IntN(len(words))])
		if f.rng.IntN(12) == 0 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

// random is incompressible content, which the writer stores uncompressed.
func (f *fixture) random(n int) []byte {
	b := make([]byte, n+7)
	for i := 0; i < n; i += 8 {
		v := f.rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b[:n]
}

// TestFixture checks that the fixture has what the round-trip tests rely on,
// so a change to the generator cannot quietly drop a case.
func TestFixture(t *testing.T) {
	tree := buildFixture(t, fullFixture)
	entries := map[*rootfs.Entry][]string{}
	types := map[rootfs.Type]int{}
	var bigDir, deepest, maxTarget int
	var modes []uint32
	if err := tree.Walk(func(p string, e *rootfs.Entry) error {
		if _, ok := entries[e]; !ok {
			types[e.Type]++
		}
		entries[e] = append(entries[e], p)
		deepest = max(deepest, strings.Count(p, "/"))
		maxTarget = max(maxTarget, len(e.Target))
		if e.Type == rootfs.TypeDir {
			bigDir = max(bigDir, len(tree.Children(p)))
		}
		modes = append(modes, e.Mode)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var groups3 int
	for _, names := range entries {
		dirs := map[string]bool{}
		for _, n := range names {
			dirs[path.Dir(n)] = true
		}
		if len(names) >= 3 && len(dirs) >= 3 {
			groups3++
		}
	}
	checks := []struct {
		what      string
		got, want int
	}{
		{"inodes", len(entries), 10000},
		{"entries in the largest directory", bigDir, 3000},
		{"depth", deepest, 40},
		{"longest symlink target", maxTarget, 4000},
		{"hard-link groups of 3+ names in 3+ directories", groups3, 20},
	}
	for _, typ := range []rootfs.Type{rootfs.TypeDir, rootfs.TypeFile, rootfs.TypeSymlink, rootfs.TypeCharDev, rootfs.TypeBlockDev, rootfs.TypeFifo, rootfs.TypeSocket} {
		checks = append(checks, struct {
			what      string
			got, want int
		}{typ.String() + "s", types[typ], 10})
	}
	for _, c := range checks {
		if c.got < c.want {
			t.Errorf("fixture has %d %s, want at least %d", c.got, c.what, c.want)
		}
	}
	for _, m := range []uint32{0o4755, 0o2755, 0o1777} {
		found := false
		for _, got := range modes {
			found = found || got == m
		}
		if !found {
			t.Errorf("fixture has no entry with mode %#o", m)
		}
	}
	t.Logf("fixture: %d paths, %d inodes, %v", tree.Len(), len(entries), types)
}
