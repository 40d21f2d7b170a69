package oci

import (
	"errors"
	"fmt"
)

// ErrUnsafe marks a layer entry refused because it would land outside the
// image's root or be written through a symlink.
var ErrUnsafe = errors.New("unsafe layer entry")

// ErrDigestMismatch marks a blob whose content does not match its digest or
// size.
var ErrDigestMismatch = errors.New("digest mismatch")

// EntryError is the error for one entry of one layer.
type EntryError struct {
	Layer string // the layer's name as given to ApplyLayer ("layer sha256:..." from Apply, whose error adds the image)
	Entry string // the entry's name as written in the tar
	Err   error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("%s: entry %q: %v", e.Layer, e.Entry, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// unsafe returns an ErrUnsafe with a reason.
func unsafe(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsafe, fmt.Sprintf(format, args...))
}
