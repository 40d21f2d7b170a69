package squashfs_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path"
	"path/filepath"
	"testing"

	"keel/rootfs"
	"keel/rootfs/squashfs"
)

// FuzzRoundTrip builds a small tree from the fuzzer's bytes, writes it and
// checks it with unsquashfs (superblock, listing and, as root, extraction)
// and, as root, through a kernel mount.
// Seeds live in testdata/fuzz/FuzzRoundTrip and run in every "go test".
func FuzzRoundTrip(f *testing.F) {
	requireUnsquashfs(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		tree, opts := fuzzTree(data)
		image := filepath.Join(t.TempDir(), "fuzz.sqfs")
		st, err := squashfs.WriteFile(context.Background(), image, tree, opts)
		if err != nil {
			t.Fatalf("WriteFile (%s, %d-byte blocks): %v", opts.Compression, opts.BlockSize, err)
		}
		want := expectations(t, tree, opts.BlockSize)
		t.Logf("%s, %d-byte blocks: %s", opts.Compression, opts.BlockSize, summary(want))
		checkSuperblock(t, image, want, opts, st)
		checkListing(t, image, want)
		requireRoot(t, "extracting")
		compareFS(t, extract(t, image), want, fsCheck{holes: true, blockSize: opts.BlockSize})
		mnt := mountImage(t, image, opts.Compression)
		compareFS(t, mnt, want, fsCheck{})
		if !opts.NoExport {
			checkExportTable(t, image, mnt, want)
		}
	})
}

// fuzzBytes hands out the fuzzer's input; past the end it reads zeros, so
// every input, however short, builds a valid tree.
type fuzzBytes struct{ b []byte }

func (s *fuzzBytes) more() bool { return len(s.b) > 0 }

func (s *fuzzBytes) byte() byte {
	if len(s.b) == 0 {
		return 0
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

// intn returns a number below n from two bytes.
func (s *fuzzBytes) intn(n int) int {
	return (int(s.byte())<<8 | int(s.byte())) % n
}

func (s *fuzzBytes) uint32() uint32 {
	return uint32(s.byte())<<24 | uint32(s.byte())<<16 | uint32(s.byte())<<8 | uint32(s.byte())
}

// These bound the work per input, to keep the fuzzer fast: entries, and
// content bytes in all.
const (
	fuzzMaxOps     = 64
	fuzzMaxContent = 1 << 20
)

// fuzzTree turns bytes into options and a tree. The first byte picks the
// options; then each operation adds an entry, a hard link, an xattr or
// changes metadata, so the fuzzer can reach any mix of them.
func fuzzTree(data []byte) (*rootfs.Tree, squashfs.Options) {
	s := &fuzzBytes{b: data}
	o := s.byte()
	opts := squashfs.Options{
		Compression: squashfs.Compressions[int(o&3)%3],
		NoExport:    o&0x08 != 0,
		BlockSize:   []int{4096, 8192, 128 << 10, 1 << 20}[o>>4&3],
		Workers:     1 + int(o>>6),
		ModTime:     s.uint32(),
	}
	opts.XZBCJ = opts.Compression == squashfs.XZ && o&0x04 != 0
	bs := opts.BlockSize

	tree := rootfs.New()
	dirs := []string{"/"}
	var nondirs []string
	var contents [][]byte
	content := 0
	for ops := 0; s.more() && ops < fuzzMaxOps; ops++ {
		op := s.byte() % 10
		parent := dirs[s.intn(len(dirs))]
		p := path.Join(parent, fuzzName(s))
		if _, exists := tree.Get(p); exists && op <= 7 {
			continue
		}
		e := &rootfs.Entry{Mode: 0o644}
		switch op {
		case 0:
			e.Type, e.Mode = rootfs.TypeDir, 0o755
		case 1, 2:
			b := fuzzContent(s, bs, contents)
			if content+len(b) > max(fuzzMaxContent, 2*bs) {
				b = b[:0]
			}
			content += len(b)
			contents = append(contents, b)
			e.Type, e.Size, e.Content = rootfs.TypeFile, int64(len(b)), rootfs.Bytes(b)
		case 3:
			// Targets from 1 to 4095 bytes, without NUL.
			n := 1 + s.intn(4095)
			c := s.byte() | 1
			t := make([]byte, n)
			for i := range t {
				t[i] = c + byte(i%7)
				if t[i] == 0 {
					t[i] = '.'
				}
			}
			e.Type, e.Mode, e.Target = rootfs.TypeSymlink, 0o777, string(t)
		case 4:
			e.Type = []rootfs.Type{rootfs.TypeCharDev, rootfs.TypeBlockDev}[s.byte()%2]
			e.Major, e.Minor = uint32(s.intn(4096)), s.uint32()&0xfffff
		case 5:
			e.Type = rootfs.TypeFifo
		case 6:
			e.Type = rootfs.TypeSocket
		case 7:
			if len(nondirs) == 0 {
				continue
			}
			if err := tree.Link(p, nondirs[s.intn(len(nondirs))]); err != nil {
				panic(err)
			}
			nondirs = append(nondirs, p)
			continue
		case 8:
			fuzzXattr(s, tree, dirs, nondirs)
			continue
		default:
			fuzzMeta(s, tree, dirs, nondirs)
			continue
		}
		if err := tree.Add(p, e); err != nil {
			panic(fmt.Sprintf("fuzzTree built an invalid tree: %v", err))
		}
		if e.Type == rootfs.TypeDir {
			dirs = append(dirs, p)
		} else {
			nondirs = append(nondirs, p)
		}
	}
	return tree, opts
}

// fuzzName returns a valid name: any bytes but NUL and '/', not "." or "..",
// from 1 to 255 bytes.
func fuzzName(s *fuzzBytes) string {
	n := 1 + int(s.byte()%24)
	if n == 24 {
		n = 255
	}
	b := make([]byte, n)
	for i := range b {
		c := s.byte()
		switch {
		case c == 0 || c == '/':
			c = 'a' + byte(i%26)
		}
		b[i] = c
	}
	if name := string(b); name == "." || name == ".." {
		return name + "_"
	}
	return string(b)
}

// fuzzContent returns file content shaped around the block size: empty,
// small, exactly a block, blocks and a tail, with whole zero blocks, or a
// copy of an earlier file's content.
func fuzzContent(s *fuzzBytes, bs int, earlier [][]byte) []byte {
	rng := rand.New(rand.NewPCG(uint64(s.byte()), 0))
	fill := func(b []byte) {
		switch rng.IntN(3) {
		case 0:
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
		case 1:
			for i := range b {
				b[i] = "keel squashfs "[i%14]
			}
		}
	}
	var b []byte
	switch s.byte() % 6 {
	case 0:
	case 1:
		b = make([]byte, 1+s.intn(3*bs/2))
		fill(b)
	case 2:
		b = make([]byte, bs)
		fill(b)
	case 3:
		b = make([]byte, (1+s.intn(8))*bs+s.intn(bs))
		fill(b)
	case 4:
		blocks, mask := 1+s.intn(8), s.byte()
		b = make([]byte, blocks*bs+s.intn(bs))
		for i := range blocks {
			if mask&(1<<i) != 0 {
				fill(b[i*bs : (i+1)*bs])
			}
		}
		fill(b[blocks*bs:])
	default:
		if len(earlier) > 0 {
			return earlier[s.intn(len(earlier))]
		}
	}
	return b
}

// fuzzXattr sets an xattr on an existing entry. user.* goes only where Linux
// allows it, on files and directories; elsewhere it becomes trusted.*.
func fuzzXattr(s *fuzzBytes, tree *rootfs.Tree, dirs, nondirs []string) {
	p := pickPath(s, dirs, nondirs)
	e, _ := tree.Get(p)
	prefix := []string{"user.", "trusted.", "security."}[s.byte()%3]
	if prefix == "user." && e.Type != rootfs.TypeFile && e.Type != rootfs.TypeDir {
		prefix = "trusted."
	}
	name := make([]byte, 1+s.byte()%16)
	for i := range name {
		name[i] = s.byte()
		if name[i] == 0 {
			name[i] = '0'
		}
	}
	if len(e.Xattrs) >= 6 || prefix+string(name) == "security.capability" {
		return // ext4 holds about 4 KiB of xattrs, and capabilities must be well-formed
	}
	value := make([]byte, s.intn(128))
	for i := range value {
		value[i] = s.byte()
	}
	// A fresh map: the entry may share its map with others.
	x := map[string][]byte{prefix + string(name): value}
	for k, v := range e.Xattrs {
		x[k] = v
	}
	e.Xattrs = x
}

func fuzzMeta(s *fuzzBytes, tree *rootfs.Tree, dirs, nondirs []string) {
	e, _ := tree.Get(pickPath(s, dirs, nondirs))
	if e.Type != rootfs.TypeSymlink {
		e.Mode = uint32(s.intn(0o10000))
	}
	ids := []uint32{0, 1, 1000, 65534, 100000, 1 << 24}
	e.UID, e.GID = ids[s.byte()%6], ids[s.byte()%6]
	e.Mtime = int64(s.uint32() & 0x7fffffff)
}

func pickPath(s *fuzzBytes, dirs, nondirs []string) string {
	i := s.intn(len(dirs) + len(nondirs))
	if i < len(dirs) {
		return dirs[i]
	}
	return nondirs[i-len(dirs)]
}

// summary counts a tree's inodes by type, with its links and xattrs, so the
// log shows what a seed exercises.
func summary(want []wantEntry) string {
	types := map[rootfs.Type]int{}
	seen := map[*rootfs.Entry]bool{}
	var links, xattrs, sparse int
	for _, w := range want {
		if seen[w.e] {
			links++
			continue
		}
		seen[w.e] = true
		types[w.e.Type]++
		xattrs += len(w.e.Xattrs)
		if w.zeroBlocks > 0 {
			sparse++
		}
	}
	return fmt.Sprintf("%v, %d hard links, %d xattrs, %d sparse files", types, links, xattrs, sparse)
}
