package oci

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"keel/rootfs"
	"keel/rootfs/tarfs"
	"keel/rootfs/tarfs/tarfstest"
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
	f.Add(layerTar(f, tarfstest.Symlink("escape", "/"), file("escape/x", 0o644, "x")))
	f.Add(layerTar(f, file("a", 0o644, "a"), tarfstest.Hardlink("b", "a"), tarfstest.Whiteout(".wh.a"), tarfstest.Whiteout(".wh..wh..opq")))
	f.Add(tarfstest.SparseTar(1 << 20))
	f.Fuzz(func(t *testing.T, blob []byte) {
		dir := filepath.Join(t.TempDir(), "spool")
		spool, err := tarfs.NewSpool(dir)
		if err != nil {
			t.Fatal(err)
		}
		tree := rootfs.New()
		_ = ApplyLayer(context.Background(), tree, bytes.NewReader(blob), tarfs.Options{Name: "fuzz", Spool: spool, Protected: []string{"/etc/keel"}})
		dump(t, tree)
		checkSpool(t, dir)
	})
}
