// Package flash writes a disk image onto a block device (or a regular
// file standing for one), safely: it refuses a device that is mounted, that
// the host runs from, that is in use or too small (Check); it writes only
// the image's data and has the device zero the rest; it orders the writes
// so that a flash cut short leaves no partition table pointing at
// half-written partitions; and it reads the device back to verify it.
package flash

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Source is a disk image to flash: format.Image is one.
type Source interface {
	// ReadAt reads the virtual disk.
	io.ReaderAt
	// Size is the virtual disk's size in bytes.
	Size() int64
	// Data returns the first range at or after off that may hold bytes
	// other than zeros (io.EOF when there is none), as SEEK_DATA does.
	Data(off int64) (start, end int64, err error)
}

// Options tune a flash.
type Options struct {
	// Progress, when set, is told the bytes of the image written (or
	// zeroed) so far and the image's size.
	Progress func(done, total int64)
	// VerifyProgress, when set, is told the bytes read back so far.
	VerifyProgress func(done, total int64)
	// NoVerify skips reading the device back.
	NoVerify bool
	// System is where the checks look; the zero value means Host.
	System *System
}

// Stats say what a flash did.
type Stats struct {
	// Size is the image's virtual size: the bytes of the target flashed.
	Size int64
	// Written is the bytes of data written from the image.
	Written int64
	// Zeroed is the bytes of the image that hold zeros, which were not
	// written but zeroed by the device (BLKZEROOUT) or the file system
	// (a punched hole).
	Zeroed int64
	// Duration is the time from opening the target to the last sync;
	// Verify the time reading it back took.
	Duration, Verify time.Duration
}

// ErrVerify is returned when the target does not read back as the image.
var ErrVerify = errors.New("verify failed")

const (
	// block is the unit in which zeros are found inside the image's data:
	// a block of zeros is zeroed on the target rather than written.
	block = 64 << 10
	// chunk is the size of each read and write.
	chunk = 4 << 20
	// head is the part of the disk written last: the protective MBR and
	// the primary GPT (its header and entries, for 512- and 4096-byte
	// sectors) are within it.
	head = 1 << 20
	// syncEvery bounds the data the page cache holds for the target, so
	// that progress follows the device rather than memory and the final
	// sync is short.
	syncEvery = 64 << 20
)

// Flash writes the virtual disk of src onto dst, a block device or a
// regular file, after checking dst as Check does. The order of the writes
// matters when a flash is cut (a pulled USB stick, a power cut):
//
//  1. The first MiB of the target is zeroed (and, on a target larger than
//     the image, its last MiB, where an old backup GPT would be), and
//     synced: from here on the target has no valid partition table, so
//     neither firmware nor the kernel finds the old partitions over bytes
//     being replaced.
//  2. Everything after the first MiB is written, and synced.
//  3. The first MiB (protective MBR, primary GPT) is written, and synced.
//
// A flash cut before step 3 ends leaves a disk without a valid primary
// GPT, which nothing boots or mounts, rather than a table pointing at
// half-written partitions; one that ends step 3 holds the whole image.
//
// Ranges of the image that read as zeros are not written: the target is
// told to zero them (BLKZEROOUT on a block device, a punched hole in a
// file), since what an image leaves zero must read as zero (the backup
// GPT's neighbours, ext4's inode tables, FAT's tables, and the empty
// space of file systems that trust it) and may not keep the target's old
// bytes.
func Flash(ctx context.Context, src Source, dst string, o Options) (Stats, error) {
	st := Stats{Size: src.Size()}
	start := time.Now()
	size := src.Size()
	if size <= 0 || size%512 != 0 {
		return st, fmt.Errorf("image size %d is not a whole number of 512-byte sectors", size)
	}
	sys := Host
	if o.System != nil {
		sys = *o.System
	}
	if _, err := sys.Check(dst, size); err != nil {
		return st, err
	}
	f, dev, err := openTarget(dst)
	if err != nil {
		return st, err
	}
	defer f.Close()
	// Checked again with the target held: with O_EXCL nothing can mount
	// it from now on, and whatever did between the checks is found.
	tgt, err := sys.Check(dst, size)
	if err != nil {
		return st, err
	}
	w := &writer{ctx: ctx, f: f, dev: dev, src: src, st: &st, progress: o.Progress}
	if err := w.flash(tgt.Size); err != nil {
		return st, fmt.Errorf("flash %s: %w", dst, err)
	}
	if dev {
		// Have the kernel read the new partition table; a device the
		// kernel cannot rescan (EINVAL: no partitions) is still written.
		_ = unix.IoctlSetInt(int(f.Fd()), unix.BLKRRPART, 0)
	}
	st.Duration = time.Since(start)
	if o.NoVerify {
		return st, nil
	}
	vstart := time.Now()
	if err := verify(ctx, dst, src, o.VerifyProgress); err != nil {
		return st, fmt.Errorf("verify %s: %w", dst, err)
	}
	st.Verify = time.Since(vstart)
	return st, nil
}

// openTarget opens dst for writing; a block device exclusively, so that
// the kernel refuses it (EBUSY) when it is mounted or held, and refuses to
// mount it while it is written.
func openTarget(dst string) (*os.File, bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(dst, &st); err != nil {
		return nil, false, err
	}
	dev := st.Mode&unix.S_IFMT == unix.S_IFBLK
	flags := os.O_RDWR
	if dev {
		flags |= unix.O_EXCL
	}
	f, err := os.OpenFile(dst, flags, 0)
	if dev && errors.Is(err, unix.EBUSY) {
		return nil, false, &RefusedError{dst, []string{"is busy: the kernel has it in use (mounted, or held by RAID, LVM, LUKS or another program)"}}
	}
	if err != nil {
		return nil, false, err
	}
	return f, dev, nil
}

type writer struct {
	ctx      context.Context
	f        *os.File
	dev      bool
	src      Source
	st       *Stats
	progress func(done, total int64)
	buf      []byte
	done     int64
	unsynced int64
}

func (w *writer) flash(targetSize int64) error {
	size := w.src.Size()
	h := min(head, size)
	if err := w.zero(0, h); err != nil {
		return fmt.Errorf("clear the partition table: %w", err)
	}
	if tail := max(size, targetSize-head); tail < targetSize {
		if err := w.zero(tail, targetSize); err != nil {
			return fmt.Errorf("clear an old backup partition table: %w", err)
		}
	}
	if err := w.f.Sync(); err != nil {
		return err
	}
	w.buf = make([]byte, chunk)
	if err := w.copy(h, size); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return err
	}
	if err := w.copy(0, h); err != nil {
		return err
	}
	return w.f.Sync()
}

// copy flashes the image's bytes [from, to): its data written, the rest
// zeroed, in order.
func (w *writer) copy(from, to int64) error {
	var z0, z1 int64 // a run of zeros not yet zeroed on the target
	flushZeros := func() error {
		if z1 > z0 {
			if err := w.zero(z0, z1); err != nil {
				return err
			}
			w.st.Zeroed += z1 - z0
			w.advance(z1 - z0)
		}
		z0, z1 = 0, 0
		return nil
	}
	addZeros := func(a, b int64) error {
		if b <= a {
			return nil
		}
		if z1 != a {
			if err := flushZeros(); err != nil {
				return err
			}
			z0 = a
		}
		z1 = b
		return nil
	}
	for off := from; off < to; {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		ds, de, err := w.src.Data(off)
		if err == io.EOF {
			ds, de = to, to
		} else if err != nil {
			return fmt.Errorf("read image: %w", err)
		}
		ds, de = max(ds, off), min(de, to)
		if ds >= to {
			ds, de = to, to
		}
		// Data starts and ends on the block grid (or the range's ends),
		// so zeroing always covers whole sectors.
		ds = max(off, ds/block*block)
		if de < to {
			de = min(to, (de+block-1)/block*block)
		}
		if err := addZeros(off, ds); err != nil {
			return err
		}
		for p := ds; p < de; {
			n := min(chunk, de-p)
			b := w.buf[:n]
			if err := readFull(w.src, b, p); err != nil {
				return fmt.Errorf("read image at %d: %w", p, err)
			}
			// Write the runs of non-zero blocks; add the zero blocks to
			// the run of zeros.
			for i := int64(0); i < n; {
				j := min(n, (p+i)/block*block+block-p)
				if isZero(b[i:j]) {
					if err := addZeros(p+i, p+j); err != nil {
						return err
					}
					i = j
					continue
				}
				if err := flushZeros(); err != nil {
					return err
				}
				for j < n {
					k := min(n, j+block)
					if isZero(b[j:k]) {
						break
					}
					j = k
				}
				if _, err := w.f.WriteAt(b[i:j], p+i); err != nil {
					return err
				}
				w.st.Written += j - i
				w.advance(j - i)
				i = j
			}
			p += n
		}
		off = de
	}
	return flushZeros()
}

// advance counts n bytes flashed: reports progress, and every syncEvery
// bytes written has the target write them out.
func (w *writer) advance(n int64) {
	w.done += n
	w.unsynced += n
	if w.unsynced >= syncEvery {
		// Errors surface at the next full sync.
		_ = unix.Fdatasync(int(w.f.Fd()))
		w.unsynced = 0
	}
	if w.progress != nil {
		w.progress(w.done, w.src.Size())
	}
}

// zero makes the target's bytes [a, b) read as zeros without writing
// them: BLKZEROOUT on a block device (the kernel writes zeros itself where
// the device has no faster way), a punched hole in a file. Where neither
// works, it writes zeros.
func (w *writer) zero(a, b int64) error {
	if b <= a {
		return nil
	}
	fd := int(w.f.Fd())
	var err error
	if w.dev {
		r := [2]uint64{uint64(a), uint64(b - a)}
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKZEROOUT, uintptr(unsafe.Pointer(&r[0])))
		if e != 0 {
			err = e
		}
	} else {
		err = unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, a, b-a)
	}
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOTTY) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("zero bytes %d to %d: %w", a, b, err)
	}
	z := make([]byte, min(chunk, b-a))
	for off := a; off < b; off += int64(len(z)) {
		n := min(int64(len(z)), b-off)
		if _, err := w.f.WriteAt(z[:n], off); err != nil {
			return err
		}
	}
	return nil
}

var zeros [block]byte

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// verify reads the target's first src.Size() bytes back and compares them
// with the image. The target is read with O_DIRECT, past the page cache,
// so what is compared is what the device returns; where O_DIRECT is not
// supported (tmpfs, some file systems) its cached pages are dropped first
// (POSIX_FADV_DONTNEED, after the sync) and it is read normally.
func verify(ctx context.Context, dst string, src Source, progress func(done, total int64)) error {
	size := src.Size()
	f, err := os.OpenFile(dst, os.O_RDONLY|unix.O_DIRECT, 0)
	direct := err == nil
	if !direct {
		if f, err = os.Open(dst); err != nil {
			return err
		}
	}
	defer func() { f.Close() }() // f is reopened below
	if !direct {
		_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	}
	// O_DIRECT wants a buffer aligned to the device's logical block:
	// anonymous memory is page-aligned.
	got, err := unix.Mmap(-1, 0, chunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return err
	}
	defer unix.Munmap(got)
	want := make([]byte, chunk)
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(chunk, size-off)
		g := got[:n]
		if _, err := f.ReadAt(g, off); err != nil {
			if !direct || !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("read back at %d: %w", off, err)
			}
			// A tail shorter than the device's block: read it cached.
			direct = false
			f.Close()
			if f, err = os.Open(dst); err != nil {
				return err
			}
			_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
			continue
		}
		w := want[:n]
		if err := readFull(src, w, off); err != nil {
			return fmt.Errorf("read image at %d: %w", off, err)
		}
		if !bytes.Equal(g, w) {
			i := 0
			for g[i] == w[i] {
				i++
			}
			return fmt.Errorf("%w: the target differs from the image at byte %d (%#x)", ErrVerify, off+int64(i), off+int64(i))
		}
		off += n
		if progress != nil {
			progress(off, size)
		}
	}
	return nil
}
