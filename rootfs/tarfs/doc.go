// Package tarfs applies tar archives onto the tree model (rootfs.Tree) under
// keel's containment rules. Every tar a build reads goes through it: OCI
// image layers (rootfs/oci) and the data.tar of Debian packages
// (rootfs/deb/debfile). Fetching, checking digests and decompressing stay
// with those callers; tarfs sees an uncompressed tar stream, or the
// Members of one that were unpacked earlier (Unpack, then Replay).
//
// Decisions, and why:
//
//   - Containment. The tree is in memory, so nothing in an archive can touch
//     the host; what is refused is an entry that would land outside the
//     image's root or be resolved through a symlink. Names with a ".."
//     component are refused outright (a real archive never has them; a
//     lexical clean would disagree with the kernel whenever a symlink is
//     involved). Absolute names are refused too, where Docker strips the
//     leading "/": such a tar was made for a host, not as a layer. Symlinks
//     are recorded, never followed: an entry, hard link or whiteout whose
//     parent chain holds a symlink is refused, whatever the symlink points at.
//   - Aliases are not symlink following. Debian's merged /usr makes /bin a
//     symlink to usr/bin, and packages still ship ./bin/sh. keel makes those
//     symlinks itself, so Options.Aliases names them: an entry below an alias
//     is written below its canonical directory, and an entry for the alias
//     itself (a directory, or the same symlink) is skipped. Only the aliases
//     the caller names are rewritten; any other symlink parent stays refused.
//   - Protected paths. keel owns /etc/keel: its content is exactly what the
//     profile declares. No entry may create, replace or remove anything under
//     a path in Options.Protected, nor replace one of its parents with
//     something other than a directory, nor hard-link to it; no whiteout may
//     remove it.
//   - Sparse files are refused: the tar reader fills their holes, so a header
//     of a few bytes could make the spool write terabytes, and no image or
//     package tool writes them.
//   - Hard links point at entries already in the tree (from this archive or
//     an earlier one), never at the host. The same *rootfs.Entry at two
//     paths is a hard link in the tree model.
//   - Whiteouts (".wh.NAME") and opaque markers (".wh..wh..opq"), with
//     Options.Whiteouts, hide only what lower layers put there, as the OCI
//     image spec says: what the same layer adds survives, whatever the order
//     of entries inside the layer. Without it (Debian packages) such a name
//     is just a file name.
//   - Whiteouts stay within their image. The tree an image is applied onto
//     already holds what earlier sources put there (packages, directories,
//     other images); an image's whiteouts hide only what its own lower
//     layers added, which a Stack shared by its layers records (implicit
//     parents included). What else they would have removed stays, and
//     Options.Spared names it, for the caller to log: an opaque "/" in an
//     image applied over packages must not silently leave a tree without
//     /bin/sh. Without a Stack a layer's whiteouts hide anything the tree
//     held.
//   - Bombs. Options.Limits bounds the bytes an archive expands to and its
//     number of entries; off by default. A file whose header alone says it
//     would pass the byte limit is refused before a byte of it is spooled.
//   - Spool. Contents are stored by their hash and shared across archives,
//     images, packages and processes, so a failed archive cannot simply
//     remove what it spooled: a Tracked spool remembers what it added (not
//     what it found), and Discard takes exactly that back.
package tarfs
