package tarfs

import (
	"archive/tar"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Member is one entry of a tar archive as its header states it, with a
// regular file's content in a Spool. Unpack returns them and Replay applies
// them, so a cache of unpacked archives keeps Members (EncodeMembers)
// instead of decompressing the archive again.
type Member struct {
	Name         string // as written in the archive: "./usr/bin/sh"
	Type         byte   // tar type flag: tar.TypeReg, tar.TypeDir, ...
	Mode         int64  // as written; only the permission bits are used
	UID, GID     int
	Mtime        int64  // seconds since the Unix epoch
	Size         int64  // content length of a regular file
	Linkname     string // symlink or hard link target
	Major, Minor int64  // device numbers
	// Xattrs are the PAX SCHILY.xattr. records, by attribute name.
	Xattrs map[string]string
	// Content is the Spool id of a regular file's content; "" while the
	// content is unread (Apply) or when Size is 0.
	Content string
}

// memberOf turns a tar header into a Member, refusing what must not even
// be read: a sparse file, whose holes the tar reader would fill.
func memberOf(hdr *tar.Header) (*Member, error) {
	if isSparse(hdr) {
		return nil, unsafe("sparse file of %d bytes", hdr.Size)
	}
	m := &Member{
		Name: hdr.Name, Type: hdr.Typeflag, Mode: hdr.Mode, UID: hdr.Uid, GID: hdr.Gid,
		Mtime: hdr.ModTime.Unix(), Linkname: hdr.Linkname, Major: hdr.Devmajor, Minor: hdr.Devminor,
	}
	if hdr.Typeflag == tar.TypeReg {
		m.Size = hdr.Size
	}
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if m.Xattrs == nil {
				m.Xattrs = map[string]string{}
			}
			m.Xattrs[name] = v
		}
	}
	return m, nil
}

// isSparse reports a GNU sparse file, old style or PAX.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// EncodeMembers appends a compact binary form of ms to b. The form holds
// names and attributes byte for byte (tar names need not be UTF-8) and is
// deterministic: xattrs are written sorted.
func EncodeMembers(b []byte, ms []Member) []byte {
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	num := func(v int64) { b = binary.AppendVarint(b, v) }
	b = binary.AppendUvarint(b, uint64(len(ms)))
	for i := range ms {
		m := &ms[i]
		str(m.Name)
		b = append(b, m.Type)
		num(m.Mode)
		num(int64(m.UID))
		num(int64(m.GID))
		num(m.Mtime)
		num(m.Size)
		str(m.Linkname)
		num(m.Major)
		num(m.Minor)
		names := make([]string, 0, len(m.Xattrs))
		for k := range m.Xattrs {
			names = append(names, k)
		}
		sort.Strings(names)
		b = binary.AppendUvarint(b, uint64(len(names)))
		for _, k := range names {
			str(k)
			str(m.Xattrs[k])
		}
		str(m.Content)
	}
	return b
}

// errShort is any decoding error: the callers checksum what they decode, so
// a failure here means a bug or a collision, not a case to tell apart.
var errShort = errors.New("members: truncated or malformed")

// DecodeMembers reads what EncodeMembers wrote, and returns the members and
// the bytes after them. Malformed input is an error, never a panic nor an
// allocation larger than the input.
func DecodeMembers(b []byte) ([]Member, []byte, error) {
	d := decoder{b: b}
	n := d.uvarint()
	// Every member takes at least 12 bytes: bound the allocation by the input.
	if d.err != nil || n > uint64(len(d.b))/12 {
		return nil, nil, errShort
	}
	ms := make([]Member, n)
	for i := range ms {
		m := &ms[i]
		m.Name = d.str()
		m.Type = d.byte()
		m.Mode = d.varint()
		m.UID = d.int()
		m.GID = d.int()
		m.Mtime = d.varint()
		m.Size = d.varint()
		m.Linkname = d.str()
		m.Major = d.varint()
		m.Minor = d.varint()
		nx := d.uvarint()
		if nx > uint64(len(d.b))/2 {
			return nil, nil, errShort
		}
		for j := uint64(0); j < nx; j++ {
			if m.Xattrs == nil {
				m.Xattrs = make(map[string]string, nx)
			}
			k := d.str()
			m.Xattrs[k] = d.str()
		}
		m.Content = d.str()
		if d.err != nil {
			return nil, nil, fmt.Errorf("%w (member %d)", errShort, i)
		}
	}
	return ms, d.b, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int() int {
	v := d.varint()
	if int64(int(v)) != v {
		d.err = errShort
	}
	return int(v)
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = errShort
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errShort
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
