package debfile

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/ulikunitz/xz"

	"keel/rootfs/deb/debtest"
	"keel/rootfs/tarfs"
	"keel/rootfs/tarfs/tarfstest"
)

// fuzzDeb is a package FuzzOpen starts from, kept as its ar members with
// control.tar and data.tar uncompressed: the fuzzer's patches go into the
// tars, which are then compressed, so that a mutation reaches the tar and
// control parsers rather than only breaking a compressed stream's checksum.
type fuzzDeb struct {
	name    string
	order   []string // ar members; "control.tar" and "data.tar" are compressed at use
	members map[string][]byte
}

// fuzzDebs: every kind of control member and data entry (hello), a minimal
// package, a hostile one (writes /etc/keel, replaces /bin, links out) and
// one with extra members.
func fuzzDebs(t testing.TB) []fuzzDeb {
	t.Helper()
	raw := func(d debtest.Deb) debtest.Deb {
		d.Compression, d.ControlCompression = "none", "none"
		return d
	}
	var out []fuzzDeb
	for _, s := range []struct {
		name string
		deb  debtest.Deb
	}{
		{"hello", raw(hello("none", "none"))},
		{"minimal", raw(debtest.Deb{Control: [][2]string{{"Package", "m"}, {"Version", "1"}}})},
		{"keel-own", raw(debtest.Deb{Control: [][2]string{{"Package", "evil"}, {"Version", "1"}},
			Files: []debtest.File{{Path: "./etc/keel/keys/x.pub", Body: "planted"}, {Path: "./bin", Type: '2', Link: "/tmp"}, {Path: "./x", Type: '1', Link: "../etc/shadow"}}})},
		{"extra-members", raw(debtest.Deb{Control: [][2]string{{"Package", "extra"}, {"Version", "1"}},
			Files: []debtest.File{{Path: "./usr/bin/x", Body: "x"}}})},
	} {
		order, m, err := debtest.Members(s.deb)
		if err != nil {
			t.Fatal(err)
		}
		if s.name == "extra-members" {
			m["_sig"] = []byte("odd")
			order = []string{order[0], "_sig", order[1], order[2], "_sig"}
		}
		out = append(out, fuzzDeb{s.name, order, m})
	}
	return out
}

// fuzzCompressions are the member compressions, picked by two bits each.
var fuzzCompressions = []string{"xz", "gz", "zst", "none"}

// compressed memoises the unpatched members' compressed bytes: most inputs
// patch one tar or none, and compressing costs more than reading.
var compressed sync.Map // "deb/member/kind" → []byte

// build assembles the package an input describes: deb's tars with a patch
// each, compressed as comp says (low two bits control.tar, next two
// data.tar), in an ar archive that gets a patch of its own and loses its
// last cut bytes.
func (d fuzzDeb) build(t testing.TB, comp uint8, ctlOff uint16, ctlPatch []byte, dataOff uint16, dataPatch []byte, arOff uint16, arPatch []byte, cut uint16) []byte {
	members := map[string][]byte{}
	var order []string
	for _, name := range d.order {
		b, kind, off, p := d.members[name], "", ctlOff, ctlPatch
		switch name {
		case "control.tar":
			kind = fuzzCompressions[comp&3]
		case "data.tar":
			kind, off, p = fuzzCompressions[comp>>2&3], dataOff, dataPatch
		default:
			members[name] = b
			order = append(order, name)
			continue
		}
		if kind != "none" {
			key := fmt.Sprintf("%s/%s/%s", d.name, name, kind)
			z, ok := compressed.Load(key)
			if len(p) > 0 || !ok {
				var err error
				if z, err = fuzzCompress(kind, patch(b, off, p)); err != nil {
					t.Fatal(err)
				}
				if len(p) == 0 {
					compressed.Store(key, z)
				}
			}
			members[name+"."+kind] = z.([]byte)
			order = append(order, name+"."+kind)
			continue
		}
		members[name] = patch(b, off, p)
		order = append(order, name)
	}
	b := patch(debtest.MustBuild(debtest.Deb{Control: [][2]string{{"Package", "f"}, {"Version", "1"}}, RawOrder: order, Raw: members}), arOff, arPatch)
	return b[:len(b)-int(cut)%len(b)]
}

// fuzzCompress is debtest.Compress, but xz with a 4 KiB dictionary: a
// reader allocates the dictionary the stream asks for, and with the
// default 8 MiB clearing it took most of each execution.
func fuzzCompress(kind string, b []byte) ([]byte, error) {
	if kind != "xz" {
		return debtest.Compress(kind, b)
	}
	var buf bytes.Buffer
	w, err := xz.WriterConfig{CheckSum: xz.CRC32, DictCap: 4096}.NewWriter(&buf)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// patch returns b with p written over it at off (modulo b's length), cut
// at b's end.
func patch(b []byte, off uint16, p []byte) []byte {
	if len(p) == 0 || len(b) == 0 {
		return b
	}
	b = bytes.Clone(b)
	copy(b[int(off)%len(b):], p)
	return b
}

// TestFuzzSeeds: every seed package opens in every compression, so the
// fuzzer starts from packages that reach Apply.
func TestFuzzSeeds(t *testing.T) {
	for _, d := range fuzzDebs(t) {
		for comp := range uint8(16) {
			b := d.build(t, comp, 0, nil, 0, nil, 0, nil, 0)
			df, err := New(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Errorf("%s, control.tar %s, data.tar %s: %v", d.name, fuzzCompressions[comp&3], fuzzCompressions[comp>>2&3], err)
				continue
			}
			if _, err := df.Apply(context.Background(), mergedTree(t), newSpool(t), keelOptions); err != nil && d.name != "keel-own" {
				t.Errorf("%s: apply: %v", d.name, err)
			}
		}
	}
}

// FuzzOpen feeds damaged packages: nothing panics; what opens applies or
// is refused; every file in the tree reads back at its Size; and when
// data.tar unpacks whole, replaying it gives the same verdict as applying
// it. An input is a seed package (fuzzDebs), the compressions of its two
// tars, a patch over each tar and one over the whole .deb, and a cut of its
// end, rather than a whole .deb: the fuzzer minimises every new input, and
// on a 50 KB one that took all the run (0 execs/s).
// Run longer with: go test -fuzz FuzzOpen ./rootfs/deb/debfile
func FuzzOpen(f *testing.F) {
	debs := fuzzDebs(f)
	for i := range debs {
		for _, comp := range []uint8{0, 1<<2 | 1, 2<<2 | 3, 3<<2 | 2} {
			f.Add(uint8(i), comp, uint16(0), []byte{}, uint16(0), []byte{}, uint16(0), []byte{}, uint16(0))
		}
	}
	// A control file's field, a tar header's type and size, an ar size, a cut.
	f.Add(uint8(0), uint8(15), uint16(1024), []byte("Package: x\nVersion"), uint16(156), []byte("5"), uint16(8+48), []byte("99"), uint16(7))
	f.Fuzz(func(t *testing.T, seed, comp uint8, ctlOff uint16, ctlPatch []byte, dataOff uint16, dataPatch []byte, arOff uint16, arPatch []byte, cut uint16) {
		b := debs[int(seed)%len(debs)].build(t, comp, ctlOff, ctlPatch, dataOff, dataPatch, arOff, arPatch, cut)
		df, err := New(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		_ = df.Control.ConffilePaths()
		opts := keelOptions
		opts.Limits = tarfs.Limits{MaxBytes: 16 << 20, MaxEntries: 10000}
		spool := newSpool(t)
		tree := mergedTree(t)
		_, aerr := df.Apply(context.Background(), tree, spool, opts)
		tarfstest.Dump(t, tree)
		ms, err := df.Unpack(context.Background(), spool, opts.Limits)
		if err != nil {
			return
		}
		replayed := mergedTree(t)
		u := &Unpacked{Control: df.Control, Members: ms, spool: spool}
		_, rerr := u.Apply(context.Background(), replayed, opts)
		if (aerr == nil) != (rerr == nil) || aerr != nil && aerr.Error() != rerr.Error() {
			t.Fatalf("applied: %v; replayed: %v", aerr, rerr)
		}
		tarfstest.CheckSpool(t, spool.Dir())
	})
}
