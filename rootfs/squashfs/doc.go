// Package squashfs writes squashfs 4.0 images from a rootfs.Tree: every entry
// type, xattrs, hard links, sparse blocks, fragments, duplicate detection and
// an NFS export table, with data blocks compressed in parallel and output that
// is byte-identical whatever the number of workers.
//
// The API:
//
//	Write(ctx, w io.WriterAt, tree *rootfs.Tree, opts Options) (*Stats, error)
//	WriteFile(ctx, name string, tree *rootfs.Tree, opts Options) (*Stats, error)
//
// WriteFile writes to a temporary file beside name and renames it into place
// only on success.
package squashfs
