package oci

import (
	"context"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"

	"keel/rootfs"
	"keel/rootfs/tarfs"
)

// ApplyLayer applies one layer (a tar stream, gzip, zstd or uncompressed) to
// t through tarfs, with OCI whiteouts: entries are added or replace what
// lower layers left, whiteouts and opaque markers remove what lower layers
// left (with opts.Stack, only what lower layers of the same image left), and
// file contents go to opts.Spool, which must not be nil. opts.Name
// identifies the layer in errors (Apply passes "layer <digest>" and wraps the
// error with the image reference); opts.Kind defaults to "layer".
// opts.Limits is used as it is: zero fields mean no bound here.
//
// An entry that would land outside the root is refused with a
// *tarfs.EntryError wrapping ErrUnsafe. On any error t holds part of the
// layer and should be discarded.
func ApplyLayer(ctx context.Context, t *rootfs.Tree, r io.Reader, opts tarfs.Options) error {
	_, err := applyLayer(ctx, t, r, opts, digest.Canonical)
	return err
}

// applyLayer is ApplyLayer, returning the digest of the layer's
// uncompressed stream (its diff ID), computed with alg.
func applyLayer(ctx context.Context, t *rootfs.Tree, r io.Reader, opts tarfs.Options, alg digest.Algorithm) (digest.Digest, error) {
	if !alg.Available() {
		return "", fmt.Errorf("%s: digest algorithm %q is not available", opts.Name, alg)
	}
	dec, err := decompress(r)
	if err != nil {
		return "", fmt.Errorf("%s: %w", opts.Name, err)
	}
	defer dec.Close()
	opts.Whiteouts = true
	if opts.Kind == "" {
		opts.Kind = "layer"
	}
	// tarfs reads the stream to its very end, past the tar's end marker,
	// so the digest covers all of it, as a diff ID does.
	d := alg.Digester()
	if err := tarfs.Apply(ctx, t, io.TeeReader(dec, d.Hash()), opts); err != nil {
		return "", err
	}
	return d.Digest(), nil
}
