// Package oci applies the layers of an OCI or Docker image onto a rootfs.Tree.
//
// Fetching goes through go.podman.io/image/v5, over the transports that read
// image content (docker://, oci:, oci-archive:, docker-archive:, dir:; see
// transports.go for why not containers-storage: or docker-daemon:). Applying
// the layers is ours: containers/image does not flatten images.
//
// The package needs no build tag, with cgo on or off: it does not import
// containers/image's signature package (gpgme) nor alltransports (graph
// drivers). Building with containers_image_openpgp changes nothing here.
//
// Decisions, and why:
//
//   - Trust. The profile names the image and is the trust root: keel accepts
//     any image the reference resolves to, which is containers/image's
//     "insecureAcceptAnything" policy. The policy is not evaluated through the
//     signature package: a policy that accepts everything has nothing to
//     evaluate, and that package needs cgo (gpgme) or the
//     containers_image_openpgp build tag. What is verified is integrity: the
//     manifest against a digest in the reference, the config against the
//     manifest (by containers/image), and every layer blob against its digest
//     and size (here, in blob.go: ImageSource.GetBlob does not verify).
//   - Hermetic. No host configuration is read: registries.conf, registries.d,
//     certs.d and auth files all point into an empty directory under the
//     cache, and registries are contacted anonymously. Plain http (or an
//     unverified TLS certificate) is used only with Options.Insecure.
//   - Containment. The tree is in memory, so nothing in a layer can touch the
//     host; what is refused is an entry that would land outside the image's
//     root or be resolved through a symlink. Names with a ".." component are
//     refused outright (a real layer never has them; a lexical clean would
//     disagree with the kernel whenever a symlink is involved). Absolute names
//     are refused too, where Docker strips the leading "/": such a tar was made
//     for a host, not as a layer. Symlinks are recorded, never followed: an
//     entry, hard link or whiteout whose parent chain holds a symlink is
//     refused, whatever the symlink points at.
//   - Sparse files are refused: the tar reader fills their holes, so a
//     header of a few bytes could make the spool write terabytes, and no
//     image tool writes them.
//   - Whiteouts (".wh.NAME") and opaque markers (".wh..wh..opq") hide only what
//     lower layers put there, as the OCI image spec says: what the same layer
//     adds survives, whatever the order of entries inside the layer.
package oci
