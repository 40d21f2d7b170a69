package oci

import (
	"errors"

	"keel/rootfs/tarfs"
)

// ErrUnsafe marks a layer entry refused because it would land outside the
// image's root or be written through a symlink (tarfs.ErrUnsafe).
var ErrUnsafe = tarfs.ErrUnsafe

// ErrDigestMismatch marks a blob whose content does not match its digest or
// size.
var ErrDigestMismatch = errors.New("digest mismatch")
