package format

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// An Image is a disk image opened for reading: the bytes of its virtual
// disk, and where they may be other than zeros.
type Image interface {
	// ReadAt reads the virtual disk; at its end it returns io.EOF.
	io.ReaderAt
	// Format is the format the image is stored in.
	Format() Format
	// Size is the virtual disk's size in bytes.
	Size() int64
	// Data returns the first range [start, end) at or after off that may
	// hold bytes other than zeros, as SEEK_DATA and SEEK_HOLE do: every
	// byte from off up to start reads as zero. Past the last such range it
	// returns io.EOF. A range may hold zeros too (a raw file's written
	// zeros); a byte outside every range is zero.
	Data(off int64) (start, end int64, err error)
}

// ErrUnsupported is returned for an image this package cannot read: a
// format it only writes, or a feature of qcow2 it does not implement.
var ErrUnsupported = errors.New("unsupported image")

// NewImage reads the disk image r, of size bytes, in whichever format it
// is stored: raw or qcow2. vmdk and vhdx are refused with ErrUnsupported
// (keel writes them for hypervisors, not to be read back).
func NewImage(r io.ReaderAt, size int64) (Image, error) {
	f, err := Detect(r)
	if err != nil {
		return nil, fmt.Errorf("detect image format: %w", err)
	}
	switch f {
	case Raw:
		return &rawFile{r: r, size: size}, nil
	case QCOW2:
		return newQCOW2(r, size)
	}
	return nil, fmt.Errorf("%w: a %s image; raw and qcow2 images can be read (convert with qemu-img convert -O raw)", ErrUnsupported, f)
}

// ImageFile is an Image read from a file, which Close closes.
type ImageFile struct {
	Image
	f *os.File
}

// OpenImage opens the image file (or block device) name.
func OpenImage(name string) (*ImageFile, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	// Seeking to the end gives a block device's size too, where Stat says 0.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("size of %s: %w", name, err)
	}
	img, err := NewImage(f, size)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &ImageFile{Image: img, f: f}, nil
}

// Close closes the file.
func (f *ImageFile) Close() error { return f.f.Close() }

// rawFile is a raw image: the file is the disk.
type rawFile struct {
	r    io.ReaderAt
	size int64
}

func (r *rawFile) Format() Format { return Raw }
func (r *rawFile) Size() int64    { return r.size }

func (r *rawFile) ReadAt(b []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, io.EOF
	}
	short := int64(len(b)) > r.size-off
	if short {
		b = b[:r.size-off]
	}
	n, err := r.r.ReadAt(b, off)
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

// Data asks the file system (SEEK_DATA, SEEK_HOLE) when the image is a
// file on one that knows; otherwise all of the image may be data.
func (r *rawFile) Data(off int64) (int64, int64, error) {
	if off >= r.size {
		return 0, 0, io.EOF
	}
	f, ok := r.r.(*os.File)
	if !ok {
		return off, r.size, nil
	}
	start, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	switch {
	case errors.Is(err, unix.ENXIO):
		return 0, 0, io.EOF // no data past off
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.EOPNOTSUPP):
		return off, r.size, nil // a file system (or device) without SEEK_DATA
	case err != nil:
		return 0, 0, fmt.Errorf("find data: %w", err)
	case start >= r.size:
		return 0, 0, io.EOF
	}
	end, err := unix.Seek(int(f.Fd()), start, unix.SEEK_HOLE)
	if err != nil {
		return 0, 0, fmt.Errorf("find hole: %w", err)
	}
	return start, min(end, r.size), nil
}
