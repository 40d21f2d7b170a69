// Package ext4 formats an empty ext4 filesystem inside a region of a disk
// image (an io.WriterAt), without root, loop devices or external tools.
//
// It exists because the data partition (/var) must be ext4 and the image must
// be byte-reproducible, and go-diskfs's ext4 creator calls uuid.NewRandom and
// time.Now. Here the UUID, the directory hash seed, the label and every
// timestamp come from Options, so the same inputs give the same bytes.
//
// # What it writes
//
// Only an empty filesystem: the root directory (inode 2), lost+found
// (inode 11, 16 KiB preallocated as mke2fs does, 12 KiB with 1 KiB blocks,
// so e2fsck can reconnect files without allocating), optionally a few empty
// directories, and a journal (inode 8). Files are written later by the
// kernel.
//
// The result is the filesystem that
//
//	mkfs.ext4 -b 4096 -I 256 -i 16384 -m 5 -E lazy_itable_init=0,lazy_journal_init=0 \
//	  -O none,has_journal,ext_attr,dir_index,filetype,extent,sparse_super,large_file,huge_file,dir_nlink,extra_isize
//
// makes from the same UUID, hash seed, label and (faked) time, byte for
// byte except four fields mke2fs fills in and the kernel does not need
// (s_kbytes_written, s_overhead_clusters, bg_flags ITABLE_ZEROED, the times
// of the unused bad-blocks inode); the tests check this against mkfs.ext4.
// Its features are
//
//	compat:    has_journal ext_attr dir_index
//	incompat:  filetype extent
//	ro_compat: sparse_super large_file huge_file dir_nlink extra_isize
//
// with revision 1 (dynamic), 256-byte inodes (timestamps to 2446) and 4 KiB
// blocks by default (1 and 2 KiB work too). The features left out are the
// ones that need more than this package is worth: metadata_csum and
// gdt_csum/uninit_bg (crc32c over every metadata structure; without them
// nothing is checksummed, so every inode table must be zeroed), 64bit (not
// needed below 16 TiB), flex_bg (each group keeps its own bitmaps and inode
// table, as in ext3) and resize_inode (no reserved GDT blocks: the
// kernel's online resize, which keel-init uses to grow /var into a larger
// disk, switches the filesystem to meta_bg instead).
// The kernel mounts this set read-write as ext4, uses extents for the files
// it creates and turns growing directories into htrees.
//
// The journal is sized as mke2fs sizes it (4 MiB up to 128 MiB filesystems,
// 16 MiB to 1 GiB, 32 MiB to 2 GiB, 64 MiB to 16 GiB, ...), placed where
// mke2fs places it (the start of a group near the middle), and starts clean
// (s_start 0). With Options.NoJournal there is none, and a /var on a
// device then relies on e2fsck at boot after an unclean shutdown.
//
// 5% of the blocks are reserved for root, as mke2fs -m 5 does, so that
// root's daemons can still log when users fill /var.
//
// # Old data
//
// Format writes every block it owns except free data blocks: superblocks and
// their backups (groups 0, 1 and powers of 3, 5 and 7), group descriptors,
// bitmaps, all inode tables in full, directory blocks and the whole journal,
// so the result is correct over a partition holding old data. When w is known
// to read as zeros (a freshly created sparse file), Options.AssumeZeroed
// skips the all-zero blocks and the file stays sparse; the bytes read back
// are the same either way.
//
// Timestamps must not lie in the future when e2fsck runs, or it reports
// them; a SOURCE_DATE_EPOCH is always in the past.
package ext4
