// Package grow is keel-init's first-boot stage for an image written to a
// disk larger than itself: the data partition is extended to the disk's
// end (the backup GPT moved there), and the ext4 on it grown to fill it.
//
// It runs at every boot and does nothing once the disk is used whole, so a
// boot cut short at any point finishes the job at the next one:
//
//   - the table: gpt.Grow, whose writes are ordered so that an intact GPT
//     always describes the old or the new partition (see there), then the
//     kernel is told the partition's new size (BLKPG), as the disk's other
//     partitions (the root) are in use and it will not re-read the table.
//   - the filesystem: after /var is mounted, the kernel's online resize
//     (EXT4_IOC_RESIZE_FS, what resize2fs does on a mounted filesystem).
//     It adds block groups through the journal, so a cut leaves a
//     consistent filesystem of some size in between, which the journal
//     replay at the next mount makes whole and the next boot grows on.
//
// keel's ext4 has no resize_inode (no reserved GDT blocks); the kernel
// then switches it to meta_bg before adding groups, so the group
// descriptors can grow without moving anything (e2fsck -fn finds the
// result clean: qemu-tests' TestGrowDisk).
package grow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"keel/image/ext4"
	"keel/image/gpt"
)

// Options are keel-init's choices for gpt.Grow: the partition's end on a
// 4 KiB boundary (one ext4 block), and no growth for less than a MiB, which
// an image's own slack after its last partition is.
var Options = gpt.GrowOptions{Align: 8, MinGain: 2048}

// blkpg is BLKPG, _IO(0x12, 105), missing from x/sys/unix.
const blkpg = 0x1269

// ext4IocResizeFS is EXT4_IOC_RESIZE_FS, _IOW('f', 16, __u64).
const ext4IocResizeFS = 0x40086610

// Partition grows partition number part (/dev/partDev) of the disk at disk
// (/dev/vda) to the disk's end, if the disk is larger than its GPT says,
// and makes the kernel's idea of the partition's size match the table.
// It reports the size before and after, in bytes.
func Partition(disk string, part int, partDev string) (from, to int64, err error) {
	f, err := os.OpenFile(disk, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	size, err := f.Seek(0, 2)
	if err != nil {
		return 0, 0, fmt.Errorf("size of %s: %w", disk, err)
	}
	g, err := gpt.Grow(f, size, part, Options)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", disk, err)
	}
	from = int64(g.OldLastLBA-g.Partition.FirstLBA+1) * gpt.SectorSize
	to = g.Partition.Size()
	kernel, err := sysfsSize(partDev)
	if err != nil {
		return from, to, err
	}
	if kernel != to {
		if kernel != from {
			// Grown at a boot the kernel's table came from before: the
			// size it read is the one that was, as far as keel-init knows.
			from = kernel
		}
		if err := resizeKernel(f, g.Partition, partDev); err != nil {
			return from, to, err
		}
	}
	return from, to, nil
}

// sysfsSize is a partition's size as the kernel has it.
func sysfsSize(dev string) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/sys/class/block", dev, "size"))
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dev, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dev, err)
	}
	return n * 512, nil // sysfs counts 512-byte sectors whatever the disk's
}

// resizeKernel tells the kernel a partition's new extent: BLKPG works while
// other partitions of the disk are in use, where re-reading the whole table
// (BLKRRPART) is refused.
func resizeKernel(disk *os.File, p gpt.Partition, dev string) error {
	bp := unix.BlkpgPartition{Start: p.Offset(), Length: p.Size(), Pno: int32(p.Number)}
	copy(bp.Devname[:], dev)
	arg := unix.BlkpgIoctlArg{
		Op:      unix.BLKPG_RESIZE_PARTITION,
		Datalen: int32(unsafe.Sizeof(bp)),
		Data:    (*byte)(unsafe.Pointer(&bp)),
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, disk.Fd(), blkpg, uintptr(unsafe.Pointer(&arg)))
	if errno != 0 {
		return fmt.Errorf("telling the kernel %s is now %d bytes (BLKPG): %w", dev, p.Size(), errno)
	}
	return nil
}

// Filesystem grows the ext4 on dev, mounted at dir, to fill dev, calling
// starting first when there is something to do (a grow of gigabytes takes
// seconds: the console says why the boot waits). It returns the sizes
// before and after, equal when there was nothing to do.
func Filesystem(dev, dir string, starting func(from, to int64)) (from, to int64, took time.Duration, err error) {
	sb, err := readSuperblock(dev)
	if err != nil {
		return 0, 0, 0, err
	}
	size, err := deviceSize(dev)
	if err != nil {
		return 0, 0, 0, err
	}
	from = int64(sb.blocks) * int64(sb.blockSize)
	target := sb.fit(uint64(size) / uint64(sb.blockSize))
	if target <= sb.blocks {
		return from, from, 0, nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return from, from, 0, err
	}
	defer d.Close()
	starting(from, int64(target)*int64(sb.blockSize))
	start := time.Now()
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, d.Fd(), ext4IocResizeFS, uintptr(unsafe.Pointer(&target)))
	took = time.Since(start)
	if errno != 0 {
		return from, from, took, fmt.Errorf("growing the ext4 on %s from %d to %d blocks (EXT4_IOC_RESIZE_FS): %w", dev, sb.blocks, target, errno)
	}
	if sb, err = readSuperblock(dev); err != nil {
		return from, from, took, err
	}
	return from, int64(sb.blocks) * int64(sb.blockSize), took, nil
}

// superblock holds the fields of an ext4 superblock Filesystem needs.
type superblock struct {
	blocks         uint64
	blockSize      uint32
	firstDataBlock uint32
	blocksPerGroup uint32
	inodesPerGroup uint32
	inodeSize      uint32
	reservedGDT    uint32
	descSize       uint32
	sparseSuper    bool
	metaBG         bool
}

// fit is the block count the kernel's online resize actually reaches for
// a request of n blocks: like mke2fs, it leaves out a last group too small
// to hold its own metadata (ext4_resize_fs: overhead + 2 bitmaps + inode
// table + a block). Asking for more than that when nothing can be added
// is not a no-op: kernels before 6.10 then convert the filesystem to
// meta_bg anyway. The overhead here is an upper bound (meta_bg's extra
// descriptor block counted), so fit may stop a group short, never past.
func (sb superblock) fit(n uint64) uint64 {
	if sb.blocksPerGroup == 0 || n <= uint64(sb.firstDataBlock) {
		return sb.blocks
	}
	g := (n - 1 - uint64(sb.firstDataBlock)) / uint64(sb.blocksPerGroup)
	first := uint64(sb.firstDataBlock) + g*uint64(sb.blocksPerGroup)
	perBlock := uint64(sb.blockSize / sb.descSize)
	overhead := uint64(1) // meta_bg's descriptor block
	if !sb.sparseSuper || g > math.MaxUint32 || ext4.HasSuper(uint32(g)) {
		overhead += 1 + (g+1+perBlock-1)/perBlock + uint64(sb.reservedGDT)
	}
	itb := (uint64(sb.inodesPerGroup)*uint64(sb.inodeSize) + uint64(sb.blockSize) - 1) / uint64(sb.blockSize)
	if first+overhead+2+itb+1 >= n {
		return first
	}
	return n
}

func readSuperblock(dev string) (superblock, error) {
	f, err := os.Open(dev)
	if err != nil {
		return superblock{}, err
	}
	defer f.Close()
	b := make([]byte, 1024)
	if _, err := f.ReadAt(b, 1024); err != nil {
		return superblock{}, fmt.Errorf("reading the superblock of %s: %w", dev, err)
	}
	sb, err := parseSuperblock(b)
	if err != nil {
		return superblock{}, fmt.Errorf("%s: %w", dev, err)
	}
	return sb, nil
}

var errNotExt4 = errors.New("no ext4 superblock")

// parseSuperblock reads the 1024 bytes at offset 1024 of an ext2/3/4
// filesystem.
func parseSuperblock(b []byte) (superblock, error) {
	le := binary.LittleEndian
	if len(b) < 1024 || le.Uint16(b[0x38:]) != 0xEF53 {
		return superblock{}, errNotExt4
	}
	logBS := le.Uint32(b[0x18:])
	if logBS > 6 {
		return superblock{}, fmt.Errorf("%w: block size 2^%d KiB", errNotExt4, logBS)
	}
	const (
		incompatMetaBG = 0x10
		incompat64bit  = 0x80
		roCompatSparse = 0x1
	)
	incompat := le.Uint32(b[0x60:])
	sb := superblock{
		blocks:         uint64(le.Uint32(b[0x04:])),
		blockSize:      1024 << logBS,
		firstDataBlock: le.Uint32(b[0x14:]),
		blocksPerGroup: le.Uint32(b[0x20:]),
		inodesPerGroup: le.Uint32(b[0x28:]),
		inodeSize:      uint32(le.Uint16(b[0x58:])),
		reservedGDT:    uint32(le.Uint16(b[0xCE:])),
		descSize:       32,
		sparseSuper:    le.Uint32(b[0x64:])&roCompatSparse != 0,
	}
	if le.Uint32(b[0x4C:]) == 0 { // revision 0: fixed 128-byte inodes
		sb.inodeSize = 128
	}
	if incompat&incompat64bit != 0 {
		sb.blocks |= uint64(le.Uint32(b[0x150:])) << 32
		if d := uint32(le.Uint16(b[0xFE:])); d >= 32 && d&(d-1) == 0 && d <= sb.blockSize {
			sb.descSize = d
		}
	}
	if sb.blocksPerGroup == 0 || sb.blocksPerGroup > 8*sb.blockSize || sb.inodeSize == 0 {
		return superblock{}, fmt.Errorf("%w: %d blocks a group, %d-byte inodes", errNotExt4, sb.blocksPerGroup, sb.inodeSize)
	}
	return sb, nil
}

// deviceSize is a block device's size in bytes.
func deviceSize(dev string) (int64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := f.Seek(0, 2)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dev, err)
	}
	return n, nil
}
