package oci

// Builders for the layers and images the tests apply: tar entries, layer
// compression, and image layouts written by hand (OCI layout, oci-archive,
// dir:, docker-archive), so that each test states exactly what is in its
// image.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"keel/rootfs/tarfs/tarfstest"
)

// The entry builders and tree checks are tarfstest's, shared with the tarfs
// and debfile tests.
type ent = tarfstest.Ent

var (
	file       = tarfstest.File
	dir        = tarfstest.Dir
	layerTar   = tarfstest.Tar
	gzipped    = tarfstest.Gzip
	zstded     = tarfstest.Zstd
	dump       = tarfstest.Dump
	checkTree  = tarfstest.CheckTree
	checkSpool = tarfstest.CheckSpool
	checkOnly  = tarfstest.CheckOnly
	sha256hex  = tarfstest.SHA256
)

// layer is one layer of a test image: its blob as stored and its
// uncompressed tar (whose digest is the diff ID).
type layer struct {
	blob      []byte
	tar       []byte
	diffID    digest.Digest // when set, the diff ID, and tar is not needed
	mediaType string
}

func gzipLayer(t testing.TB, tarball []byte) layer {
	return layer{blob: gzipped(t, tarball), tar: tarball, mediaType: "application/vnd.oci.image.layer.v1.tar+gzip"}
}

func zstdLayer(t testing.TB, tarball []byte) layer {
	return layer{blob: zstded(t, tarball), tar: tarball, mediaType: "application/vnd.oci.image.layer.v1.tar+zstd"}
}

func plainLayer(tarball []byte) layer {
	return layer{blob: tarball, tar: tarball, mediaType: "application/vnd.oci.image.layer.v1.tar"}
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      digest.Digest     `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// blobStore collects the blobs of an image by digest.
type blobStore map[digest.Digest][]byte

func (s blobStore) add(b []byte) digest.Digest {
	d := digest.FromBytes(b)
	s[d] = b
	return d
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// configJSON is an image config for arch with the layers' diff IDs.
func configJSON(t testing.TB, arch string, layers []layer) []byte {
	var diffIDs []digest.Digest
	for _, l := range layers {
		d := l.diffID
		if d == "" {
			d = digest.FromBytes(l.tar)
		}
		diffIDs = append(diffIDs, d)
	}
	return mustJSON(t, map[string]any{
		"architecture": arch,
		"os":           "linux",
		"config":       map[string]any{},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
}

// ociManifest stores the config and layers of an image in s and returns the
// descriptor of its OCI manifest.
func ociManifest(t testing.TB, s blobStore, arch string, layers []layer) descriptor {
	cfg := configJSON(t, arch, layers)
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config": descriptor{
			MediaType: "application/vnd.oci.image.config.v1+json",
			Digest:    s.add(cfg), Size: int64(len(cfg)),
		},
	}
	var ls []descriptor
	for _, l := range layers {
		ls = append(ls, descriptor{MediaType: l.mediaType, Digest: s.add(l.blob), Size: int64(len(l.blob))})
	}
	m["layers"] = ls
	raw := mustJSON(t, m)
	return descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: s.add(raw), Size: int64(len(raw))}
}

// writeLayout writes an OCI image layout at dir whose index.json lists the
// given manifests (or indexes) under the tag.
func writeLayout(t testing.TB, dir, tag string, s blobStore, top descriptor) {
	t.Helper()
	top.Annotations = map[string]string{"org.opencontainers.image.ref.name": tag}
	index := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     []descriptor{top},
	}
	write(t, filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`))
	write(t, filepath.Join(dir, "index.json"), mustJSON(t, index))
	for d, b := range s {
		write(t, filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded()), b)
	}
}

// indexOf stores an OCI image index over the manifests and returns its
// descriptor.
func indexOf(t testing.TB, s blobStore, manifests ...descriptor) descriptor {
	raw := mustJSON(t, map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     manifests,
	})
	return descriptor{MediaType: "application/vnd.oci.image.index.v1+json", Digest: s.add(raw), Size: int64(len(raw))}
}

// writeDir writes the image as the dir: transport stores it.
func writeDir(t testing.TB, dir string, s blobStore, m descriptor) {
	t.Helper()
	write(t, filepath.Join(dir, "version"), []byte("Directory Transport Version: 1.1\n"))
	write(t, filepath.Join(dir, "manifest.json"), s[m.Digest])
	for d, b := range s {
		if d != m.Digest {
			write(t, filepath.Join(dir, d.Encoded()), b)
		}
	}
}

// dockerArchive returns a `docker save` tarball of an image with uncompressed
// layers, tagged name.
func dockerArchive(t testing.TB, name string, layers []layer) []byte {
	t.Helper()
	cfg := configJSON(t, "amd64", layers)
	cfgName := digest.FromBytes(cfg).Encoded() + ".json"
	files := map[string][]byte{cfgName: cfg}
	var order []string
	var layerNames []string
	order = append(order, cfgName)
	for _, l := range layers {
		n := digest.FromBytes(l.tar).Encoded() + "/layer.tar"
		files[n] = l.tar
		layerNames = append(layerNames, n)
		order = append(order, n)
	}
	files["manifest.json"] = mustJSON(t, []map[string]any{{
		"Config": cfgName, "RepoTags": []string{name}, "Layers": layerNames,
	}})
	order = append(order, "manifest.json")
	var entries []ent
	for _, n := range order {
		entries = append(entries, file(n, 0o644, string(files[n])))
	}
	return layerTar(t, entries...)
}

// tarDir returns a tar of the files under dir, as oci-archive stores a layout.
func tarDir(t testing.TB, root string) []byte {
	t.Helper()
	var entries []ent
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			entries = append(entries, dir(rel+"/", 0o755))
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		entries = append(entries, file(rel, 0o644, string(b)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return layerTar(t, entries...)
}

func write(t testing.TB, name string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
