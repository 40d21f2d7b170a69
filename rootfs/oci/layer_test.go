package oci

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"keel/rootfs"
	"keel/rootfs/tarfs"
	"keel/rootfs/tarfs/tarfstest"
)

// mainLayers is the image most tests apply: tarfstest.Layers, one layer per
// compression. Applying layers is tarfs's and tested there; here it is the
// image as a transport carries it.
func mainLayers(t testing.TB) []layer {
	l := tarfstest.Layers(t)
	return []layer{gzipLayer(t, l[0]), zstdLayer(t, l[1]), plainLayer(l[2])}
}

var mainTree = tarfstest.LayersTree

// TestApplyLayerCompressions applies the main layers as blobs, each in its
// compression, told apart by magic number.
func TestApplyLayerCompressions(t *testing.T) {
	spool, err := tarfs.NewSpool(filepath.Join(t.TempDir(), "spool"))
	if err != nil {
		t.Fatal(err)
	}
	tree := rootfs.New()
	for i, l := range mainLayers(t) {
		if err := ApplyLayer(context.Background(), tree, bytes.NewReader(l.blob), tarfs.Options{Name: "layer" + string(rune('1'+i)), Spool: spool}); err != nil {
			t.Fatal(err)
		}
	}
	checkTree(t, tree, mainTree)
	checkSpool(t, spool.Dir())
}

func TestApplyLayerCorrupt(t *testing.T) {
	good := gzipped(t, layerTar(t, file("a", 0o644, strings.Repeat("a", 4096))))
	tests := []struct {
		name string
		blob []byte
	}{
		{"truncated gzip", good[:len(good)-10]},
		{"gzip checksum", append(append([]byte{}, good[:len(good)-8]...), 0, 0, 0, 0, 0, 0, 0, 0)},
		{"not a tar", []byte("this is not a tar archive, not even close to one " + strings.Repeat(".", 500))},
		{"xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			spool, err := tarfs.NewSpool(filepath.Join(parent, "spool"))
			if err != nil {
				t.Fatal(err)
			}
			err = ApplyLayer(context.Background(), rootfs.New(), bytes.NewReader(tt.blob), tarfs.Options{Name: "img layer sha256:corrupt", Spool: spool})
			if err == nil {
				t.Fatal("applied a corrupt layer")
			}
			if !strings.Contains(err.Error(), "img layer sha256:corrupt") {
				t.Errorf("error %q does not name the layer", err)
			}
			t.Log(err)
			checkOnly(t, parent, "spool")
			checkSpool(t, spool.Dir())
		})
	}
}

// TestApplyOptionsReachLayers: Options.Protected and Options.Limits are
// applied to every layer, and the error names the image and the layer.
func TestApplyOptionsReachLayers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	s := blobStore{}
	planted := gzipLayer(t, layerTar(t, file("etc/hostname", 0o644, "h"), file("etc/keel/keys/x.pub", 0o644, "planted")))
	writeLayout(t, dir, "v1", s, ociManifest(t, s, "amd64", []layer{planted}))
	ref := "oci:" + dir + ":v1"
	layerName := "layer " + digest.FromBytes(planted.blob).String()
	tests := []struct {
		name string
		opts Options
		is   error
		says string
	}{
		{"protected", Options{Protected: []string{"/etc/keel"}}, tarfs.ErrProtected,
			ref + ": " + layerName + `: entry "etc/keel/keys/x.pub": /etc/keel is keel's own: no layer may write there`},
		{"entries", Options{Limits: tarfs.Limits{MaxEntries: 1}}, tarfs.ErrLimit, layerName + ": archive too large: more than 1 entries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.CacheDir = t.TempDir()
			_, err := Apply(context.Background(), rootfs.New(), ref, tt.opts)
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("error %v, want %q", err, tt.says)
			}
		})
	}
	if _, err := Apply(context.Background(), rootfs.New(), ref, Options{CacheDir: t.TempDir()}); err != nil {
		t.Fatalf("without options: %v", err)
	}
}
