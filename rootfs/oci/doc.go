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
//     manifest (by containers/image), every layer blob against its digest
//     and size (here, in blob.go: ImageSource.GetBlob does not verify), and
//     every layer's uncompressed stream against the config's
//     rootfs.diff_ids (layer.go; a Docker schema 1 image has no config and
//     is checked by blob digests only).
//   - Hermetic. No host configuration is read: registries.conf, registries.d,
//     certs.d and auth files all point into an empty directory under the
//     cache, and registries are contacted anonymously. Plain http (or an
//     unverified TLS certificate) is used only with Options.Insecure.
//   - Containment. Applying a layer's tar is rootfs/tarfs's, the same rules
//     as for Debian packages (see its package comment): no "..", no absolute
//     names, never written through a symlink, sparse files refused, hard
//     links only to what the tree holds, Options.Protected honoured. Here,
//     with OCI whiteouts and opaque markers, which hide only what lower
//     layers of the same image put there, as the OCI image spec says. What
//     earlier sources (packages, directories, other images) put in the tree
//     stays, and each such whiteout is logged as a warning naming the image,
//     the layer, the whiteout and the paths it spared (tarfs.Stack).
//   - Bombs. A layer may expand (its tar stream, headers and padding
//     included) to 100 times its blob's size, or 1 GiB if that is more, and
//     never past 16 GiB; and hold 1 Mi entries (Options.Limits,
//     Options.MaxRatio, DefaultLimits). Real layers are far from this: gzip
//     gives 2.5 to 6 on system files (5.6 on tzdata), 54 on a layer of
//     empty files (512-byte headers), so 100 leaves room, while a layer of
//     zeros reaches 1000 with gzip and tens of thousands with zstd. The 1
//     GiB floor covers small layers of metadata; 16 GiB is past any root
//     filesystem a slot holds; a million entries is several times a full
//     desktop distribution, and the tree costs 295 bytes an entry (282 MiB for a
//     million, 504 MiB peak RSS, measured by tarfs's
//     TestApplyMillionFiles). A file whose header passes the limit is
//     refused before it is spooled.
//   - Spool. File contents go to Options.Spool, else CacheDir/content. A
//     failed Apply removes the contents it added there (tarfs.Spool.Tracked),
//     never what it found: the spool is shared by content hash. A build
//     should pass a spool in a directory of its own and remove it once the
//     image is written, so that nothing of an image stays in the cache but
//     its verified blobs.
//   - Media types. The layer types containers/image accepts: OCI and Docker,
//     uncompressed, gzip and zstd, nondistributable and foreign. Anything
//     else (an artifact, an encrypted layer) is refused before any layer is
//     fetched.
//   - Compression is told by magic number, not by media type: Docker's types
//     say "gzip" for layers of any compression.
package oci
