package squashfs

import "golang.org/x/sys/unix"

// startWriteback asks the kernel to start writing bytes [off, off+n) of the
// file to its device, without waiting for them (sync_file_range with
// SYNC_FILE_RANGE_WRITE). It promises nothing: durability still comes from
// WriteFile's fsync, and an error here only means that fsync does all the
// work.
func startWriteback(fd uintptr, off, n int64) {
	unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
