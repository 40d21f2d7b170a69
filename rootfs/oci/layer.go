package oci

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"strings"

	"keel/rootfs"
)

// ApplyLayer applies one layer (a tar stream, gzip, zstd or uncompressed) to
// t: entries are added or replace what lower layers left, whiteouts and
// opaque markers remove what lower layers left, and file contents go to
// spool, which must not be nil. name identifies the layer in errors (Apply
// passes "layer <digest>" and wraps the error with the image reference).
//
// An entry that would land outside the root is refused with an *EntryError
// wrapping ErrUnsafe. On any error t holds part of the layer and should be
// discarded.
func ApplyLayer(ctx context.Context, t *rootfs.Tree, r io.Reader, name string, spool *Spool) error {
	dec, err := decompress(r)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer dec.Close()
	a := &applier{t: t, spool: spool, added: map[string]bool{}}
	tr := tar.NewReader(dec)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: reading tar: %w", name, err)
		}
		if err := a.entry(hdr, tr); err != nil {
			return &EntryError{Layer: name, Entry: hdr.Name, Err: err}
		}
	}
	// Read to the end so a corrupt compressed stream (a gzip checksum, a
	// truncated zstd frame) is noticed even after the tar's end marker.
	if _, err := io.Copy(io.Discard, dec); err != nil {
		return fmt.Errorf("%s: reading past the tar end: %w", name, err)
	}
	return nil
}

// applier holds the state of one layer being applied.
type applier struct {
	t     *rootfs.Tree
	spool *Spool
	// added holds the paths this layer has put into the tree, which its own
	// whiteouts must not remove.
	added map[string]bool
}

func (a *applier) entry(hdr *tar.Header, body io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // PAX global headers carry nothing for the tree
	}
	p, err := entryPath(hdr.Name)
	if err != nil {
		return err
	}
	if isAufsMeta(p) {
		return nil
	}
	if strings.HasPrefix(path.Base(p), whiteoutPrefix) {
		return a.whiteout(p)
	}
	if err := a.checkParents(p); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeLink {
		return a.hardLink(p, hdr.Linkname)
	}
	e, err := a.newEntry(hdr, body)
	if err != nil {
		return err
	}
	return a.put(p, e)
}

// newEntry turns a tar header (and body, for a file) into a tree entry.
func (a *applier) newEntry(hdr *tar.Header, body io.Reader) (*rootfs.Entry, error) {
	if hdr.Uid < 0 || hdr.Uid > math.MaxUint32 || hdr.Gid < 0 || hdr.Gid > math.MaxUint32 {
		return nil, fmt.Errorf("owner %d:%d out of range", hdr.Uid, hdr.Gid)
	}
	e := &rootfs.Entry{
		Mode:  uint32(hdr.Mode) & rootfs.ModePerm,
		UID:   uint32(hdr.Uid),
		GID:   uint32(hdr.Gid),
		Mtime: hdr.ModTime.Unix(),
	}
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if e.Xattrs == nil {
				e.Xattrs = map[string][]byte{}
			}
			e.Xattrs[name] = []byte(v)
		}
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse: // the reader turns the old TypeRegA into these
		if isSparse(hdr) {
			// The tar reader would fill the holes with zeros, so a header of
			// a few bytes could spool terabytes. No image tool writes
			// sparse layers.
			return nil, unsafe("sparse file of %d bytes", hdr.Size)
		}
		e.Type = rootfs.TypeFile
		if hdr.Size > 0 {
			name, n, err := a.spool.Put(body)
			if err != nil {
				return nil, err
			}
			e.Size, e.Content = n, rootfs.HostFile(name)
		}
	case tar.TypeDir:
		e.Type = rootfs.TypeDir
	case tar.TypeSymlink:
		if hdr.Linkname == "" {
			return nil, errors.New("symlink with an empty target")
		}
		// Recorded as written, even absolute or climbing: a symlink is only
		// data until followed, and nothing here follows one.
		e.Type, e.Target = rootfs.TypeSymlink, hdr.Linkname
	case tar.TypeChar, tar.TypeBlock:
		if hdr.Devmajor < 0 || hdr.Devmajor > math.MaxUint32 || hdr.Devminor < 0 || hdr.Devminor > math.MaxUint32 {
			return nil, fmt.Errorf("device number %d:%d out of range", hdr.Devmajor, hdr.Devminor)
		}
		e.Type = rootfs.TypeCharDev
		if hdr.Typeflag == tar.TypeBlock {
			e.Type = rootfs.TypeBlockDev
		}
		e.Major, e.Minor = uint32(hdr.Devmajor), uint32(hdr.Devminor)
	case tar.TypeFifo:
		e.Type = rootfs.TypeFifo
	default:
		return nil, fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	return e, nil
}

// hardLink makes p another name for the entry at the tar link target, which
// an earlier entry of this or a lower layer must have put there.
func (a *applier) hardLink(p, linkname string) error {
	target, err := entryPath(linkname)
	if err != nil {
		return fmt.Errorf("hard link to %q: %w", linkname, err)
	}
	if err := a.checkParents(target); err != nil {
		return fmt.Errorf("hard link to %q: %w", linkname, err)
	}
	e, ok := a.t.Get(target)
	if !ok {
		return fmt.Errorf("hard link to %q: %w", linkname, rootfs.ErrNotExist)
	}
	if e.Type == rootfs.TypeDir {
		return fmt.Errorf("hard link to %q: is a directory", linkname)
	}
	if target == p {
		return nil
	}
	// The same *Entry at a second path is a hard link in the tree model.
	return a.put(p, e)
}

// put adds e at p, creating missing parents, and replacing whatever lower
// layers had there: a directory over a directory keeps the children and
// takes the new metadata; anything else replaces the old entry whole.
func (a *applier) put(p string, e *rootfs.Entry) error {
	if old, ok := a.t.Get(p); ok && p != "/" && (old.Type != rootfs.TypeDir || e.Type != rootfs.TypeDir) {
		if err := a.t.Remove(p); err != nil {
			return err
		}
	}
	// Parents a layer omits are created as Docker and containerd do, root's
	// and 0755, but with mtime 0 rather than the time of the build.
	if err := a.t.MkdirAll(path.Dir(p), 0o755); err != nil {
		return err
	}
	if err := a.t.Add(p, e); err != nil {
		return err
	}
	a.added[p] = true
	return nil
}

// isSparse reports a GNU sparse file, old style or PAX.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}
