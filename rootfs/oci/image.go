package oci

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
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
	// pulled from registries are kept there by digest, file contents are
	// spooled there, and tree entries read their content from there, so it
	// must outlive the tree. Required. It holds blobs/ (verified layers by
	// digest), content/ (the spool), config/ (the empty configuration
	// containers/image is pointed at) and tmp/ (archives being read).
	CacheDir string
	// Insecure allows registries over plain http or with a certificate that
	// does not verify (a registry on 127.0.0.1 in a test, say).
	Insecure bool
	// Protected lists tree paths no layer may write or remove (keel passes
	// "/etc/keel"); see tarfs.Options.Protected.
	Protected []string
	// Limits bounds what each layer may expand to; zero means no bound.
	Limits tarfs.Limits
	// Logger receives progress; nil discards it.
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
	spool, err := tarfs.NewSpool(filepath.Join(opts.CacheDir, "content"))
	if err != nil {
		return nil, err
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
	if err := checkPlatform(ctx, img, sys); err != nil {
		return nil, err
	}
	b := &blobs{src: src}
	// Only a registry is worth caching: the other transports read local
	// files already.
	if imgRef.Transport().Name() == "docker" {
		b.cache = filepath.Join(opts.CacheDir, "blobs")
	}
	info := &Info{Ref: ref, Digest: mdigest}
	for _, l := range img.LayerInfos() {
		if strings.HasSuffix(l.MediaType, "+encrypted") {
			return nil, fmt.Errorf("layer %s: encrypted layers are not supported", l.Digest)
		}
		log.Info("applying layer", "image", ref, "layer", l.Digest, "size", l.Size)
		lopts := tarfs.Options{
			Name: "layer " + l.Digest.String(), Spool: spool,
			Protected: opts.Protected, Limits: opts.Limits,
		}
		if err := applyBlob(ctx, t, b, l, lopts); err != nil {
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
func checkPlatform(ctx context.Context, img types.Image, sys *types.SystemContext) error {
	cfg, err := img.OCIConfig(ctx)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	if cfg.OS != "" && cfg.OS != sys.OSChoice {
		return fmt.Errorf("image is for OS %q, not %q", cfg.OS, sys.OSChoice)
	}
	if cfg.Architecture != "" && cfg.Architecture != sys.ArchitectureChoice {
		return fmt.Errorf("image is for architecture %q, not %q", cfg.Architecture, sys.ArchitectureChoice)
	}
	return nil
}

// applyBlob applies one layer blob and checks its digest. A blob that fails
// the check is reported as such even when it also failed to parse: the
// digest says why.
func applyBlob(ctx context.Context, t *rootfs.Tree, b *blobs, l types.BlobInfo, opts tarfs.Options) error {
	v, c, err := b.open(ctx, l)
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer c.Close()
	aerr := ApplyLayer(ctx, t, v, opts)
	if verr := v.finish(); verr != nil {
		b.discard(l)
		if aerr != nil {
			return fmt.Errorf("layer %s: %w (and applying it: %v)", l.Digest, verr, aerr)
		}
		return fmt.Errorf("layer %s: %w", l.Digest, verr)
	}
	return aerr
}
