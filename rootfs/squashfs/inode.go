package squashfs

import (
	"fmt"
	"math"
	"path"

	"keel/rootfs"
)

// dirEntry is one name in a directory listing.
type dirEntry struct {
	name   string
	ref    uint64
	number uint32
	typ    uint16
}

// writeDir writes the inodes below dir, then dir's listing, then dir's own
// inode, and returns its reference. Children come first because a listing
// holds the references of the inodes it names.
func (b *builder) writeDir(dir string, parent uint32) (uint64, error) {
	e, _ := b.tree.Get(dir)
	in := b.inodes[e]
	names := b.tree.Children(dir)
	ents := make([]dirEntry, 0, len(names))
	for _, name := range names {
		p := path.Join(dir, name)
		ce, _ := b.tree.Get(p)
		cin := b.inodes[ce]
		var ref uint64
		var err error
		if ce.Type == rootfs.TypeDir {
			ref, err = b.writeDir(p, in.number)
		} else {
			ref, err = b.writeInode(cin)
		}
		if err != nil {
			return 0, err
		}
		ents = append(ents, dirEntry{name: name, ref: ref, number: cin.number, typ: basicType(ce.Type)})
	}

	start := b.dirTab.pos()
	listing, index := encodeListing(ents)
	b.dirTab.Write(listing)
	blk, off := b.dirTab.ref(start)
	size := uint64(len(listing)) + 3 // the kernel counts "." and ".." as 3 bytes

	ext := in.xattr != invalidXattr || len(index) > 0 || size > math.MaxUint16
	if size > math.MaxUint32 {
		return 0, fmt.Errorf("%s: directory listing too large for squashfs", dir)
	}
	var buf le
	if !ext {
		buf = b.header(buf, typeDir, in)
		buf = buf.u32(blk).u32(in.nlink).u16(uint16(size)).u16(off).u32(parent)
	} else {
		buf = b.header(buf, typeDir+typeExtOff, in)
		buf = buf.u32(in.nlink).u32(uint32(size)).u32(blk).u32(parent).
			u16(uint16(len(index))).u16(off).u32(in.xattr)
		for _, ix := range index {
			ib, _ := b.dirTab.ref(start + uint64(ix.pos))
			buf = buf.u32(ix.pos).u32(ib).u32(uint32(len(ix.name) - 1))
			buf = append(buf, ix.name...)
		}
	}
	return b.putInode(in, buf), nil
}

type dirIndex struct {
	pos  uint32 // offset of a header in the listing
	name string // first name under that header
}

// encodeListing encodes a sorted directory as headers and entries. A header
// covers up to 256 entries whose inodes share a metadata block and whose
// numbers are within ±32767 of its base. As in mksquashfs, a new header (and
// an index entry for it) starts whenever the bytes since the last indexed
// header would pass one metadata block, so a lookup can jump near its name.
func encodeListing(ents []dirEntry) ([]byte, []dirIndex) {
	var out le
	var index []dirIndex
	countAt := -1 // offset of the current header's count field
	var count, base uint32
	var block uint32
	lastIndex := 0
	for _, d := range ents {
		eblock := uint32(d.ref >> 16)
		entSize := 8 + len(d.name)
		delta := int64(d.number) - int64(base)
		crosses := len(out)+entSize-lastIndex > metadataSize
		if countAt < 0 || count == 256 || eblock != block || delta > 32767 || delta < -32768 || crosses {
			if countAt >= 0 && crosses {
				index = append(index, dirIndex{pos: uint32(len(out)), name: d.name})
				lastIndex = len(out)
			}
			countAt = len(out)
			count, base, block = 0, d.number, eblock
			out = out.u32(0).u32(block).u32(base)
			delta = 0
		}
		count++
		putU32(out[countAt:], count-1)
		out = out.u16(uint16(d.ref & 0xffff)).u16(uint16(int16(delta))).u16(d.typ).u16(uint16(len(d.name) - 1))
		out = append(out, d.name...)
	}
	return out, index
}

func putU32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

// writeInode writes a non-directory inode once; hard links get the same ref.
func (b *builder) writeInode(in *inode) (uint64, error) {
	if in.written {
		return in.ref, nil
	}
	e := in.entry
	xattr := in.xattr != invalidXattr
	var buf le
	switch e.Type {
	case rootfs.TypeFile:
		f := in.file.resolved()
		ext := xattr || in.nlink > 1 || f.start > math.MaxUint32 || in.file.size > math.MaxUint32 || f.sparse > 0
		if !ext {
			buf = b.header(buf, typeFile, in)
			buf = buf.u32(uint32(f.start)).u32(f.fragIndex).u32(f.fragOffset).u32(uint32(in.file.size))
		} else {
			buf = b.header(buf, typeFile+typeExtOff, in)
			buf = buf.u64(f.start).u64(uint64(in.file.size)).u64(f.sparse).u32(in.nlink).
				u32(f.fragIndex).u32(f.fragOffset).u32(in.xattr)
		}
		for _, s := range f.sizes {
			buf = buf.u32(s)
		}
	case rootfs.TypeSymlink:
		t := typeSymlink
		if xattr {
			t += typeExtOff
		}
		buf = b.header(buf, uint16(t), in).u32(in.nlink).u32(uint32(len(e.Target)))
		buf = append(buf, e.Target...)
		if xattr {
			buf = buf.u32(in.xattr)
		}
	case rootfs.TypeCharDev, rootfs.TypeBlockDev:
		t := basicType(e.Type)
		if xattr {
			t += typeExtOff
		}
		if e.Major > 0xfff || e.Minor > 0xfffff {
			return 0, fmt.Errorf("%s: device %d:%d does not fit squashfs's 12-bit major and 20-bit minor", in.path, e.Major, e.Minor)
		}
		buf = b.header(buf, t, in).u32(in.nlink).u32(encodeDev(e.Major, e.Minor))
		if xattr {
			buf = buf.u32(in.xattr)
		}
	case rootfs.TypeFifo, rootfs.TypeSocket:
		t := basicType(e.Type)
		if xattr {
			t += typeExtOff
		}
		buf = b.header(buf, t, in).u32(in.nlink)
		if xattr {
			buf = buf.u32(in.xattr)
		}
	default:
		return 0, fmt.Errorf("%s: cannot store a %s", in.path, e.Type)
	}
	in.written = true
	return b.putInode(in, buf), nil
}

func (b *builder) putInode(in *inode, buf []byte) uint64 {
	in.ref = b.inodeTab.inodeRef(b.inodeTab.pos())
	b.inodeTab.Write(buf)
	b.export[in.number-1] = in.ref
	return in.ref
}

func (b *builder) header(buf le, typ uint16, in *inode) le {
	mtime := in.entry.Mtime
	mtime = max(0, min(mtime, math.MaxUint32)) // squashfs holds 1970..2106
	return buf.u16(typ).u16(uint16(in.entry.Mode & rootfs.ModePerm)).u16(in.uid).u16(in.gid).
		u32(uint32(mtime)).u32(in.number)
}

func basicType(t rootfs.Type) uint16 {
	switch t {
	case rootfs.TypeDir:
		return typeDir
	case rootfs.TypeFile:
		return typeFile
	case rootfs.TypeSymlink:
		return typeSymlink
	case rootfs.TypeBlockDev:
		return typeBlkDev
	case rootfs.TypeCharDev:
		return typeChrDev
	case rootfs.TypeFifo:
		return typeFifo
	case rootfs.TypeSocket:
		return typeSocket
	}
	return 0
}
