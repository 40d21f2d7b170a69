package oci

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"keel/rootfs"
)

// mainImage writes mainLayers as an OCI layout tagged "v1" under dir and
// returns the manifest descriptor and the layer digests.
func mainImage(t *testing.T, dir string) (descriptor, []digest.Digest, blobStore) {
	t.Helper()
	s := blobStore{}
	layers := mainLayers(t)
	m := ociManifest(t, s, "amd64", layers)
	writeLayout(t, dir, "v1", s, m)
	var ds []digest.Digest
	for _, l := range layers {
		ds = append(ds, digest.FromBytes(l.blob))
	}
	return m, ds, s
}

// startRegistry starts a registry on 127.0.0.1 (plain http) for the test and
// returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// serveRegistry starts a registry holding the image m of the OCI layout at
// layoutDir as repo (name:tag), and returns its host:port.
func serveRegistry(t *testing.T, layoutDir string, m descriptor, repo string) string {
	t.Helper()
	host := startRegistry(t)
	p, h, ref := pushArgs(t, layoutDir, m, host+"/"+repo)
	img, err := p.Image(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("pushing to the test registry: %v", err)
	}
	return host
}

// serveIndex is serveRegistry for a multi-platform image, whose index is
// listed in the layout's index.json.
func serveIndex(t *testing.T, layoutDir string, index descriptor, repo string) string {
	t.Helper()
	host := startRegistry(t)
	p, h, ref := pushArgs(t, layoutDir, index, host+"/"+repo)
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	idx, err := top.ImageIndex(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("pushing to the test registry: %v", err)
	}
	return host
}

func pushArgs(t *testing.T, layoutDir string, d descriptor, to string) (layout.Path, v1.Hash, name.Reference) {
	t.Helper()
	p, err := layout.FromPath(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := v1.NewHash(d.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(to, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return p, h, ref
}

// TestApplyTransports reads one image through every transport and checks the
// tree is exactly what its layers say.
func TestApplyTransports(t *testing.T) {
	work := t.TempDir()
	layoutDir := filepath.Join(work, "layout")
	m, layerDigests, s := mainImage(t, layoutDir)

	archive := filepath.Join(work, "image.oci.tar")
	write(t, archive, tarDir(t, layoutDir))
	dirImage := filepath.Join(work, "dirimage")
	writeDir(t, dirImage, s, m)
	dockerArch := filepath.Join(work, "image.docker.tar")
	layers := mainLayers(t)
	var plain []layer
	var diffIDs []digest.Digest
	for _, l := range layers {
		plain = append(plain, plainLayer(l.tar))
		diffIDs = append(diffIDs, digest.FromBytes(l.tar))
	}
	write(t, dockerArch, dockerArchive(t, "keel/test:v1", plain))
	host := serveRegistry(t, layoutDir, m, "keel/test:v1")

	tests := []struct {
		ref      string
		insecure bool
		digest   digest.Digest   // "" when the transport makes its own manifest
		layers   []digest.Digest // layer digests Info must list
	}{
		{ref: "oci:" + layoutDir + ":v1", digest: m.Digest, layers: layerDigests},
		{ref: "oci-archive:" + archive + ":v1", digest: m.Digest, layers: layerDigests},
		{ref: "dir:" + dirImage, digest: m.Digest, layers: layerDigests},
		{ref: "docker-archive:" + dockerArch + ":keel/test:v1", layers: diffIDs},
		{ref: "docker://" + host + "/keel/test:v1", insecure: true, digest: m.Digest, layers: layerDigests},
		{ref: "docker://" + host + "/keel/test@" + m.Digest.String(), insecure: true, digest: m.Digest, layers: layerDigests},
	}
	for _, tt := range tests {
		t.Run(strings.SplitN(tt.ref, ":", 2)[0], func(t *testing.T) {
			cache := filepath.Join(t.TempDir(), "cache")
			tree := rootfs.New()
			info, err := Apply(context.Background(), tree, tt.ref, Options{Arch: "x86_64", CacheDir: cache, Insecure: tt.insecure})
			if err != nil {
				t.Fatal(err)
			}
			checkTree(t, tree, mainTree)
			if info.Ref != tt.ref || (tt.digest != "" && info.Digest != tt.digest) || info.Digest == "" {
				t.Errorf("info %+v, want ref %s digest %s", info, tt.ref, tt.digest)
			}
			if !equalDigests(info.Layers, tt.layers) {
				t.Errorf("layers %v, want %v", info.Layers, tt.layers)
			}
			checkSpool(t, filepath.Join(cache, "content"))
			if strings.HasPrefix(tt.ref, "docker://") {
				// Pulled layers are kept, verified, under the cache.
				for _, d := range tt.layers {
					b, err := os.ReadFile(filepath.Join(cache, "blobs", "sha256", d.Encoded()))
					if err != nil {
						t.Fatalf("layer not cached: %v", err)
					}
					if digest.FromBytes(b) != d {
						t.Errorf("cached layer %s has digest %s", d, digest.FromBytes(b))
					}
				}
			}
			// Nothing left behind but the spool, the blob cache and the
			// (empty) hermetic configuration.
			checkOnly(t, filepath.Join(cache, "tmp"))
		})
	}
}

func equalDigests(a, b []digest.Digest) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestApplyCachedBlob checks that layers pulled from a registry are read back
// from the cache, verified again there, and fetched anew when the cached copy
// is damaged.
func TestApplyCachedBlob(t *testing.T) {
	work := t.TempDir()
	layoutDir := filepath.Join(work, "layout")
	m, layerDigests, _ := mainImage(t, layoutDir)
	ref := "docker://" + serveRegistry(t, layoutDir, m, "keel/test:v1") + "/keel/test:v1"
	opts := Options{CacheDir: filepath.Join(work, "cache"), Insecure: true}
	if _, err := Apply(context.Background(), rootfs.New(), ref, opts); err != nil {
		t.Fatal(err)
	}
	cached := filepath.Join(opts.CacheDir, "blobs", "sha256", layerDigests[0].Encoded())
	b, err := os.ReadFile(cached)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cached, 0o644); err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	write(t, cached, b)
	_, err = Apply(context.Background(), rootfs.New(), ref, opts)
	if !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), layerDigests[0].String()) {
		t.Fatalf("damaged cache: got %v, want a digest mismatch naming %s", err, layerDigests[0])
	}
	tree := rootfs.New()
	if _, err := Apply(context.Background(), tree, ref, opts); err != nil {
		t.Fatalf("after a damaged cache: %v", err)
	}
	checkTree(t, tree, mainTree)
}

// TestApplyHermetic puts configuration in every place containers/image looks
// on a host (environment, home directory) that would block, redirect or break
// the pull: Apply must not read any of it.
func TestApplyHermetic(t *testing.T) {
	work := t.TempDir()
	layoutDir := filepath.Join(work, "layout")
	m, _, _ := mainImage(t, layoutDir)
	host := serveRegistry(t, layoutDir, m, "keel/test:v1")

	home := filepath.Join(work, "home")
	blocking := "[[registry]]\nlocation = \"" + host + "\"\nblocked = true\n"
	for _, f := range []string{".config/containers/registries.conf", "etc/registries.conf"} {
		write(t, filepath.Join(home, f), []byte(blocking))
	}
	write(t, filepath.Join(home, ".config/containers/registries.conf.d/x.conf"), []byte(blocking))
	write(t, filepath.Join(home, ".config/containers/registries.d/x.yaml"), []byte("::: not yaml"))
	write(t, filepath.Join(home, ".docker/config.json"), []byte("not json"))
	write(t, filepath.Join(home, "auth.json"), []byte("not json"))
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("XDG_RUNTIME_DIR", home)
	t.Setenv("CONTAINERS_REGISTRIES_CONF", filepath.Join(home, "etc/registries.conf"))
	t.Setenv("CONTAINERS_REGISTRIES_CONF_OVERRIDE", filepath.Join(home, "etc/registries.conf"))
	t.Setenv("REGISTRY_AUTH_FILE", filepath.Join(home, "auth.json"))
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, ".docker"))

	tree := rootfs.New()
	if _, err := Apply(context.Background(), tree, "docker://"+host+"/keel/test:v1", Options{CacheDir: filepath.Join(work, "cache"), Insecure: true}); err != nil {
		t.Fatal(err)
	}
	checkTree(t, tree, mainTree)
}

// TestApplyMultiPlatform picks the image for the asked architecture out of an
// index.
func TestApplyMultiPlatform(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	s := blobStore{}
	amd := ociManifest(t, s, "amd64", []layer{gzipLayer(t, layerTar(t, file("arch", 0o644, "amd64")))})
	amd.Platform = &platform{Architecture: "amd64", OS: "linux"}
	arm := ociManifest(t, s, "arm64", []layer{gzipLayer(t, layerTar(t, file("arch", 0o644, "arm64")))})
	arm.Platform = &platform{Architecture: "arm64", OS: "linux"}
	index := indexOf(t, s, arm, amd)
	writeLayout(t, dir, "multi", s, index)
	host := serveIndex(t, dir, index, "keel/multi:v1")
	for _, tt := range []struct {
		ref  string
		arch string
		want descriptor
	}{
		{"oci:" + dir + ":multi", "x86_64", amd},
		{"oci:" + dir + ":multi", "aarch64", arm},
		{"oci:" + dir + ":multi", "", amd},
		{"docker://" + host + "/keel/multi:v1", "x86_64", amd},
		{"docker://" + host + "/keel/multi:v1", "aarch64", arm},
	} {
		t.Run(strings.SplitN(tt.ref, ":", 2)[0]+"/"+tt.arch, func(t *testing.T) {
			tree := rootfs.New()
			info, err := Apply(context.Background(), tree, tt.ref, Options{Arch: tt.arch, CacheDir: t.TempDir(), Insecure: true})
			if err != nil {
				t.Fatal(err)
			}
			if info.Digest != tt.want.Digest {
				t.Errorf("digest %s, want %s", info.Digest, tt.want.Digest)
			}
			arch := tt.want.Platform.Architecture
			checkTree(t, tree, []string{`/ dir 0755 0:0 t=0`, `/arch file 0644 0:0 "` + arch + `"`})
		})
	}
}

// TestApplyRefused covers images Apply must refuse, each with an error naming
// what is wrong.
func TestApplyRefused(t *testing.T) {
	work := t.TempDir()
	layoutDir := filepath.Join(work, "layout")
	m, layerDigests, _ := mainImage(t, layoutDir)
	host := serveRegistry(t, layoutDir, m, "keel/test:v1")

	hostileDir := filepath.Join(work, "hostile")
	hs := blobStore{}
	hostile := gzipLayer(t, layerTar(t, file("ok", 0o644, "ok"), file("../../evil", 0o644, "x")))
	writeLayout(t, hostileDir, "v1", hs, ociManifest(t, hs, "amd64", []layer{gzipLayer(t, layerTar(t, file("base", 0o644, "b"))), hostile}))
	hostileDigest := digest.FromBytes(hostile.blob)

	corruptDir := filepath.Join(work, "corrupt")
	mainImage(t, corruptDir)
	// The second layer's blob, replaced by another valid layer: only the
	// digest can tell.
	write(t, filepath.Join(corruptDir, "blobs", "sha256", layerDigests[1].Encoded()), zstded(t, layerTar(t, file("evil", 0o644, "x"))))
	// The third (uncompressed) layer with one byte of file content changed:
	// same size, still a valid tar.
	flippedDir := filepath.Join(work, "flipped")
	mainImage(t, flippedDir)
	third := filepath.Join(flippedDir, "blobs", "sha256", layerDigests[2].Encoded())
	b, err := os.ReadFile(third)
	if err != nil {
		t.Fatal(err)
	}
	write(t, third, bytes.Replace(b, []byte("#!tool v2"), []byte("#!tool v3"), 1))

	tests := []struct {
		name     string
		ref      string
		arch     string
		insecure bool
		is       error    // errors.Is target, if any
		says     []string // substrings the error must contain
	}{
		{"hostile layer", "oci:" + hostileDir + ":v1", "", false, ErrUnsafe,
			[]string{"oci:" + hostileDir + ":v1", hostileDigest.String(), `"../../evil"`}},
		{"corrupt layer", "oci:" + corruptDir + ":v1", "", false, ErrDigestMismatch,
			[]string{"oci:" + corruptDir + ":v1", layerDigests[1].String()}},
		{"flipped byte", "oci:" + flippedDir + ":v1", "", false, ErrDigestMismatch,
			[]string{"oci:" + flippedDir + ":v1", layerDigests[2].String(), "content has digest"}},
		{"other architecture", "oci:" + layoutDir + ":v1", "aarch64", false, nil, []string{`architecture "amd64", not "arm64"`}},
		{"unknown architecture", "oci:" + layoutDir + ":v1", "mips", false, nil, []string{`unsupported architecture "mips"`}},
		{"plain http without Insecure", "docker://" + host + "/keel/test:v1", "", false, nil, []string{host}},
		{"missing tag", "oci:" + layoutDir + ":v2", "", false, nil, []string{"v2"}},
		{"unknown transport", "containers-storage:foo", "", false, nil, []string{`unsupported transport "containers-storage"`, "oci-archive"}},
		{"no transport", "busybox", "", false, nil, []string{"no transport"}},
		{"unknown pinned digest", "docker://" + host + "/keel/test@" + digest.FromString("other").String(), "", true, nil, []string{"manifest"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			cache := filepath.Join(parent, "cache")
			tree := rootfs.New()
			_, err := Apply(context.Background(), tree, tt.ref, Options{Arch: tt.arch, CacheDir: cache, Insecure: tt.insecure})
			if err == nil {
				t.Fatalf("applied; tree:\n%s", strings.Join(dump(t, tree), "\n"))
			}
			t.Log(err)
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %q", err, tt.is)
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if _, err := os.Stat(cache); err == nil {
				checkOnly(t, parent, "cache")
			} else {
				checkOnly(t, parent)
			}
			if _, err := os.Stat(filepath.Join(cache, "content")); err == nil {
				checkSpool(t, filepath.Join(cache, "content"))
			}
			if _, err := os.Stat(filepath.Join(cache, "tmp")); err == nil {
				checkOnly(t, filepath.Join(cache, "tmp"))
			}
		})
	}
}
