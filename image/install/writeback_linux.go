package install

import "golang.org/x/sys/unix"

// startWriteback asks the kernel to start writing bytes [off, off+n) of f
// to its device, without waiting for them (sync_file_range with
// SYNC_FILE_RANGE_WRITE; it blocks only while the device's queue is full).
// It promises nothing: durability still comes from the sync that follows,
// and an error here only means that sync does all the work.
func startWriteback(f fder, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
