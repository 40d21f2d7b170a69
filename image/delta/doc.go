// Package delta lets a device fetch only the parts of an update bundle it
// does not already have.
//
// A bundle may carry an index as its first artifact (bundle.Index): the
// content-defined chunks of every artifact after it (the rootfs, then the
// kernel and initrd or the unified kernel image), each chunk's size and
// sha256, cut by restic/chunker's Rabin fingerprint with DefaultParams.
// The signed manifest binds the index by its sha256 like any artifact, so
// every chunk is checked against signed data before it is used.
//
// A chunk is a byte range of the bundle itself: the artifact's offset in
// the bundle (after the header, the manifest and the artifacts before it)
// plus the chunk's offset in the artifact. A device keeps the index of
// each slot's bundle on the ESP (/keel/<slot>/index), looks each chunk of
// the new bundle up by sha256 among the running slot's, reads those it
// finds from the running slot's partition and files (hashing them again),
// and fetches the rest from the bundle with HTTP range requests, adjacent
// missing chunks in one request (Reader, Remote). So the bundle stays one
// file that a web server, a CDN or a registry blob serves as it is, and a
// device that cannot do ranges, or one with nothing to reuse, reads it
// whole as before.
//
// casync and desync store each chunk as a file of its own (store/xxxx/
// HASH.cacnk, compressed), beside a .caibx index: the publisher uploads a
// chunk store as well as the image, a registry has no place for thousands
// of small files other than as blobs of their own, and a device makes one
// request per chunk it lacks. Here nothing is published but the bundle;
// chunks cost no extra object, and a run of missing chunks costs one
// request. What casync gains by compressing chunks is nothing for a
// bundle: its rootfs is a squashfs whose blocks are compressed already.
// The cost of ranges is that every device must fetch the very bytes of
// the bundle it installs: chunks are not shared between bundles on the
// server, which matters for storage, not for what a device downloads.
//
// The index (all integers big-endian):
//
//	offset  size  field
//	0       8     magic "KEELCIDX"
//	8       4     format version (1)
//	12      8     the polynomial (Polynomial; format 1 takes no other)
//	20      4     minimum chunk size (at least 64, the window)
//	24      4     maximum chunk size (at most MaxChunk)
//	28      4     average bits: a cut where the fingerprint's low bits are 0
//	32      4     sections S (1 to MaxSections), one per artifact, in order
//	36      ...   S section headers: name length (1 byte, 1 to 32), name
//	              (a-z, 0-9, -), artifact size (8), chunk count (4)
//	...     ...   every section's chunks in order: size (4), sha256 (32)
//
// Chunk offsets are not stored: a chunk starts where the one before it
// ended, so a well-formed index covers each artifact exactly. Parse
// refuses anything else: another magic, version or polynomial, parameters
// out of bounds, a chunk count that cannot make the artifact's size, a
// chunk of 0 bytes, over the maximum, or under the minimum other than the
// last, chunks that do not add up to the artifact, a byte after the last
// chunk. Index.Check then holds the sections to the manifest's artifacts.
package delta
