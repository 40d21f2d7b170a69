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
//   - Containment. Applying a layer's tar is rootfs/tarfs's, the same rules
//     as for Debian packages (see its package comment): no "..", no absolute
//     names, never written through a symlink, sparse files refused, hard
//     links only to what the tree holds, Options.Protected honoured. Here,
//     with OCI whiteouts and opaque markers, which hide only what lower
//     layers put there, as the OCI image spec says.
//   - Compression is told by magic number, not by media type: Docker's types
//     say "gzip" for layers of any compression.
package oci
