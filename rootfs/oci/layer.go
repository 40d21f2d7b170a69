package oci

import (
	"context"
	"fmt"
	"io"

	"keel/rootfs"
	"keel/rootfs/tarfs"
)

// ApplyLayer applies one layer (a tar stream, gzip, zstd or uncompressed) to
// t through tarfs, with OCI whiteouts: entries are added or replace what
// lower layers left, whiteouts and opaque markers remove what lower layers
// left, and file contents go to opts.Spool, which must not be nil. opts.Name
// identifies the layer in errors (Apply passes "layer <digest>" and wraps the
// error with the image reference); opts.Kind defaults to "layer".
//
// An entry that would land outside the root is refused with a
// *tarfs.EntryError wrapping ErrUnsafe. On any error t holds part of the
// layer and should be discarded.
func ApplyLayer(ctx context.Context, t *rootfs.Tree, r io.Reader, opts tarfs.Options) error {
	dec, err := decompress(r)
	if err != nil {
		return fmt.Errorf("%s: %w", opts.Name, err)
	}
	defer dec.Close()
	opts.Whiteouts = true
	if opts.Kind == "" {
		opts.Kind = "layer"
	}
	return tarfs.Apply(ctx, t, dec, opts)
}
