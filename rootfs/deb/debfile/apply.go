package debfile

import (
	"context"
	"fmt"
	"io"

	"keel/rootfs"
	"keel/rootfs/tarfs"
)

// Options says how a package's files go into a tree.
type Options struct {
	// Aliases are the merged-/usr symlinks the tree holds (MergedUsr() for
	// keel's trees, see MergeUsr), written through; nil for none.
	Aliases map[string]string
	// Protected lists tree paths no package may write or replace: keel
	// passes "/etc/keel".
	Protected []string
	// Limits bounds what data.tar may expand to; zero means no bound.
	Limits tarfs.Limits
}

// MergedUsr returns Debian's merged-/usr aliases: /bin, /sbin, /lib and
// /lib64 stand for their /usr counterparts.
func MergedUsr() map[string]string {
	return map[string]string{"/bin": "/usr/bin", "/sbin": "/usr/sbin", "/lib": "/usr/lib", "/lib64": "/usr/lib64"}
}

// MergeUsr makes t a merged-/usr tree, as Debian's are since bookworm:
// /usr/bin, /usr/sbin, /usr/lib and /usr/lib64 directories (root's, 0755)
// and the symlinks /bin → usr/bin and so on. Existing directories and the
// same symlinks are kept; anything else at an alias is an error, since
// packages would then write below a symlink they did not expect.
func MergeUsr(t *rootfs.Tree) error {
	al := MergedUsr()
	for _, from := range []string{"/bin", "/lib", "/lib64", "/sbin"} {
		to := al[from]
		if err := t.MkdirAll(to, 0o755); err != nil {
			return fmt.Errorf("merging /usr: %w", err)
		}
		target := to[1:] // "usr/bin", relative as Debian makes it
		if e, ok := t.Get(from); ok {
			if e.Type == rootfs.TypeSymlink && (e.Target == target || e.Target == to) {
				continue
			}
			return fmt.Errorf("merging /usr: %s is a %s, not a symlink to %s", from, e.Type, target)
		}
		if err := t.Add(from, &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: target}); err != nil {
			return fmt.Errorf("merging /usr: %w", err)
		}
	}
	return nil
}

// tarfsOptions are the rules for package name's data.tar.
func tarfsOptions(name string, spool *tarfs.Spool, opts Options, added *[]tarfs.Added) tarfs.Options {
	return tarfs.Options{
		Name: "package " + name, Kind: "package", Spool: spool,
		Aliases: opts.Aliases, Protected: opts.Protected, Limits: opts.Limits,
		// dpkg refuses them: PKG.list holds one name a line.
		NoNewlines: true,
		Added:      func(a tarfs.Added) { *added = append(*added, a) },
	}
}

// Data returns the decompressed data.tar stream; the caller closes it.
func (f *File) Data() (io.ReadCloser, error) {
	return decompress(f.DataName, io.NewSectionReader(f.data, 0, f.data.Size()))
}

// Apply puts the package's files into t, their contents into spool, and
// returns what it added in archive order: Name is the package's own path
// ("/bin/sh", what dpkg lists in PKG.list), Path where it is in t. On error
// t holds part of the package and should be discarded.
func (f *File) Apply(ctx context.Context, t *rootfs.Tree, spool *tarfs.Spool, opts Options) ([]tarfs.Added, error) {
	dec, err := f.Data()
	if err != nil {
		return nil, fmt.Errorf("package %s: %w", f.Control.Package.Name, err)
	}
	defer dec.Close()
	var added []tarfs.Added
	if err := tarfs.Apply(ctx, t, dec, tarfsOptions(f.Control.Package.Name, spool, opts, &added)); err != nil {
		return nil, err
	}
	return added, nil
}

// Unpack reads data.tar into Members, contents into spool, without applying
// them (see tarfs.Unpack); limits bound what it may expand to.
func (f *File) Unpack(ctx context.Context, spool *tarfs.Spool, limits tarfs.Limits) ([]tarfs.Member, error) {
	dec, err := f.Data()
	if err != nil {
		return nil, fmt.Errorf("package %s: %w", f.Control.Package.Name, err)
	}
	defer dec.Close()
	return tarfs.Unpack(ctx, dec, tarfs.Options{Name: "package " + f.Control.Package.Name, Spool: spool, Limits: limits})
}
