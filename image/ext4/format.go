package ext4

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
)

// ErrTooSmall is returned when the size cannot hold the filesystem.
var ErrTooSmall = errors.New("filesystem too small")

// Options are every input of Format: nothing comes from the clock or from
// randomness.
type Options struct {
	UUID     [16]byte // filesystem UUID (also the journal's)
	HashSeed [16]byte // s_hash_seed for dir_index (htree) hashes
	Label    string   // volume label, at most 16 bytes
	Time     int64    // seconds since the epoch, for every timestamp
	// BlockSize is 1024, 2048 or 4096; 0 means 4096.
	BlockSize int
	// BytesPerInode sets the inode count (one per this many bytes, as
	// mke2fs -i); 0 means 16384.
	BytesPerInode    int
	RootUID, RootGID uint32 // owner of the root directory
	// Dirs are empty directories to create; a parent must be listed too.
	Dirs []Dir
	// NoJournal leaves the journal out (an ext2-style filesystem mounted
	// as ext4), for filesystems too small for one.
	NoJournal bool
	// AssumeZeroed says w already reads as zeros (a new sparse file), so
	// blocks that are all zero are not written.
	AssumeZeroed bool
}

// Dir is an empty directory to create.
type Dir struct {
	Path     string // slash-separated, relative to the root: "log", "lib/systemd"
	Mode     uint32 // permission bits, including setuid/setgid/sticky: 0o755, 0o1777
	UID, GID uint32
}

// dirNode is a directory we write: root, lost+found or one of Options.Dirs.
type dirNode struct {
	ino      uint32
	parent   uint32
	inode    inode
	children []dirent
	block    []byte // the first directory block, with every entry
}

// plan is everything decided before the first write.
type plan struct {
	opts          Options
	geo           *geometry
	alloc         allocator
	dirs          []*dirNode // root, lost+found, then Options.Dirs sorted
	journal       *inode
	journalIBlock [60]byte
	usedInodes    uint32 // inodes 1..usedInodes are in use, all in group 0
}

// Format writes an empty ext4 filesystem of size bytes at offset 0 of w.
// The filesystem ends at the last whole block, or earlier when the last
// group would be too small to be worth having (see newGeometry); what lies
// past its end is not touched.
func Format(w io.WriterAt, size int64, opts Options) error {
	p, err := newPlan(size, opts)
	if err != nil {
		return fmt.Errorf("formatting ext4: %w", err)
	}
	if err := p.write(w); err != nil {
		return fmt.Errorf("formatting ext4: %w", err)
	}
	return nil
}

func newPlan(size int64, opts Options) (*plan, error) {
	if opts.BlockSize == 0 {
		opts.BlockSize = 4096
	}
	if opts.BytesPerInode == 0 {
		opts.BytesPerInode = 16384
	}
	switch opts.BlockSize {
	case 1024, 2048, 4096:
	default:
		return nil, fmt.Errorf("block size %d: want 1024, 2048 or 4096", opts.BlockSize)
	}
	if opts.BytesPerInode < opts.BlockSize || opts.BytesPerInode > 1<<26 {
		return nil, fmt.Errorf("bytes per inode %d: want %d to %d", opts.BytesPerInode, opts.BlockSize, 1<<26)
	}
	if len(opts.Label) > 16 {
		return nil, fmt.Errorf("label %q is %d bytes, at most 16 fit", opts.Label, len(opts.Label))
	}
	// Inode times reach 2446 (32 signed bits plus 2 epoch bits); times
	// before 1970 are refused since no build has a reason for them.
	if opts.Time < 0 || opts.Time >= 3<<32+1<<31 {
		return nil, fmt.Errorf("time %d is outside what ext4 inodes hold (1970 to 2446)", opts.Time)
	}
	dirs, err := sortDirs(opts.Dirs)
	if err != nil {
		return nil, err
	}
	bs := uint32(opts.BlockSize)
	geo, err := newGeometry(size, bs, int64(opts.BytesPerInode), firstIno+uint32(len(dirs)))
	if err != nil {
		return nil, err
	}
	p := &plan{opts: opts, geo: geo, alloc: allocator{g: geo}, usedInodes: firstIno + uint32(len(dirs))}
	if err := p.planDirs(dirs); err != nil {
		return nil, err
	}
	if !opts.NoJournal {
		if err := p.planJournal(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// sortDirs validates Options.Dirs and sorts them by path, so that the
// result does not depend on the caller's order and every parent comes
// before its children.
func sortDirs(in []Dir) ([]Dir, error) {
	dirs := append([]Dir(nil), in...)
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].Path < dirs[j].Path })
	seen := map[string]bool{"": true, "lost+found": true}
	for _, d := range dirs {
		if !fs.ValidPath(d.Path) || d.Path == "." {
			return nil, fmt.Errorf("directory %q: want a clean relative path", d.Path)
		}
		if seen[d.Path] {
			return nil, fmt.Errorf("directory %q: listed twice or reserved", d.Path)
		}
		parent, name := splitPath(d.Path)
		if !seen[parent] {
			return nil, fmt.Errorf("directory %q: parent %q is not listed", d.Path, parent)
		}
		if len(name) > 255 {
			return nil, fmt.Errorf("directory %q: name longer than 255 bytes", d.Path)
		}
		if d.Mode&^0o7777 != 0 {
			return nil, fmt.Errorf("directory %q: mode %#o has bits other than permissions", d.Path, d.Mode)
		}
		seen[d.Path] = true
	}
	return dirs, nil
}

func splitPath(p string) (parent, name string) {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return "", p
}

// planDirs numbers the directories (root 2, lost+found 11, then 12, 13, ...
// in path order) and allocates their blocks: one each, and 16 KiB for
// lost+found, so that e2fsck can reconnect files without allocating.
func (p *plan) planDirs(dirs []Dir) error {
	bs := p.geo.blockSize
	root := &dirNode{ino: rootIno, parent: rootIno, inode: inode{
		mode: modeDir | 0o755, uid: p.opts.RootUID, gid: p.opts.RootGID}}
	lpf := &dirNode{ino: lpfIno, parent: rootIno, inode: inode{mode: modeDir | 0o700}}
	root.children = append(root.children, dirent{lpfIno, "lost+found"})
	byPath := map[string]*dirNode{"": root}
	p.dirs = []*dirNode{root, lpf}
	for i, d := range dirs {
		parent, name := splitPath(d.Path)
		pn := byPath[parent]
		n := &dirNode{ino: firstIno + 1 + uint32(i), parent: pn.ino, inode: inode{
			mode: modeDir | uint16(d.Mode), uid: d.UID, gid: d.GID}}
		pn.children = append(pn.children, dirent{n.ino, name})
		byPath[d.Path] = n
		p.dirs = append(p.dirs, n)
	}
	// mke2fs grows lost+found to 16 KiB and at least 2 blocks, but
	// only within the 12 direct blocks: 12 KiB with 1 KiB blocks.
	lpfBlocks := min(max(16384/bs, 2), 12)
	for _, d := range p.dirs {
		n := uint32(1)
		if d.ino == lpfIno {
			n = lpfBlocks
		}
		runs, err := p.alloc.alloc(n)
		if err != nil {
			return err
		}
		d.inode.runs = runs
		d.inode.size = uint64(n) * uint64(bs)
		// Entries are encoded now so that a directory too full for one
		// block is an error before anything is written.
		ents := append([]dirent{{d.ino, "."}, {d.parent, ".."}}, d.children...)
		if d.block, err = dirBlock(bs, ents); err != nil {
			return fmt.Errorf("directory inode %d: %w", d.ino, err)
		}
		// "." and the parent's entry, plus each subdirectory's "..".
		d.inode.links = uint16(2 + len(d.children))
	}
	return nil
}

// planJournal allocates the journal where mke2fs puts it: from the start
// of the group in the middle of the filesystem, or of a neighbour with more
// free blocks (one without a superblock backup); in group 0 of a
// one-group filesystem that is right after the directories. A journal that
// crosses too many group boundaries for the four extents in the inode gets
// a leaf block, allocated after it.
func (p *plan) planJournal() error {
	g := p.geo
	n := journalBlocks(g.blocks)
	if n == 0 {
		return fmt.Errorf("%w: %d blocks is too small for a journal (2048 needed); set NoJournal", ErrTooSmall, g.blocks)
	}
	// get_midpoint_journal_block, without flex_bg.
	mid := g.groupOf((g.blocks - g.firstDataBlock) / 2)
	best := mid - min(mid, 1)
	for i := best + 1; i <= min(mid+1, g.groups-1); i++ {
		if p.freeBlocks(i) > p.freeBlocks(best) {
			best = i
		}
	}
	p.alloc.seek(best)
	runs, err := p.alloc.alloc(n)
	if err != nil {
		return fmt.Errorf("journal of %d blocks: %w", n, err)
	}
	j := &inode{mode: modeReg | 0o600, links: 1, size: uint64(n) * uint64(g.blockSize), runs: runs}
	if len(runs) > inlineExtents {
		leaf, err := p.alloc.alloc(1)
		if err != nil {
			return fmt.Errorf("journal extent block: %w", err)
		}
		j.leaf = leaf[0].start
	}
	ino := make([]byte, inodeSize)
	if err := j.encode(ino, g.blockSize, p.opts.Time); err != nil {
		return fmt.Errorf("journal inode: %w", err)
	}
	copy(p.journalIBlock[:], ino[0x28:])
	p.journal = j
	return nil
}
