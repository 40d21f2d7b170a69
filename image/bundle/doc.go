// Package bundle reads and writes keel update bundles (DESIGN §5).
//
// A bundle is one stream, so it can be installed from a file, a pipe or an
// HTTP body without a temporary copy and without seeking:
//
//	offset  size  field
//	0       8     magic "KEELBNDL"
//	8       4     format version, big-endian uint32 (1)
//	12      4     manifest length M, big-endian uint32 (at most MaxManifest)
//	16      4     signature length S, big-endian uint32 (0: unsigned, or 72)
//	20      M     manifest: JSON, the exact bytes that are signed
//	20+M    S     signature: key id (8 bytes) then ed25519 signature (64 bytes)
//	20+M+S  ...   the artifacts' bytes, back to back, in the manifest's order
//
// The manifest lists the artifacts with their sizes and sha256, in the
// order the installer writes them: rootfs, kernel, initrd (InstallOrder),
// or rootfs, uki (UKIOrder: a unified kernel image, signed for Secure Boot,
// that boots either slot). A bundle carries exactly one of the two sets; the
// format version is 1 for both. The manifest may also describe the
// rootfs's dm-verity tree (Manifest.Verity), for display only: the root
// hash that the kernel checks the root against is the one in the UKI's
// signed command line. The key id is the first
// 8 bytes of sha256 of the signing public key; it only picks which trusted
// key to verify with, so a bundle signed by a key the reader does not trust
// is told apart from one whose manifest was altered. Nothing but the
// manifest is signed: the artifacts are bound to it by their hashes, checked
// as they stream past.
//
// A bundle ends with its last artifact. Reading past it (Reader.Next after
// the last artifact) finds the end of the stream, or the bundle is refused
// as corrupt: a valid bundle with anything appended, padding included, is
// not that bundle, and every reader (keel bundle inspect --check, keel
// update, keelctl install) gives the same verdict. The one exception is a
// bundle written at the start of a block device, whose size is the
// device's (a virtual disk rounded up to whole MiB, a USB stick): the reader
// of a device sets Reader.Padded (IsDevice tells), and then reads exactly
// the length the header and manifest give and nothing after it.
package bundle
