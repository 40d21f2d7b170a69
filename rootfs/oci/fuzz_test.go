package oci

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"keel/rootfs"
)

// FuzzApplyLayer feeds arbitrary layers: ApplyLayer must never panic, and
// whatever it accepts or refuses, the spool holds only complete,
// content-addressed files and every file in the tree reads back at its Size.
// Run longer with: go test -fuzz FuzzApplyLayer ./rootfs/oci
func FuzzApplyLayer(f *testing.F) {
	for _, l := range mainLayers(f) {
		f.Add(l.blob)
		f.Add(l.tar)
	}
	f.Add(layerTar(f, symlink("escape", "/"), file("escape/x", 0o644, "x")))
	f.Add(layerTar(f, file("a", 0o644, "a"), hardlink("b", "a"), whiteout(".wh.a"), whiteout(".wh..wh..opq")))
	f.Add(sparseTar(1 << 20))
	f.Fuzz(func(t *testing.T, blob []byte) {
		dir := filepath.Join(t.TempDir(), "spool")
		spool, err := NewSpool(dir)
		if err != nil {
			t.Fatal(err)
		}
		tree := rootfs.New()
		_ = ApplyLayer(context.Background(), tree, bytes.NewReader(blob), "fuzz", spool)
		dump(t, tree)
		checkSpool(t, dir)
	})
}
