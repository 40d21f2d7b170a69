package tarfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"keel/rootfs"
)

// Options says how to apply one archive.
type Options struct {
	// Name identifies the archive in errors: "layer sha256:…", "package hello".
	Name string
	// Kind is what such an archive is called in an error about a protected
	// path ("no package may write there"): "layer", "package". Default
	// "source".
	Kind string
	// Spool receives file contents (Apply, Unpack) and serves the contents
	// Members name (Replay). Required; it must outlive the tree.
	Spool *Spool

	// Whiteouts applies OCI whiteouts and opaque markers, and skips aufs
	// bookkeeping (".wh..wh.plnk"). Without it those are ordinary names.
	Whiteouts bool
	// Stack, for a layer of an image, is shared by all the image's layers,
	// applied lowest first: whiteouts then remove only what lower layers of
	// the image put in the tree, never what other sources did (see Stack).
	// Nil: they remove anything the tree held before this archive.
	Stack *Stack
	// Spared, when set, is called for each whiteout that left entries in
	// place because no lower layer of its image put them there (with
	// Stack). A caller logs it: the image expected them gone.
	Spared func(Spared)
	// Aliases maps a directory that the tree holds as a symlink to the
	// directory it stands for: for Debian's merged /usr, "/bin" →
	// "/usr/bin", "/lib" → "/usr/lib", and so on. An entry below an alias is
	// put below the canonical directory; an entry for the alias itself is
	// skipped when it is a directory or a symlink to the canonical directory,
	// refused otherwise. Keys and values are absolute tree paths. Only these
	// aliases are rewritten: other symlink parents stay refused.
	Aliases map[string]string
	// Protected lists absolute tree paths no entry may create, replace or
	// remove ("/etc/keel"), nor replace a parent of with a non-directory.
	Protected []string
	// NoNewlines refuses names with a newline, as dpkg does: a package's file
	// list (/var/lib/dpkg/info/PKG.list) holds one name a line.
	NoNewlines bool
	// Limits bounds what the archive may expand to.
	Limits Limits

	// Added, when set, is called for every path the archive put in the
	// tree, in archive order (whiteouts and skipped entries excluded;
	// entries for an alias itself included).
	Added func(Added)
}

// Limits bounds an archive, against decompression bombs. Zero values mean no
// bound.
type Limits struct {
	// MaxBytes bounds the expanded tar stream (headers, contents and
	// padding, and whatever follows the end marker); for Replay, the sum of
	// the Members' content sizes.
	MaxBytes int64
	// MaxEntries bounds the number of entries.
	MaxEntries int
}

// Added is one path an archive put in the tree.
type Added struct {
	// Name is the entry's path as the archive states it, cleaned: "/bin/sh",
	// "/" for "./". This is what dpkg lists in PKG.list.
	Name string
	// Path is where it is in the tree: "/usr/bin/sh" when /bin is an alias.
	Path string
}

// Apply reads the uncompressed tar stream r to its end and applies it to t:
// entries are added or replace what was there, whiteouts (with
// opts.Whiteouts) remove what lower layers left, and file contents go to
// opts.Spool. An entry refused by the rules (see the package comment) is an
// *EntryError wrapping ErrUnsafe, ErrProtected, or a plain reason; a stream
// past opts.Limits is an ErrLimit. On any error t holds part of the archive
// and should be discarded.
func Apply(ctx context.Context, t *rootfs.Tree, r io.Reader, opts Options) error {
	a, err := newApplier(t, &opts)
	if err != nil {
		return err
	}
	return read(ctx, r, &opts, a.member)
}

// Unpack reads the uncompressed tar stream r to its end and returns its
// entries, with regular files' contents put into opts.Spool, without
// applying any of them: Replay does that later, as often as needed, without
// reading the archive again. Only what reading needs is checked here
// (sparse files, opts.Limits); names, links and protected paths are checked
// by Replay, against the tree they are applied to.
func Unpack(ctx context.Context, r io.Reader, opts Options) ([]Member, error) {
	if opts.Spool == nil {
		return nil, errors.New("tarfs: no spool")
	}
	var out []Member
	err := read(ctx, r, &opts, func(m *Member, body io.Reader) error {
		if m.Type == tar.TypeReg && m.Size > 0 {
			name, n, err := opts.Spool.Put(body)
			if err != nil {
				return err
			}
			m.Content, m.Size = filepath.Base(name), n
		}
		out = append(out, *m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Replay applies members (from Unpack) to t under the same rules as Apply,
// reading contents from opts.Spool. A Member naming content the spool does
// not hold gives entries whose content fails to open: callers that keep
// Members check their spool first.
func Replay(ctx context.Context, t *rootfs.Tree, members []Member, opts Options) error {
	a, err := newApplier(t, &opts)
	if err != nil {
		return err
	}
	var total int64
	for i := range members {
		if err := ctx.Err(); err != nil {
			return err
		}
		m := members[i] // a copy: the caller's slice is not changed
		if max := opts.Limits.MaxEntries; max > 0 && i >= max {
			return fmt.Errorf("%s: %w: more than %d entries", opts.Name, ErrLimit, max)
		}
		if m.Type == tar.TypeReg {
			total += m.Size
			if max := opts.Limits.MaxBytes; max > 0 && total > max {
				return fmt.Errorf("%s: %w: expands past %d bytes", opts.Name, ErrLimit, max)
			}
		}
		if err := a.member(&m, nil); err != nil {
			return &EntryError{Source: opts.Name, Entry: m.Name, Err: err}
		}
	}
	return nil
}

// read calls fn for every entry of the tar stream r, with the entry's body,
// then reads r to its end so that a damaged compressed stream under it (a
// gzip checksum, a truncated xz block) is noticed even after the tar's end
// marker.
func read(ctx context.Context, r io.Reader, opts *Options, fn func(*Member, io.Reader) error) error {
	cr := &limitReader{r: r, max: opts.Limits.MaxBytes}
	tr := tar.NewReader(cr)
	for n := 0; ; {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: reading tar: %w", opts.Name, err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue // PAX global headers carry nothing for the tree
		}
		if n++; opts.Limits.MaxEntries > 0 && n > opts.Limits.MaxEntries {
			return fmt.Errorf("%s: %w: more than %d entries", opts.Name, ErrLimit, opts.Limits.MaxEntries)
		}
		m, err := memberOf(hdr)
		if err == nil && opts.Limits.MaxBytes > 0 && m.Size > opts.Limits.MaxBytes-cr.n {
			// Refused on its header, before a byte of it is spooled.
			err = fmt.Errorf("%w: a file of %d bytes expands past %d bytes", ErrLimit, m.Size, opts.Limits.MaxBytes)
		}
		if err == nil {
			err = fn(m, tr)
		}
		if err != nil {
			return &EntryError{Source: opts.Name, Entry: hdr.Name, Err: err}
		}
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return fmt.Errorf("%s: reading past the tar end: %w", opts.Name, err)
	}
	return nil
}

// limitReader fails once more than max bytes (when max > 0) were read.
type limitReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.max > 0 {
		if l.n >= l.max {
			// Only an error if there is more to read.
			var one [1]byte
			k, err := l.r.Read(one[:])
			if k > 0 {
				return 0, fmt.Errorf("%w: expands past %d bytes", ErrLimit, l.max)
			}
			return 0, err
		}
		if rest := l.max - l.n; int64(len(p)) > rest {
			p = p[:rest]
		}
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	return n, err
}
