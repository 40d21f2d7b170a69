package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"keel/image/bundle"
)

// PushOptions are Push's.
type PushOptions struct {
	Options
	// Channel is a second tag moved to the pushed manifest ("stable"):
	// devices follow REPO:CHANNEL.
	Channel string
	// Progress is called as the bundle's bytes are sent (may be nil).
	Progress func(done, total int64)
}

// Pushed is what Push stored.
type Pushed struct {
	// Ref is the manifest's reference by digest: REGISTRY/REPO@sha256:….
	Ref string
	// Digest is the manifest's digest, which every tag now points at.
	Digest string
	// Tags are the references tagged, REF's tag then the channel's.
	Tags []string
	// Manifest is the bundle's manifest.
	Manifest bundle.Manifest
	// BlobDigest and Size are the bundle blob's: the file's sha256 and length.
	BlobDigest string
	Size       int64
}

// Push stores the bundle file bundlePath as an OCI artifact at ref
// (REGISTRY/REPO:TAG, with or without oci://). It first reads the whole
// file: a bundle that is unsigned, or does not read back intact (a
// corrupt manifest, an artifact that does not match its hash, bytes after
// the last artifact), is refused with ErrBadBundle before anything is sent.
// The signature is not checked against a key: it is the operator's own
// bundle, and devices check it before installing. Then it uploads the
// bundle and config blobs, puts the manifest by its digest, and only then
// moves the tags (ref's, then o.Channel's) to it, so a tag never points at
// a manifest whose blobs are missing.
func Push(ctx context.Context, bundlePath, ref string, o PushOptions) (Pushed, error) {
	tag, channel, err := pushTags(ref, o.Channel, o.Insecure)
	if err != nil {
		return Pushed{}, err
	}
	raw, m, layer, err := readBundle(bundlePath)
	if err != nil {
		return Pushed{}, err
	}
	config := &blob{mediaType: ConfigMediaType, size: int64(len(raw)), digest: sha256Hash(raw), open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}}
	man := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ArtifactType,
		Config:        config.descriptor(nil),
		Layers:        []v1.Descriptor{layer.descriptor(map[string]string{AnnotationTitle: filepath.Base(bundlePath)})},
		Annotations: map[string]string{
			AnnotationName:       m.Name,
			AnnotationVersion:    m.Version,
			AnnotationCompatible: m.Compatible,
			AnnotationArch:       m.Arch,
			AnnotationBuildID:    m.BuildID,
			AnnotationOCIVersion: m.Version,
		},
	}
	rawMan, err := json.Marshal(man)
	if err != nil {
		return Pushed{}, fmt.Errorf("pushing %s: %w", bundlePath, err)
	}
	digest := sha256Hash(rawMan)
	repo := tag.Context()

	c, err := o.connect(ctx, repo, transport.PushScope)
	if err != nil {
		return Pushed{}, err
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(c.tr)}
	log := o.logger()
	log.Debug("pushing bundle blob", "digest", layer.digest.String(), "size", layer.size)
	if err := writeBlob(layer, repo, o.Progress, opts); err != nil {
		return Pushed{}, c.explain(err, "pushing "+bundlePath+" to "+repo.String())
	}
	if err := remote.WriteLayer(repo, config, opts...); err != nil {
		return Pushed{}, c.explain(err, "pushing the config blob to "+repo.String())
	}
	put := rawManifest(rawMan)
	byDigest := repo.Digest(digest.String())
	refs := []name.Reference{byDigest, tag}
	if channel != nil {
		refs = append(refs, *channel)
	}
	p := Pushed{Ref: byDigest.String(), Digest: digest.String(), Manifest: m, BlobDigest: layer.digest.String(), Size: layer.size}
	for i, r := range refs {
		log.Debug("putting manifest", "ref", r.String(), "digest", digest.String())
		if err := remote.Put(r, put, opts...); err != nil {
			return p, c.explain(err, "putting the manifest at "+r.String())
		}
		if i > 0 {
			p.Tags = append(p.Tags, r.String())
		}
	}
	return p, nil
}

// pushTags parses Push's reference, which must name a tag, and the
// channel's tag in the same repository.
func pushTags(ref, channel string, insecure bool) (name.Tag, *name.Tag, error) {
	r, err := ParseReference(ref, insecure)
	if err != nil {
		return name.Tag{}, nil, err
	}
	tag, ok := r.(name.Tag)
	if !ok {
		return name.Tag{}, nil, fmt.Errorf("%w: %s: push to a tag (REGISTRY/REPO:TAG), not a digest", ErrBadRef, ref)
	}
	if channel == "" {
		return tag, nil, nil
	}
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	ch, err := name.NewTag(tag.Context().String()+":"+channel, append(opts, name.StrictValidation)...)
	if err != nil {
		return name.Tag{}, nil, fmt.Errorf("%w: channel %q is not a tag: %v", ErrBadRef, channel, err)
	}
	return tag, &ch, nil
}

// readBundle reads the bundle file whole, as a device will: its header,
// the manifest, every artifact against its hash, and nothing after the
// last. It returns the manifest's signed bytes, the manifest, and the
// file as a blob with its sha256, computed in the same pass.
func readBundle(path string) ([]byte, bundle.Manifest, *blob, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, bundle.Manifest{}, nil, fmt.Errorf("reading bundle: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, bundle.Manifest{}, nil, fmt.Errorf("reading bundle: %w", err)
	}
	if !fi.Mode().IsRegular() {
		// A bundle on a block device is followed by padding, which the
		// blob would carry and every reader refuse.
		return nil, bundle.Manifest{}, nil, fmt.Errorf("%w: %s is not a regular file", ErrBadBundle, path)
	}
	bad := func(err error) error { return fmt.Errorf("%w: %s: %w", ErrBadBundle, path, err) }
	h := sha256.New()
	cr := &countReader{r: io.TeeReader(f, h)}
	br, err := bundle.OpenUnverified(cr)
	if err != nil {
		return nil, bundle.Manifest{}, nil, bad(err)
	}
	if br.Signer == "" {
		return nil, bundle.Manifest{}, nil, bad(bundle.ErrNoSignature)
	}
	for {
		_, r, err := br.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil {
			_, err = io.Copy(io.Discard, r)
		}
		if err != nil {
			return nil, bundle.Manifest{}, nil, bad(err)
		}
	}
	if cr.n != fi.Size() {
		return nil, bundle.Manifest{}, nil, fmt.Errorf("%s changed while it was read (%d bytes, then %d)", path, fi.Size(), cr.n)
	}
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	b := &blob{mediaType: LayerMediaType, size: cr.n, digest: d, open: func() (io.ReadCloser, error) { return os.Open(path) }}
	return br.Raw, br.Manifest, b, nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// writeBlob uploads b, reporting progress through fn.
func writeBlob(b *blob, repo name.Repository, fn func(done, total int64), opts []remote.Option) error {
	if fn == nil {
		return remote.WriteLayer(repo, b, opts...)
	}
	updates := make(chan v1.Update, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for u := range updates { // closed by WriteLayer when it returns
			fn(u.Complete, u.Total)
		}
	}()
	err := remote.WriteLayer(repo, b, append(opts, remote.WithProgress(updates))...)
	<-done
	return err
}

// blob is a v1.Layer whose bytes are sent as they are (the registry's
// "compressed" form is the only one a keel blob has).
type blob struct {
	mediaType types.MediaType
	size      int64
	digest    v1.Hash
	open      func() (io.ReadCloser, error)
}

func (b *blob) descriptor(annotations map[string]string) v1.Descriptor {
	return v1.Descriptor{MediaType: b.mediaType, Size: b.size, Digest: b.digest, Annotations: annotations}
}

func (b *blob) Digest() (v1.Hash, error)             { return b.digest, nil }
func (b *blob) DiffID() (v1.Hash, error)             { return b.digest, nil }
func (b *blob) Compressed() (io.ReadCloser, error)   { return b.open() }
func (b *blob) Uncompressed() (io.ReadCloser, error) { return b.open() }
func (b *blob) Size() (int64, error)                 { return b.size, nil }
func (b *blob) MediaType() (types.MediaType, error)  { return b.mediaType, nil }

// rawManifest is a manifest to put, as remote.Put takes one.
type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error)        { return m, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

func sha256Hash(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}
