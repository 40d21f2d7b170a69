package tarfs

import (
	"errors"
	"fmt"
)

// ErrUnsafe marks an entry refused because it would land outside the root or
// be written through a symlink.
var ErrUnsafe = errors.New("unsafe entry")

// ErrProtected marks an entry that would write, replace or remove a path in
// Options.Protected.
var ErrProtected = errors.New("protected path")

// ErrLimit marks an archive that expands past Options.Limits.
var ErrLimit = errors.New("archive too large")

// EntryError is the error for one entry of one archive.
type EntryError struct {
	Source string // the archive's name, Options.Name ("layer sha256:...", "package hello")
	Entry  string // the entry's name as written in the tar
	Err    error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("%s: entry %q: %v", e.Source, e.Entry, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// unsafe returns an ErrUnsafe with a reason.
func unsafe(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsafe, fmt.Sprintf(format, args...))
}

// protectedError is what ErrProtected says to a user: the protected path,
// and what the entry would have done to it.
type protectedError struct {
	prefix  string // the protected path
	kind    string // "package", "layer", ...
	parent  string // set when the entry would replace this parent of prefix
	removes string // set when a whiteout of this path would remove prefix
}

func (e *protectedError) Error() string {
	switch {
	case e.parent != "":
		return fmt.Sprintf("%s must stay a directory: it holds %s, which is keel's own", e.parent, e.prefix)
	case e.removes != "":
		return fmt.Sprintf("removing %s would remove %s, which is keel's own", e.removes, e.prefix)
	}
	return fmt.Sprintf("%s is keel's own: no %s may write there", e.prefix, e.kind)
}

func (e *protectedError) Unwrap() error { return ErrProtected }
