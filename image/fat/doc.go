// Package fat writes and edits FAT32 filesystems inside a region of a disk
// image (an io.ReaderAt/io.WriterAt), without root, mounts or external tools.
//
// It exists because the ESP must be `fsck.fat -n` clean and go-diskfs's FAT32
// is not (wrong ".." in first-level directories, no FSInfo free count, hidden
// sectors 0, leaked clusters when a rename replaces a file).
//
// # Layout
//
// Format lays the filesystem out the way mkfs.fat 4.2 does: 512-byte
// sectors, 32 reserved sectors, FSInfo at sector 1, a backup boot sector at 6
// (and its FSInfo at 7), two FATs sized so that the data area starts on a
// cluster boundary, root directory at cluster 2, and mkfs.fat's cluster size
// for the volume size (512 bytes up to 260 MiB, 4 KiB up to 8 GiB, then 8, 16
// and 32 KiB). Nothing depends on the clock or on randomness: the volume ID,
// label and every timestamp come from the options, so the same operations
// give the same bytes.
//
// Names are case-preserving and looked up case-insensitively. A name that is
// not already a valid upper-case 8.3 name gets VFAT long-name entries and a
// generated short name (KEEL-B~1.CON), as Linux's vfat does.
//
// # Writes and crash order
//
// There is no write-back cache: every operation writes through to the
// device before it returns, and the FAT is also kept in memory so it never
// has to be read again. Sync only forwards to the device's Sync, if it has one.
//
// Inside one operation the writes are ordered so that, if the process stops
// between any two of them, what is on disk is still a valid filesystem whose
// only possible defect is lost clusters (allocated in the FAT but referenced
// by nothing) — which fsck reclaims and which never corrupt other files. The
// rules are the soft-updates ones:
//
//  1. data clusters (and zeroed new directory clusters) first: they are free
//     and unreferenced while being written, so nothing can see them;
//  2. then the FAT chain that allocates them (first FAT, then the second):
//     now they are allocated but still unreferenced (a leak at worst);
//  3. then the directory entry that references them: one 32-byte entry never
//     crosses a sector, so the switch from old to new content is one sector
//     write;
//  4. only then are clusters no longer referenced freed in the FAT;
//  5. FSInfo last: it is only a hint, and fsck recomputes it.
//
// The opposite orders are worse: a directory entry written before its FAT
// chain points at clusters the FAT calls free, which the next allocation
// hands to another file (cross-linked data); freeing before unreferencing does
// the same. Replacing a file (WriteFile over an existing name) is copy on
// write: the old content stays intact until the entry is switched.
//
// Rename never lets two entries reference the same clusters, even for a
// moment, because a later Remove of one of them would free clusters the other
// still uses. Within one directory the new name is written before the old one
// is given up, so a stop at any write leaves the old name or the new one:
//
//   - if the new name fits in the old entry's slots and free slots beside
//     them, all in the sector of the old short entry, one write of that
//     sector replaces the name (atomic on a device with atomic sector
//     writes);
//   - otherwise a file's content is copied to free clusters, the new name is
//     added for the copy, and only then is the old name deleted and its
//     clusters freed (a stop in between leaves both names, each with its own
//     clusters, or leaked clusters);
//   - a directory cannot be copied, so one renamed to a name that does not
//     fit loses its old name first (a stop in between leaks it); keel renames
//     no directory after building.
//
// Renaming over an existing file unreferences the source first, then points
// the target's entry at the source's clusters in one write: a stop in
// between leaves the target with its old content. A move to another
// directory deletes the old name first. A directory moved to another parent
// gets its ".." rewritten while no entry references it, so no reachable
// directory ever has a wrong "..".
//
// TestCrashOrder checks all this: it stops every operation after each
// possible number of writes and runs fsck.fat -n on what is left, which may
// report lost clusters, a stale free count or differing FAT copies, and
// nothing else.
//
// If a write of metadata (FAT, directory, FSInfo) fails, memory and device
// may disagree, so the FS refuses further changes; open it again. Durability
// across power loss is the caller's business: call Sync between steps that
// must be ordered on stable storage, as DESIGN §4 asks.
package fat
