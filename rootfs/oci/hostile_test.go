package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"

	"keel/rootfs"
	"keel/rootfs/tarfs"
	"keel/rootfs/tarfs/tarfstest"
)

// zeroBombDiffID is the diff ID of zeroBomb: the sha256 of its tar (the
// header, 10 GiB of zeros, the end marker), hashed once rather than on every
// run (15 s). Checked with: zstd -dc BLOB | sha256sum.
const zeroBombDiffID = "sha256:5686d6b4439f2ed2bdcd3ec036daa9b25d9a88c0600b7b475e6d939d1675479d"

// zeroBomb is a zstd layer whose tar holds one file "zeros" of 10 GiB of
// zeros, with its true diff ID in the config: the decompression bomb of the
// issue. It is one frame of 16 MiB of zeros repeated, 1.1 MB in all, so it
// costs milliseconds to build and would cost 10 GiB to expand.
func zeroBomb(t testing.TB) layer {
	const size, chunk = 10 << 30, 16 << 20
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "zeros", Mode: 0o644, Size: size, ModTime: tarfstest.Epoch}); err != nil {
		t.Fatal(err)
	}
	zeros := enc.EncodeAll(make([]byte, chunk), nil)
	blob := enc.EncodeAll(hdr.Bytes(), nil)
	for n := 0; n < size/chunk; n++ {
		blob = append(blob, zeros...)
	}
	blob = append(blob, enc.EncodeAll(make([]byte, 1024), nil)...) // the end marker
	return layer{blob: blob, diffID: zeroBombDiffID, mediaType: "application/vnd.oci.image.layer.v1.tar+zstd"}
}

// TestApplyHostileLayers applies, through Apply, the hostile layers of
// issue #8, each on top of a harmless base layer: each is refused with an
// error naming the image, the layer and the entry, or contained (recorded
// in the tree, never followed or created on the host). Either way the cache
// keeps nothing of a refused image but complete content, and no spool file
// of the failed image. tarfs's TestApplyHostile holds the variants of each
// rule; this is the whole path, manifest to tree.
func TestApplyHostileLayers(t *testing.T) {
	base := gzipLayer(t, layerTar(t, dir("etc/", 0o755), file("etc/hostname", 0o644, "base"), dir("usr/lib/", 0o755)))
	many := make([]ent, 1001)
	for i := range many {
		many[i] = file(fmt.Sprintf("many/%04d", i), 0o644, "")
	}
	spooled := make([]ent, 8)
	for i := range spooled {
		spooled[i] = file(fmt.Sprintf("big/%d", i), 0o644, strings.Repeat(string(rune('a'+i)), 1<<20))
	}
	tests := []struct {
		name   string
		layer  layer
		opts   Options
		is     error    // refused with this
		says   []string // and these in the message
		want   []string // contained: the tree past the base layer's entries
		noTemp bool
	}{
		{name: "dotdot traversal", layer: gzipLayer(t, layerTar(t, file("../../etc/cron.d/evil", 0o644, "x"))),
			is: ErrUnsafe, says: []string{`entry "../../etc/cron.d/evil"`, `".." component`}},
		{name: "absolute name", layer: gzipLayer(t, layerTar(t, file("/etc/evil", 0o644, "x"))),
			is: ErrUnsafe, says: []string{`entry "/etc/evil"`, "absolute name"}},
		{name: "absolute symlink is recorded", layer: gzipLayer(t, layerTar(t, tarfstest.Symlink("etc/shadow", "/etc/shadow"), tarfstest.Symlink("root", "/"))),
			want: []string{`/etc/shadow sym 0777 0:0 -> /etc/shadow`, `/root sym 0777 0:0 -> /`}},
		{name: "written through an absolute symlink", layer: gzipLayer(t, layerTar(t, tarfstest.Symlink("escape", "/"), file("escape/etc/passwd", 0o644, "x"))),
			is: ErrUnsafe, says: []string{`entry "escape/etc/passwd"`, "parent /escape is a symlink"}},
		{name: "symlinked parent directory", layer: gzipLayer(t, layerTar(t, tarfstest.Symlink("usr/lib/x", "../../../../tmp"), file("usr/lib/x/evil", 0o644, "x"))),
			is: ErrUnsafe, says: []string{`entry "usr/lib/x/evil"`, "parent /usr/lib/x is a symlink"}},
		{name: "hard link out of the tree", layer: gzipLayer(t, layerTar(t, tarfstest.Hardlink("shadow", "../../../etc/shadow"))),
			is: ErrUnsafe, says: []string{`entry "shadow"`, `hard link to "../../../etc/shadow"`}},
		{name: "hard link to a host path", layer: gzipLayer(t, layerTar(t, tarfstest.Hardlink("shadow", "/etc/shadow"))),
			is: ErrUnsafe, says: []string{`entry "shadow"`, "absolute name"}},
		{name: "device nodes are recorded", layer: gzipLayer(t, layerTar(t,
			tarfstest.Device(tar.TypeChar, "dev/mem", 0o640, 1, 1), tarfstest.Device(tar.TypeBlock, "dev/sda", 0o660, 8, 0), tarfstest.Fifo("run/fifo", 0o600))),
			want: []string{`/dev dir 0755 0:0 t=0`, `/dev/mem chr 0640 0:0 1:1`, `/dev/sda blk 0660 0:0 8:0`, `/run dir 0755 0:0 t=0`, `/run/fifo fifo 0600 0:0`}},
		{name: "10 GiB sparse file", layer: zstdLayer(t, tarfstest.SparseTar(10<<30)),
			is: ErrUnsafe, says: []string{`entry "f"`, "sparse file of 10737418240 bytes"}},
		{name: "10 GiB of zeros", layer: zeroBomb(t),
			is: tarfs.ErrLimit, says: []string{`entry "zeros"`, "a file of 10737418240 bytes expands past 1073741824 bytes", "this layer's limits: 1 GiB (100 times its 1.1 MiB blob, at least 1 GiB)"}},
		{name: "8 MiB past a 4 MiB limit", layer: gzipLayer(t, layerTar(t, spooled...)), opts: Options{Limits: tarfs.Limits{MaxBytes: 4 << 20}},
			is: tarfs.ErrLimit, says: []string{"expands past 4194304 bytes", "this layer's limits: 4.0 MiB, 1048576 entries"}},
		{name: "entries past the limit", layer: gzipLayer(t, layerTar(t, many...)), opts: Options{Limits: tarfs.Limits{MaxEntries: 1000}},
			is: tarfs.ErrLimit, says: []string{"more than 1000 entries"}},
		{name: "name with a newline is recorded", layer: gzipLayer(t, layerTar(t, file("etc/a\nb", 0o644, "x"))),
			want: []string{"/etc/a\nb file 0644 0:0 \"x\""}},
		{name: "diff ID mismatch", layer: layer{blob: gzipped(t, layerTar(t, file("f", 0o644, "a"))), tar: layerTar(t, file("f", 0o644, "b")), mediaType: "application/vnd.oci.image.layer.v1.tar+gzip"},
			is: ErrDigestMismatch, says: []string{"rootfs.diff_ids says"}},
		{name: "not a layer", layer: layer{blob: gzipped(t, layerTar(t)), tar: layerTar(t), mediaType: "application/vnd.cncf.helm.chart.content.v1.tar+gzip"},
			says: []string{`media type "application/vnd.cncf.helm.chart.content.v1.tar+gzip" is not a filesystem layer`}},
	}
	// The memory the runtime has taken from the OS only grows (it is
	// address space, returned pages included), so after the last case it
	// bounds the peak of every case: the bomb, the sparse file and the rest
	// stream through, and must stay far below what they expand to.
	const memoryBound = 512 << 20
	defer func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		t.Logf("hostile layers: the runtime took %.0f MiB from the OS at most (bound %d MiB)", float64(m.Sys)/(1<<20), memoryBound>>20)
		if m.Sys > memoryBound {
			t.Errorf("the runtime took %d MiB from the OS, more than %d MiB", m.Sys>>20, memoryBound>>20)
		}
	}()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			work := t.TempDir()
			layout := filepath.Join(work, "layout")
			s := blobStore{}
			writeLayout(t, layout, "v1", s, ociManifest(t, s, "amd64", []layer{base, tt.layer}))
			ref := "oci:" + layout + ":v1"
			cache := filepath.Join(work, "cache")
			opts := tt.opts
			opts.CacheDir = cache
			opts.Protected = []string{"/etc/keel"}
			tree := rootfs.New()
			_, err := Apply(context.Background(), tree, ref, opts)
			content := filepath.Join(cache, "content")
			if _, serr := os.Stat(content); serr == nil || tt.want != nil {
				checkSpool(t, content)
			}
			checkOnly(t, filepath.Join(cache, "tmp"))
			if tt.want != nil {
				if err != nil {
					t.Fatal(err)
				}
				got := dump(t, tree)
				baseTree := map[string]bool{`/ dir 0755 0:0 t=0`: true, `/etc dir 0755 0:0`: true, `/etc/hostname file 0644 0:0 "base"`: true,
					`/usr dir 0755 0:0 t=0`: true, `/usr/lib dir 0755 0:0`: true}
				var rest []string
				for _, l := range got {
					if !baseTree[l] {
						rest = append(rest, l)
					}
				}
				if strings.Join(rest, "\n") != strings.Join(tt.want, "\n") {
					t.Errorf("tree past the base:\n%s\nwant:\n%s", strings.Join(rest, "\n"), strings.Join(tt.want, "\n"))
				}
				return
			}
			if err == nil {
				t.Fatalf("applied; tree:\n%s", strings.Join(dump(t, tree), "\n"))
			}
			t.Log(err)
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error is not %v", tt.is)
			}
			for _, want := range append([]string{ref, digest.FromBytes(tt.layer.blob).String()}, tt.says...) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q", want)
				}
			}
			// The base layer's content was spooled by this Apply: a failed
			// image takes it back.
			if _, err := os.Stat(content); err == nil {
				checkOnly(t, content)
			}
		})
	}
}

// TestApplyBombSpool: a bomb refused after some of its files were spooled
// leaves the shared spool as it found it, and a caller's Spool is used
// instead of the cache's.
func TestApplyBombSpool(t *testing.T) {
	work := t.TempDir()
	ents := []ent{file("before", 0o644, "there before")}
	for i := 0; i < 8; i++ {
		ents = append(ents, file(fmt.Sprintf("f%d", i), 0o644, strings.Repeat(string(rune('a'+i)), 1<<20)))
	}
	bomb := zstdLayer(t, layerTar(t, ents...))
	s := blobStore{}
	layout := filepath.Join(work, "layout")
	writeLayout(t, layout, "v1", s, ociManifest(t, s, "amd64", []layer{bomb}))
	spool, err := tarfs.NewSpool(filepath.Join(work, "spool"))
	if err != nil {
		t.Fatal(err)
	}
	old, _, err := spool.Put(strings.NewReader("there before"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Apply(context.Background(), rootfs.New(), "oci:"+layout+":v1", Options{CacheDir: filepath.Join(work, "cache"), Spool: spool, Limits: tarfs.Limits{MaxBytes: 5 << 20}})
	if !errors.Is(err, tarfs.ErrLimit) {
		t.Fatalf("got %v", err)
	}
	t.Log(err)
	checkOnly(t, spool.Dir(), filepath.Base(old))
	if _, err := os.Stat(filepath.Join(work, "cache", "content")); err == nil {
		t.Error("the cache's spool was made although the caller gave one")
	}
}

// TestLayerLimits: the bound of each layer, from its blob size, the ratio
// and the absolute limit.
func TestLayerLimits(t *testing.T) {
	tests := []struct {
		size  int64
		opts  Options
		bytes int64
		says  string
	}{
		{10 << 20, Options{}, MinExpand, "limits: 1 GiB (100 times its 10.0 MiB blob, at least 1 GiB), 1048576 entries"},
		{100 << 20, Options{}, 100 * (100 << 20), "limits: 9.8 GiB"},
		{1 << 30, Options{}, 16 << 30, "limits: 16 GiB, 1048576 entries"},
		{-1, Options{}, 16 << 30, "limits: 16 GiB, 1048576 entries"},
		{1 << 30, Options{MaxRatio: -1, Limits: tarfs.Limits{MaxBytes: -1, MaxEntries: -1}}, 0, "limits: no bound on bytes, no bound on entries"},
		{1 << 62, Options{MaxRatio: 1000, Limits: tarfs.Limits{MaxBytes: -1}}, MinExpand, "1000 times"},
	}
	for _, tt := range tests {
		l, r := limitsOf(tt.opts)
		got, why := layerLimits(tt.size, l, r)
		if got.MaxBytes != tt.bytes || !strings.Contains(why, tt.says) {
			t.Errorf("size %d, %+v: %d bytes (%s), want %d (%s)", tt.size, tt.opts, got.MaxBytes, why, tt.bytes, tt.says)
		}
	}
}

// TestApplyWhiteoutsWithinImage: the case, an image whose top layer
// is an opaque "/" applied over what packages put in the tree: the image's
// own lower layers are hidden, the packages' entries stay, and the logger
// is told which, with the image and the layer. /etc is the packages' (the
// image only wrote below it), so it is named whole.
func TestApplyWhiteoutsWithinImage(t *testing.T) {
	work := t.TempDir()
	lower := gzipLayer(t, layerTar(t, file("etc/image-lower", 0o644, "l"), file("opt/x", 0o644, "x")))
	upper := gzipLayer(t, layerTar(t, tarfstest.Whiteout(".wh..wh..opq"), file("etc/image-upper", 0o644, "u")))
	s := blobStore{}
	layout := filepath.Join(work, "layout")
	writeLayout(t, layout, "v1", s, ociManifest(t, s, "amd64", []layer{lower, upper}))
	tree := rootfs.New()
	for _, p := range []string{"/bin/sh", "/etc/passwd"} {
		if err := tree.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := tree.Add(p, rootfs.NewFile(0o644, []byte(p))); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	ref := "oci:" + layout + ":v1"
	_, err := Apply(context.Background(), tree, ref, Options{CacheDir: filepath.Join(work, "cache"),
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, tree, []string{
		`/ dir 0755 0:0 t=0`,
		`/bin dir 0755 0:0 t=0`,
		`/bin/sh file 0644 0:0 "/bin/sh" t=0`,
		`/etc dir 0755 0:0 t=0`,
		`/etc/image-upper file 0644 0:0 "u"`,
		`/etc/passwd file 0644 0:0 "/etc/passwd" t=0`,
	})
	t.Log(logs.String())
	for _, want := range []string{"level=WARN", "image=" + ref, "layer=" + digest.FromBytes(upper.blob).String(), "whiteout=.wh..wh..opq", "kept=2", `paths="/bin /etc"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log does not say %q", want)
		}
	}
}
