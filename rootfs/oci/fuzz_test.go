package oci

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"

	"keel/rootfs"
	"keel/rootfs/tarfs"
	"keel/rootfs/tarfs/tarfstest"
)

// fuzzTars are the uncompressed layers FuzzApplyLayer starts from: the
// main image's three (every entry type, hard links, whiteouts, an opaque
// directory), a symlink escape, whiteouts of a layer's own entries, and a
// sparse file.
func fuzzTars(t testing.TB) [][]byte {
	tars := tarfstest.Layers(t)
	return append(tars,
		layerTar(t, tarfstest.Symlink("escape", "/"), file("escape/x", 0o644, "x")),
		layerTar(t, file("a", 0o644, "a"), tarfstest.Hardlink("b", "a"), tarfstest.Whiteout(".wh.a"), tarfstest.Whiteout(".wh..wh..opq")),
		tarfstest.SparseTar(1<<20))
}

// fuzzZstd is one encoder for every input: making one per input cost more
// than applying the layer. EncodeAll may be called concurrently.
var fuzzZstd = func() *zstd.Encoder {
	e, err := zstd.NewWriter(nil)
	if err != nil {
		panic(err)
	}
	return e
}()

var fuzzBlobs sync.Map // "tar/compression" → unpatched blob

// fuzzBlob is the layer an input describes: tar i of tars with a patch,
// compressed as comp says (none, gzip, zstd), with a patch over the blob
// and its last cut bytes cut off.
func fuzzBlob(t testing.TB, tars [][]byte, i, comp uint8, tarOff uint16, tarPatch []byte, blobOff uint16, blobPatch []byte, cut uint16) []byte {
	tb, c := tars[int(i)%len(tars)], comp%3
	key := fmt.Sprintf("%d/%d", int(i)%len(tars), c)
	var blob []byte
	if v, ok := fuzzBlobs.Load(key); ok && len(tarPatch) == 0 {
		blob = v.([]byte)
	} else {
		tb = patch(tb, tarOff, tarPatch)
		switch c {
		case 0:
			blob = tb
		case 1:
			blob = gzipped(t, tb)
		case 2:
			blob = fuzzZstd.EncodeAll(tb, nil)
		}
		if len(tarPatch) == 0 {
			fuzzBlobs.Store(key, blob)
		}
	}
	blob = patch(blob, blobOff, blobPatch)
	return blob[:len(blob)-int(cut)%len(blob)]
}

// patch returns b with p written over it at off (modulo b's length).
func patch(b []byte, off uint16, p []byte) []byte {
	if len(p) == 0 || len(b) == 0 {
		return b
	}
	b = bytes.Clone(b)
	copy(b[int(off)%len(b):], p)
	return b
}

// FuzzApplyLayer feeds damaged layers: ApplyLayer must never panic, and
// whatever it accepts or refuses, the spool holds only complete,
// content-addressed files and every file in the tree reads back at its Size.
// An input is a seed tar (fuzzTars), a patch over it, a compression, a
// patch over the compressed blob and a cut of its end, rather than a whole
// blob: the fuzzer minimises every new input, which took all the run (0
// execs/s) on 40 KB layers; and a patch over the tar reaches the tar reader
// through any compression.
// Run longer with: go test -fuzz FuzzApplyLayer ./rootfs/oci
func FuzzApplyLayer(f *testing.F) {
	tars := fuzzTars(f)
	for i := range tars {
		for c := range uint8(3) {
			f.Add(uint8(i), c, uint16(0), []byte{}, uint16(0), []byte{}, uint16(0))
		}
	}
	// A header's type flag, a size field, and a gzip stream cut short.
	f.Add(uint8(0), uint8(1), uint16(1024+156), []byte("2"), uint16(0), []byte{}, uint16(9))
	f.Add(uint8(5), uint8(0), uint16(512+124), []byte("77777777777"), uint16(0), []byte{}, uint16(0))
	f.Fuzz(func(t *testing.T, i, comp uint8, tarOff uint16, tarPatch []byte, blobOff uint16, blobPatch []byte, cut uint16) {
		blob := fuzzBlob(t, tars, i, comp, tarOff, tarPatch, blobOff, blobPatch, cut)
		dir := filepath.Join(t.TempDir(), "spool")
		spool, err := tarfs.NewSpool(dir)
		if err != nil {
			t.Fatal(err)
		}
		tree := rootfs.New()
		// Bounded, so a mutated size or sparse map costs the run no more than this.
		limits := tarfs.Limits{MaxBytes: 64 << 20, MaxEntries: 10000}
		_ = ApplyLayer(context.Background(), tree, bytes.NewReader(blob), tarfs.Options{Name: "fuzz", Spool: spool, Protected: []string{"/etc/keel"}, Limits: limits})
		dump(t, tree)
		checkSpool(t, dir)
	})
}
