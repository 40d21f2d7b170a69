package bundle

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"strings"
	"testing"
)

// TestIndexed writes bundles with an index first (its content is
// image/delta's business: here any bytes) and reads them back: both
// artifact sets, the order checked, the build id the same as without the
// index, the head size and offsets right.
func TestIndexed(t *testing.T) {
	pub, priv := testKey(t, 1)
	content, srcs := testArtifacts(t)
	idx := []byte("chunks of the rest")
	var plain, indexed bytes.Buffer
	if err := Write(context.Background(), &plain, testManifest, priv, srcs); err != nil {
		t.Fatal(err)
	}
	m := testManifest
	m.BuildID = ""
	if err := Write(context.Background(), &indexed, m, priv, append([]Source{BytesSource(Index, idx)}, srcs...)); err != nil {
		t.Fatal(err)
	}
	br, err := Open(bytes.NewReader(indexed.Bytes()), []ed25519.PublicKey{pub})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(br.Manifest.Order(), " "); got != "index rootfs kernel initrd" {
		t.Errorf("order %s", got)
	}
	if got := strings.Join(br.Manifest.Files(), " "); got != "kernel initrd" {
		t.Errorf("files %s", got)
	}
	pbr, err := Open(bytes.NewReader(plain.Bytes()), []ed25519.PublicKey{pub})
	if err != nil {
		t.Fatal(err)
	}
	if want := BuildID(pbr.Manifest.Artifacts); br.Manifest.BuildID != want {
		t.Errorf("build id %s with the index, %s without", br.Manifest.BuildID, want)
	}
	if hs, err := HeadSize(indexed.Bytes()[:HeaderSize]); err != nil || hs != br.HeadSize() || hs != int64(HeaderSize+len(br.Raw)+sigSize) {
		t.Errorf("HeadSize %d (%v), reader says %d", hs, err, br.HeadSize())
	}
	for _, name := range []string{Index, Rootfs, Kernel, Initrd} {
		off, ok := br.Manifest.Offset(br.HeadSize(), name)
		a, _ := br.Manifest.Artifact(name)
		want := content[name]
		if name == Index {
			want = idx
		}
		if !ok || !bytes.Equal(indexed.Bytes()[off:off+a.Size], want) {
			t.Errorf("%s: offset %d (%v) does not hold it", name, off, ok)
		}
		// Verified checks bytes from elsewhere as Next checks the stream.
		got, err := io.ReadAll(Verified(a, bytes.NewReader(want)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: Verified: %v", name, err)
		}
		if a.Size > 0 {
			bad := bytes.Clone(want)
			bad[len(bad)-1] ^= 1
			if _, err := io.ReadAll(Verified(a, bytes.NewReader(bad))); !errors.Is(err, ErrHashMismatch) {
				t.Errorf("%s: Verified of a flipped byte: %v", name, err)
			}
			if _, err := io.ReadAll(Verified(a, bytes.NewReader(want[:len(want)-1]))); !errors.Is(err, ErrTruncated) {
				t.Errorf("%s: Verified of a short stream: %v", name, err)
			}
		}
	}
	if _, ok := br.Manifest.Offset(br.HeadSize(), UKI); ok {
		t.Error("offset of an artifact the bundle does not have")
	}
	got, err := readAll(br)
	if err != nil || !bytes.Equal(got[Index], idx) || !bytes.Equal(got[Rootfs], content[Rootfs]) {
		t.Fatalf("reading back: %v", err)
	}

	// The unified kernel image set with an index.
	var uki bytes.Buffer
	um := testManifest
	um.Verity = verity(func(*Verity) {})
	usrcs := []Source{BytesSource(Index, idx), BytesSource(Rootfs, content[Rootfs]), BytesSource(UKI, []byte("MZ"))}
	if err := Write(context.Background(), &uki, um, priv, usrcs); err != nil {
		t.Fatal(err)
	}
	ubr, err := Open(bytes.NewReader(uki.Bytes()), []ed25519.PublicKey{pub})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ubr.Manifest.Order(), " "); got != "index rootfs uki" || strings.Join(ubr.Manifest.Files(), " ") != "uki" {
		t.Errorf("UKI bundle: order %s, files %v", got, ubr.Manifest.Files())
	}
}

// TestIndexPlace: an index anywhere but first, twice, or larger than
// MaxIndex makes a manifest Check refuses.
func TestIndexPlace(t *testing.T) {
	a := func(name string, size int64) Artifact {
		return Artifact{Name: name, Size: size, SHA256: strings.Repeat("ab", 32)}
	}
	for _, tt := range []struct {
		name string
		arts []Artifact
		want string
	}{
		{"index after the rootfs", []Artifact{a(Rootfs, 1), a(Index, 1), a(Kernel, 1), a(Initrd, 1)}, `artifact 0 is "rootfs", want "index"`},
		{"index last", []Artifact{a(Rootfs, 1), a(Kernel, 1), a(Initrd, 1), a(Index, 1)}, `artifact 0 is "rootfs", want "index"`},
		{"two indexes", []Artifact{a(Index, 1), a(Index, 1), a(Rootfs, 1), a(Kernel, 1), a(Initrd, 1)}, "5 artifacts, want 4"},
		{"index alone", []Artifact{a(Index, 1)}, "1 artifacts, want 4"},
		{"index too large", []Artifact{a(Index, MaxIndex+1), a(Rootfs, 1), a(Kernel, 1), a(Initrd, 1)}, "index of 67108865 bytes"},
	} {
		m := testManifest
		m.Format, m.Artifacts = Format, tt.arts
		if err := m.Check(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrCorrupt with %q", tt.name, err, tt.want)
		}
	}
	m := testManifest
	m.Format, m.Artifacts = Format, []Artifact{a(Index, MaxIndex), a(Rootfs, 1), a(UKI, 1)}
	if err := m.Check(); err != nil {
		t.Errorf("index of MaxIndex bytes with a UKI: %v", err)
	}
}
