package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"keel/image/fetch"
	"keel/image/install"
)

// ResolveOptions are Resolve's.
type ResolveOptions struct {
	Options
}

// Artifact is a bundle in a registry, as its manifest describes it. The
// annotations are the pusher's word, not the bundle's signed manifest:
// decide with them what to fetch, never what to install.
type Artifact struct {
	// Ref is the reference as resolved, by digest:
	// REGISTRY/REPO@sha256:… of the manifest, whatever tag was asked for.
	Ref string
	// Digest is the manifest's digest.
	Digest string
	// Manifest is the OCI manifest; Raw its bytes as served.
	Manifest v1.Manifest
	Raw      []byte
	// Name, Version, Compatible, Arch and BuildID are the annotations.
	Name, Version, Compatible, Arch, BuildID string
	// BlobDigest and Size are the bundle blob's.
	BlobDigest string
	Size       int64
	// Blob reads the bundle from any offset (an image/fetch Source).
	Blob *Blob

	client *client
}

// Resolve reads the manifest ref (REGISTRY/REPO:TAG or @sha256:…, with
// or without oci://) points at, checks that it is a keel bundle — an OCI
// image manifest with ArtifactType, a ConfigMediaType config and exactly
// one LayerMediaType layer (other layers only of keel's own media types),
// and the four identity annotations — and returns it. Anything else
// (a container image, an index, another artifact) is refused with
// ErrNotBundle. No blob is fetched.
func Resolve(ctx context.Context, ref string, o ResolveOptions) (*Artifact, error) {
	r, err := ParseReference(ref, o.Insecure)
	if err != nil {
		return nil, err
	}
	c, err := o.connect(ctx, r.Context(), transport.PullScope)
	if err != nil {
		return nil, err
	}
	desc, err := remote.Get(r, remote.WithContext(ctx), remote.WithTransport(c.tr))
	if err != nil {
		return nil, c.explain(err, "resolving "+r.String())
	}
	art, err := parseArtifact(desc.MediaType, desc.Manifest)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.String(), err)
	}
	art.client = c
	art.Digest = desc.Digest.String()
	art.Ref = r.Context().Digest(art.Digest).String()
	art.Blob = art.BlobSource(art.Manifest.Layers[art.bundleLayer()])
	o.logger().Debug("resolved", "ref", r.String(), "digest", art.Digest, "name", art.Name, "version", art.Version, "size", art.Size)
	return art, nil
}

// parseArtifact checks a manifest served with media type mt and reads
// the bundle's description from it.
func parseArtifact(mt types.MediaType, raw []byte) (*Artifact, error) {
	if mt != types.OCIManifestSchema1 {
		what := "not an OCI image manifest"
		switch {
		case mt.IsIndex():
			what = "an image index, not one manifest"
		case mt.IsImage():
			what = "a container image"
		}
		return nil, fmt.Errorf("%w: %s (%s), want an OCI image manifest (%s) with artifactType %s", ErrNotBundle, mt, what, types.OCIManifestSchema1, ArtifactType)
	}
	var m v1.Manifest
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrNotBundle, err)
	}
	// An artifact says what it is in artifactType, or (image-spec 1.1)
	// in its config's media type when artifactType is absent.
	if at := cmp(m.ArtifactType, string(m.Config.MediaType)); at != ArtifactType {
		what := "artifact type " + at
		if types.MediaType(at).IsConfig() {
			what = "a container image (config " + at + ")"
		}
		return nil, fmt.Errorf("%w: %s, want %s", ErrNotBundle, what, ArtifactType)
	}
	if m.Config.MediaType != ConfigMediaType {
		return nil, fmt.Errorf("%w: config media type %s, want %s", ErrNotBundle, m.Config.MediaType, ConfigMediaType)
	}
	art := &Artifact{Manifest: m, Raw: raw}
	n := 0
	for i, l := range m.Layers {
		switch {
		case l.MediaType == LayerMediaType:
			n++
			art.BlobDigest, art.Size = l.Digest.String(), l.Size
		case !strings.HasPrefix(string(l.MediaType), keelMediaPrefix):
			return nil, fmt.Errorf("%w: layer %d has media type %s, want %s", ErrNotBundle, i, l.MediaType, LayerMediaType)
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("%w: %d layers of type %s, want 1", ErrNotBundle, n, LayerMediaType)
	}
	if art.Size <= 0 {
		return nil, fmt.Errorf("%w: bundle layer of %d bytes", ErrNotBundle, art.Size)
	}
	a := m.Annotations
	art.Name, art.Version, art.Compatible, art.Arch, art.BuildID = a[AnnotationName], a[AnnotationVersion], a[AnnotationCompatible], a[AnnotationArch], a[AnnotationBuildID]
	for _, f := range []struct{ key, v string }{{AnnotationName, art.Name}, {AnnotationVersion, art.Version}, {AnnotationCompatible, art.Compatible}, {AnnotationArch, art.Arch}} {
		if f.v == "" {
			return nil, fmt.Errorf("%w: no %s annotation", ErrNotBundle, f.key)
		}
	}
	return art, nil
}

// bundleLayer is the index of the bundle's layer (parseArtifact found one).
func (a *Artifact) bundleLayer() int {
	for i, l := range a.Manifest.Layers {
		if l.MediaType == LayerMediaType {
			return i
		}
	}
	return -1
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// BlobSource reads another blob of the artifact's repository (a layer
// published beside the bundle) with the same credentials.
func (a *Artifact) BlobSource(d v1.Descriptor) *Blob {
	repo := a.client.repo
	return &Blob{
		client: &http.Client{Transport: a.client.tr},
		// The registry's own scheme is put back by the authenticating
		// transport (HTTPS unless Insecure and the registry has none).
		url:  fmt.Sprintf("https://%s/v2/%s/blobs/%s", repo.RegistryStr(), repo.RepositoryStr(), d.Digest),
		name: repo.Digest(d.Digest.String()).String(),
		size: d.Size,
		c:    a.client,
	}
}

// Blob is a blob in a registry, read from any offset. It satisfies
// image/fetch's Source.
type Blob struct {
	client *http.Client
	url    string
	name   string
	size   int64
	c      *client
}

// String names the blob, without credentials.
func (b *Blob) String() string { return b.name }

// Size is the blob's length from the manifest.
func (b *Blob) Size() int64 { return b.size }

// Open returns the blob's bytes from off to its end, and its size. It asks
// the registry with Range: bytes=off- (following a redirect to the
// registry's storage, which gets the range but never the registry's
// credentials) and checks that the answer starts at off and that the
// blob's size is the manifest's. A server that ignores the range gets its
// first off bytes read and dropped, so the caller still gets what it asked for.
func (b *Blob) Open(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
	return b.open(ctx, off, -1)
}

// OpenRange returns at most n bytes of the blob from off, asking for just
// those (Range: bytes=off-last): what a delta install fetches, chunk run
// by chunk run, on one connection.
func (b *Blob) OpenRange(ctx context.Context, off, n int64) (io.ReadCloser, error) {
	if n < 0 {
		return nil, fmt.Errorf("%s: negative length %d", b.name, n)
	}
	n = min(n, b.size-off)
	r, _, err := b.open(ctx, off, n)
	return r, err
}

// open is Open for n bytes (-1: to the end).
func (b *Blob) open(ctx context.Context, off, n int64) (io.ReadCloser, int64, error) {
	if off < 0 || off > b.size {
		return nil, b.size, fmt.Errorf("%s: offset %d outside its %d bytes", b.name, off, b.size)
	}
	if off == b.size || n == 0 {
		return io.NopCloser(strings.NewReader("")), b.size, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url, nil)
	if err != nil {
		return nil, b.size, err
	}
	switch {
	case n > 0:
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	case off > 0:
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
	}
	limit := func(r io.ReadCloser) io.ReadCloser {
		if n < 0 {
			return r
		}
		return struct {
			io.Reader
			io.Closer
		}{io.LimitReader(r, n), r}
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, b.size, fmt.Errorf("fetching %s: %w", b.name, err)
	}
	fail := func(format string, a ...any) (io.ReadCloser, int64, error) {
		resp.Body.Close()
		return nil, b.size, fmt.Errorf("fetching %s from %s: %s", b.name, resp.Request.URL.Redacted(), fmt.Sprintf(format, a...))
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if resp.ContentLength >= 0 && resp.ContentLength != b.size {
			return fail("%d bytes, the manifest says %d", resp.ContentLength, b.size)
		}
		if off > 0 {
			if _, err := io.CopyN(io.Discard, resp.Body, off); err != nil {
				return fail("skipping to %d (the server ignored the range): %v", off, err)
			}
		}
		return limit(resp.Body), b.size, nil
	case http.StatusPartialContent:
		start, total, err := contentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return fail("%v", err)
		}
		if start != off || (total >= 0 && total != b.size) {
			return fail("Content-Range %q, want bytes %d-…/%d", resp.Header.Get("Content-Range"), off, b.size)
		}
		return limit(resp.Body), b.size, nil
	}
	err = transport.CheckError(resp, http.StatusOK, http.StatusPartialContent) // reads the body
	resp.Body.Close()
	err = b.c.explain(err, "fetching "+b.name)
	if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
		// Credentials, a deleted blob: asking again will not help.
		err = fetch.Permanent(err)
	}
	return nil, b.size, err
}

// contentRange parses "bytes START-END/TOTAL" (TOTAL may be "*": -1).
func contentRange(s string) (start, total int64, err error) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	rng, tot, ok2 := strings.Cut(rest, "/")
	first, _, ok3 := strings.Cut(rng, "-")
	if !ok || !ok2 || !ok3 {
		return 0, 0, fmt.Errorf("Content-Range %q does not parse", s)
	}
	if start, err = strconv.ParseInt(first, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("Content-Range %q does not parse", s)
	}
	if tot == "*" {
		return start, -1, nil
	}
	if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("Content-Range %q does not parse", s)
	}
	return start, total, nil
}

// Latest resolves ref and tells whether it holds a newer version for the
// running image: the same compatible string and architecture (else
// install.ErrIncompatible or install.ErrWrongArch, wrapped, with the
// artifact) and a version install.CompareVersions orders after the
// running one.
func Latest(ctx context.Context, ref string, running install.Image, o ResolveOptions) (newer bool, art *Artifact, err error) {
	art, err = Resolve(ctx, ref, o)
	if err != nil {
		return false, nil, err
	}
	switch {
	case art.Compatible != running.Compatible:
		return false, art, fmt.Errorf("%s holds %s %s for %q, this image is %q: %w", art.Ref, art.Name, art.Version, art.Compatible, running.Compatible, install.ErrIncompatible)
	case art.Arch != running.Arch:
		return false, art, fmt.Errorf("%s holds %s %s for %s, this image is %s: %w", art.Ref, art.Name, art.Version, art.Arch, running.Arch, install.ErrWrongArch)
	}
	return install.CompareVersions(art.Version, running.Version) > 0, art, nil
}
