package squashfs

import (
	"fmt"
	"slices"
	"strings"
)

// xattrTable collects distinct xattr sets; entries with identical sets share
// one id, as in mksquashfs.
type xattrTable struct {
	ids  map[string]uint32
	sets [][]kv
}

type kv struct {
	typ   uint16
	name  string // without the prefix
	value []byte
}

func newXattrTable() *xattrTable { return &xattrTable{ids: map[string]uint32{}} }

func (x *xattrTable) count() int { return len(x.sets) }

// add returns the id of the set m, or invalidXattr when m is empty.
func (x *xattrTable) add(m map[string][]byte) (uint32, error) {
	if len(m) == 0 {
		return invalidXattr, nil
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	set := make([]kv, 0, len(names))
	var key strings.Builder
	for _, n := range names {
		typ, suffix, err := splitXattr(n)
		if err != nil {
			return 0, err
		}
		set = append(set, kv{typ: typ, name: suffix, value: m[n]})
		fmt.Fprintf(&key, "%d:%q=%q;", typ, suffix, m[n])
	}
	if id, ok := x.ids[key.String()]; ok {
		return id, nil
	}
	id := uint32(len(x.sets))
	x.ids[key.String()] = id
	x.sets = append(x.sets, set)
	return id, nil
}

func splitXattr(name string) (uint16, string, error) {
	for i, p := range xattrPrefixes {
		if s, ok := strings.CutPrefix(name, p); ok && s != "" {
			if len(s) > 0xffff {
				return 0, "", fmt.Errorf("xattr %q: name too long", name[:64])
			}
			return uint16(i), s, nil
		}
	}
	return 0, "", fmt.Errorf("xattr %q: squashfs stores only user., trusted. and security. attributes", name)
}

// encode lays out the key/value area, the id area and the id table header,
// starting at absolute position at, and returns the header's position (what
// the superblock points to).
func (x *xattrTable) encode(c compressor, at uint64) ([]byte, uint64, error) {
	kvs := newMetaWriter(c)
	var ids []byte
	for _, set := range x.sets {
		ref := kvs.inodeRef(kvs.pos())
		start := kvs.pos()
		for _, e := range set {
			var b le
			b = b.u16(e.typ).u16(uint16(len(e.name)))
			b = append(b, e.name...)
			b = b.u32(uint32(len(e.value)))
			b = append(b, e.value...)
			kvs.Write(b)
		}
		ids = le(ids).u64(ref).u32(uint32(len(set))).u32(uint32(kvs.pos() - start))
	}
	data, err := kvs.finish()
	if err != nil {
		return nil, 0, err
	}
	idm := newMetaWriter(c)
	idm.Write(ids)
	idData, err := idm.finish()
	if err != nil {
		return nil, 0, err
	}
	idStart := at + uint64(len(data))
	data = append(data, idData...)
	header := at + uint64(len(data))
	data = le(data).u64(at).u32(uint32(len(x.sets))).u32(0)
	for _, s := range idm.starts {
		data = le(data).u64(idStart + uint64(s))
	}
	return data, header, nil
}
