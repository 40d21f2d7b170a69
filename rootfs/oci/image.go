package oci

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/image"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/types"

	"keel/rootfs"
	"keel/rootfs/tarfs"
)

// Options says how to fetch an image.
type Options struct {
	// Arch is the architecture to pick from a multi-platform image and to
	// require of a single-platform one: "x86_64" (the default) or "aarch64",
	// or their OCI names "amd64" and "arm64". The OS is always linux.
	Arch string
	// CacheDir is a directory this package owns under keel's cache: layers
	// pulled from registries are kept there by digest, and file contents
	// are spooled there unless Spool says otherwise. Required. It holds
	// blobs/ (verified layers by digest), content/ (the default spool),
	// config/ (the empty configuration containers/image is pointed at) and
	// tmp/ (archives being read).
	CacheDir string
	// Spool receives the layers' file contents, and the tree's entries read
	// them from there until the tree is written: the caller removes its
	// directory then (keel build spools into a directory of its own). Nil:
	// CacheDir/content, which stays and must outlive the tree. Either way a
	// failed Apply removes the contents it added.
	Spool *tarfs.Spool
	// Insecure allows registries over plain http or with a certificate that
	// does not verify (a registry on 127.0.0.1 in a test, say).
	Insecure bool
	// Protected lists tree paths no layer may write or remove (keel passes
	// "/etc/keel"); see tarfs.Options.Protected.
	Protected []string
	// Limits bounds what each layer may expand to: the bytes of its tar
	// stream and its number of entries. A zero field takes DefaultLimits'
	// value, a negative one means no bound.
	Limits tarfs.Limits
	// MaxRatio bounds a layer's expanded bytes by the size of its blob: at
	// most MaxRatio times the blob, or MinExpand, whichever is more, and
	// never past Limits.MaxBytes. Zero means DefaultMaxRatio, negative no
	// bound.
	MaxRatio int64
	// Logger receives progress, and a warning for each whiteout that
	// leaves what earlier sources put in the tree; nil discards them.
	Logger *slog.Logger
}

// Info describes the image that was applied.
type Info struct {
	Ref    string          // the reference as given
	Digest digest.Digest   // the manifest whose layers were applied (for a multi-platform image, the chosen platform's)
	Layers []digest.Digest // layer digests as the transport lists them (docker-archive: diff IDs), lowest first
}

// Apply fetches the image ref (any containers/image transport:
// "docker://registry/name:tag", "oci:DIR:tag", "oci-archive:FILE",
// "docker-archive:FILE", "dir:DIR") and applies its layers to t in order.
// Each layer's blob is checked against its digest, its uncompressed stream
// against the config's rootfs.diff_ids, and its expansion against
// Options.Limits and Options.MaxRatio. The layers' whiteouts remove only
// what lower layers of the image put in t (see tarfs.Stack).
// On error t holds part of the image and should be discarded.
func Apply(ctx context.Context, t *rootfs.Tree, ref string, opts Options) (*Info, error) {
	info, err := apply(ctx, t, ref, opts)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	return info, nil
}

func apply(ctx context.Context, t *rootfs.Tree, ref string, opts Options) (*Info, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.CacheDir == "" {
		return nil, errors.New("no cache directory")
	}
	arch, err := goArch(opts.Arch)
	if err != nil {
		return nil, err
	}
	sys, err := systemContext(opts.CacheDir, arch, opts.Insecure)
	if err != nil {
		return nil, fmt.Errorf("preparing cache: %w", err)
	}
	imgRef, err := parseRef(ref)
	if err != nil {
		return nil, err
	}
	src, err := imgRef.NewImageSource(ctx, sys)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	img, mdigest, err := chooseImage(ctx, sys, src)
	if err != nil {
		return nil, err
	}
	cfg, err := img.OCIConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if err := checkPlatform(cfg, sys); err != nil {
		return nil, err
	}
	layers := img.LayerInfos()
	for _, l := range layers {
		if err := checkMediaType(l.MediaType); err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
	}
	diffIDs, err := layerDiffIDs(ctx, img, cfg, len(layers))
	if err != nil {
		return nil, err
	}
	b := &blobs{src: src}
	// Only a registry is worth caching: the other transports read local
	// files already.
	if imgRef.Transport().Name() == "docker" {
		b.cache = filepath.Join(opts.CacheDir, "blobs")
	}
	spool := opts.Spool
	if spool == nil {
		if spool, err = tarfs.NewSpool(filepath.Join(opts.CacheDir, "content")); err != nil {
			return nil, err
		}
	}
	spool = spool.Tracked()
	limits, ratio := limitsOf(opts)
	stack := tarfs.NewStack()
	info := &Info{Ref: ref, Digest: mdigest}
	for i, l := range layers {
		log.Info("applying layer", "image", ref, "layer", l.Digest, "size", l.Size)
		lim, why := layerLimits(l.Size, limits, ratio)
		lopts := tarfs.Options{
			Name: "layer " + l.Digest.String(), Spool: spool,
			Protected: opts.Protected, Limits: lim, Stack: stack,
			Spared: func(s tarfs.Spared) {
				shown := s.Paths
				if len(shown) > 10 {
					shown = shown[:10]
				}
				log.Warn("a whiteout of the image leaves what earlier sources put in the tree",
					"image", ref, "layer", l.Digest, "whiteout", s.Entry,
					"kept", len(s.Paths), "paths", strings.Join(shown, " "))
			},
		}
		if err := applyBlob(ctx, t, b, l, diffIDs[i], lopts); err != nil {
			if errors.Is(err, tarfs.ErrLimit) {
				err = fmt.Errorf("%w (%s)", err, why)
			}
			if derr := spool.Discard(); derr != nil {
				log.Warn("cleaning the spool after a failed image", "image", ref, "err", derr)
			}
			return nil, err
		}
		info.Layers = append(info.Layers, l.Digest)
	}
	return info, nil
}

// chooseImage resolves a multi-platform image to the one for sys's platform,
// and returns it with its manifest digest. The digest is checked against the
// reference or the list by containers/image.
func chooseImage(ctx context.Context, sys *types.SystemContext, src types.ImageSource) (types.Image, digest.Digest, error) {
	raw, mt, err := image.UnparsedInstance(src, nil).Manifest(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("reading manifest: %w", err)
	}
	var instance *digest.Digest
	if manifest.MIMETypeIsMultiImage(mt) {
		list, err := manifest.ListFromBlob(raw, mt)
		if err != nil {
			return nil, "", fmt.Errorf("parsing manifest list: %w", err)
		}
		d, err := list.ChooseInstance(sys)
		if err != nil {
			return nil, "", err
		}
		instance = &d
	}
	unparsed := image.UnparsedInstance(src, instance)
	img, err := image.FromUnparsedImage(ctx, sys, unparsed)
	if err != nil {
		return nil, "", fmt.Errorf("reading manifest: %w", err)
	}
	raw, _, err = img.Manifest(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("reading manifest: %w", err)
	}
	d, err := manifest.Digest(raw)
	if err != nil {
		return nil, "", fmt.Errorf("manifest digest: %w", err)
	}
	return img, d, nil
}

// checkPlatform refuses an image built for another OS or architecture; an
// image whose config does not say is taken as it is.
func checkPlatform(cfg *imgspecv1.Image, sys *types.SystemContext) error {
	if cfg.OS != "" && cfg.OS != sys.OSChoice {
		return fmt.Errorf("image is for OS %q, not %q", cfg.OS, sys.OSChoice)
	}
	if cfg.Architecture != "" && cfg.Architecture != sys.ArchitectureChoice {
		return fmt.Errorf("image is for architecture %q, not %q", cfg.Architecture, sys.ArchitectureChoice)
	}
	return nil
}

// layerDiffIDs returns the digest each layer's uncompressed stream must
// have, from the config's rootfs.diff_ids. A Docker schema 1 image has no
// config: its layers are checked against their blob digests only ("" here).
func layerDiffIDs(ctx context.Context, img types.Image, cfg *imgspecv1.Image, n int) ([]digest.Digest, error) {
	_, mt, err := img.Manifest(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	if mt == manifest.DockerV2Schema1MediaType || mt == manifest.DockerV2Schema1SignedMediaType {
		return make([]digest.Digest, n), nil
	}
	ids := cfg.RootFS.DiffIDs
	if len(ids) != n {
		return nil, fmt.Errorf("%w: the config lists %d rootfs.diff_ids for %d layers", ErrDigestMismatch, len(ids), n)
	}
	for _, d := range ids {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("config: rootfs.diff_ids: %q: %w", d, err)
		}
	}
	return ids, nil
}

// applyBlob applies one layer blob and checks its digest, then its diff ID
// (unless diffID is ""). A blob that fails the check is reported as such
// even when it also failed to parse: the digest says why.
func applyBlob(ctx context.Context, t *rootfs.Tree, b *blobs, l types.BlobInfo, diffID digest.Digest, opts tarfs.Options) error {
	v, c, err := b.open(ctx, l)
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer c.Close()
	alg := digest.Canonical
	if diffID != "" {
		alg = diffID.Algorithm()
	}
	got, aerr := applyLayer(ctx, t, v, opts, alg)
	if verr := v.finish(); verr != nil {
		b.discard(l)
		if aerr != nil {
			return fmt.Errorf("layer %s: %w (and applying it: %v)", l.Digest, verr, aerr)
		}
		return fmt.Errorf("layer %s: %w", l.Digest, verr)
	}
	if aerr != nil {
		return aerr
	}
	if diffID != "" && got != diffID {
		return fmt.Errorf("layer %s: %w: its uncompressed content has digest %s, the config's rootfs.diff_ids says %s",
			l.Digest, ErrDigestMismatch, got, diffID)
	}
	return nil
}
