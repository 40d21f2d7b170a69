// Package dmverity sets up a device-mapper device, such as the dm-verity
// device under keel's root squashfs, with the kernel's device-mapper ioctls
// on /dev/mapper/control: keel-init is a static binary with nothing else in
// the initrd, so there is no veritysetup, dmsetup or libdevmapper to call.
//
// Create does what `dmsetup create --readonly NAME --table "0 SECTORS TYPE
// PARAMS"` does: DM_VERSION (check the interface), DM_DEV_CREATE,
// DM_TABLE_LOAD (read-only: dm-verity refuses a writable table),
// DM_DEV_SUSPEND without the suspend flag (which resumes, making the
// loaded table live). The table comes as a string; this package knows
// nothing about verity's parameters. The kernel modules (dm_mod,
// dm_verity) must be loaded first; that is the caller's business.
package dmverity

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ControlPath is device-mapper's control node, where every tool finds it.
const ControlPath = "/dev/mapper/control"

// The control node is the misc character device MAPPER_CTRL_MINOR
// (include/linux/miscdevice.h): the kernel fixes this number.
const (
	miscMajor         = 10
	mapperCtrlMinor   = 236
	statusBufferStart = 16 << 10 // what libdevmapper starts with
	statusBufferMax   = 1 << 20
)

// Create makes a read-only device-mapper device name with one target of
// sectors 512-byte sectors, target type ttype ("verity") and parameter
// line params, and resumes it, so it can be mounted. It returns the
// device's node, devDir/dm-<minor> ("" for devDir means /dev), and its
// dev_t as stat's st_rdev gives it; the node is made with mknod when
// devtmpfs has not made it. If a step after DM_DEV_CREATE fails, the
// device is removed again.
func Create(name, ttype string, sectors uint64, params string, devDir string) (path string, dev uint64, err error) {
	if err := checkName(name); err != nil {
		return "", 0, err
	}
	if sectors == 0 {
		return "", 0, fmt.Errorf("dm create %s: a target of 0 sectors", name)
	}
	if devDir == "" {
		devDir = "/dev"
	}
	table, err := encodeTarget(0, sectors, ttype, params)
	if err != nil {
		return "", 0, fmt.Errorf("dm table %s: %w", name, err)
	}
	c, err := openControl()
	if err != nil {
		return "", 0, err
	}
	defer c.close()
	if _, err := c.call(unix.DM_VERSION, "version", "", 0, 0, nil, 0); err != nil {
		return "", 0, err
	}
	if _, err := c.call(unix.DM_DEV_CREATE, "create", name, unix.DM_READONLY_FLAG, 0, nil, 0); err != nil {
		return "", 0, err
	}
	fail := func(err error) (string, uint64, error) {
		if _, rerr := c.call(unix.DM_DEV_REMOVE, "remove", name, 0, 0, nil, 0); rerr != nil {
			err = errors.Join(err, fmt.Errorf("and removing it again: %w", rerr))
		}
		return "", 0, err
	}
	if _, err := c.call(unix.DM_TABLE_LOAD, "table load", name, unix.DM_READONLY_FLAG, 1, table, 0); err != nil {
		return fail(err)
	}
	// DM_DEV_SUSPEND without DM_SUSPEND_FLAG is a resume: the loaded
	// (inactive) table becomes the live one.
	buf, err := c.call(unix.DM_DEV_SUSPEND, "resume", name, 0, 0, nil, 0)
	if err != nil {
		return fail(err)
	}
	h, err := decodeHeader(buf)
	if err != nil {
		return fail(fmt.Errorf("dm resume %s: %w", name, err))
	}
	// The kernel answers with huge_encode_dev(); unix.Major and
	// unix.Minor read that encoding.
	major, minor := unix.Major(h.Dev), unix.Minor(h.Dev)
	dev = unix.Mkdev(major, minor)
	path = filepath.Join(devDir, fmt.Sprintf("dm-%d", minor))
	if err := blockNode(path, dev); err != nil {
		return fail(fmt.Errorf("dm create %s: device node: %w", name, err))
	}
	return path, dev, nil
}

// Remove removes the device name. A device that is open (mounted) cannot
// be removed: EBUSY.
func Remove(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	c, err := openControl()
	if err != nil {
		return err
	}
	defer c.close()
	_, err = c.call(unix.DM_DEV_REMOVE, "remove", name, 0, 0, nil, 0)
	return err
}

// Status returns the status line of the device's (first) target, as
// DM_TABLE_STATUS gives it: for verity "V" (every block read so far was
// verified) or "C" (a corruption was seen), possibly followed by more
// fields on newer kernels.
func Status(name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	c, err := openControl()
	if err != nil {
		return "", err
	}
	defer c.close()
	for size := statusBufferStart; ; size *= 2 {
		buf, err := c.call(unix.DM_TABLE_STATUS, "table status", name, 0, 0, nil, size)
		if err != nil {
			return "", err
		}
		h, err := decodeHeader(buf)
		if err != nil {
			return "", fmt.Errorf("dm table status %s: %w", name, err)
		}
		if h.Flags&unix.DM_BUFFER_FULL_FLAG != 0 {
			if size >= statusBufferMax {
				return "", fmt.Errorf("dm table status %s: the answer does not fit in %d bytes", name, size)
			}
			continue
		}
		_, status, err := decodeStatus(buf)
		if err != nil {
			return "", fmt.Errorf("dm table status %s: %w", name, err)
		}
		return strings.TrimSpace(status), nil
	}
}

// control is an open /dev/mapper/control.
type control struct{ fd int }

// openControl opens ControlPath, making the node first if it is missing.
// devtmpfs makes it when dm_mod registers its misc device, but /dev may be
// a plain directory (keel-init before devtmpfs is mounted, a test's own
// /dev), there is no udev in the initrd, and the kernel fixes the number
// (10:236), so it can be made without asking anyone.
func openControl() (*control, error) {
	fd, err := unix.Open(ControlPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		if err := os.MkdirAll(filepath.Dir(ControlPath), 0o755); err != nil {
			return nil, fmt.Errorf("dm control: %w", err)
		}
		if err := unix.Mknod(ControlPath, unix.S_IFCHR|0o600, int(unix.Mkdev(miscMajor, mapperCtrlMinor))); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("dm control: mknod %s c %d %d: %w", ControlPath, miscMajor, mapperCtrlMinor, err)
		}
		fd, err = unix.Open(ControlPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		hint := ""
		if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) {
			hint = " (no device-mapper in the kernel: is dm_mod loaded?)"
		}
		return nil, fmt.Errorf("dm control: opening %s: %w%s", ControlPath, err, hint)
	}
	return &control{fd: fd}, nil
}

func (c *control) close() { unix.Close(c.fd) }

// call runs one device-mapper command on device name and returns the
// buffer as the kernel left it (at least size bytes). step names the
// command in errors ("dm table load keel-root: ...").
func (c *control) call(req uint, step, name string, flags uint32, targets uint32, data []byte, size int) ([]byte, error) {
	buf, err := request(name, flags, targets, data, size)
	if err != nil {
		return nil, fmt.Errorf("dm %s %s: %w", step, name, err)
	}
	if err := ioctl(c.fd, req, buf); err != nil {
		if name == "" {
			return nil, fmt.Errorf("dm %s: %w%s", step, err, hint(step, err))
		}
		return nil, fmt.Errorf("dm %s %s: %w%s", step, name, err, hint(step, err))
	}
	if req == unix.DM_VERSION {
		h, err := decodeHeader(buf)
		if err != nil {
			return nil, fmt.Errorf("dm version: %w", err)
		}
		if h.Version[0] != versionMajor {
			return nil, fmt.Errorf("dm version: the kernel speaks device-mapper ioctl %d.%d.%d, not %d.x", h.Version[0], h.Version[1], h.Version[2], versionMajor)
		}
	}
	return buf, nil
}

// ioctl passes buf to the kernel, which reads it and writes its answer
// into it.
func ioctl(fd int, req uint, buf []byte) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(&buf[0])))
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}

// hint says what the kernel's error usually means for a step.
func hint(step string, err error) string {
	switch {
	case errors.Is(err, unix.ENXIO):
		return " (no device-mapper device of that name)"
	case errors.Is(err, unix.EBUSY) && step == "create":
		return " (a device of that name exists already)"
	case errors.Is(err, unix.EBUSY) && step == "remove":
		return " (the device is open: mounted, or held by another device)"
	case errors.Is(err, unix.EBUSY) && step == "table load":
		return " (a device the table names is in use, e.g. mounted)"
	case errors.Is(err, unix.EINVAL) && step == "version":
		return " (the kernel's device-mapper interface is not version 4)"
	case errors.Is(err, unix.EINVAL) && step == "table load":
		return " (the kernel refused the table: usually a wrong target parameter, e.g. a verity" +
			" size, offset, hash algorithm, root hash or salt, or the target's module (dm_verity) is not" +
			" loaded; the kernel log says which)"
	case errors.Is(err, unix.ENODEV) && step == "table load":
		return " (a device the table names does not exist)"
	case errors.Is(err, unix.EINVAL) && step == "resume":
		return " (no table was loaded)"
	}
	return ""
}

// blockNode makes sure path is the block device dev: devtmpfs has made it,
// or it is made here.
func blockNode(path string, dev uint64) error {
	var st unix.Stat_t
	err := unix.Lstat(path, &st)
	if errors.Is(err, unix.ENOENT) {
		if err := unix.Mknod(path, unix.S_IFBLK|0o600, int(dev)); err != nil {
			return fmt.Errorf("mknod %s b %d %d: %w", path, unix.Major(dev), unix.Minor(dev), err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != dev {
		return fmt.Errorf("%s exists but is not block device %d:%d", path, unix.Major(dev), unix.Minor(dev))
	}
	return nil
}
