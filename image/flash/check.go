package flash

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"keel/image/mountinfo"
)

// ErrRefused is what every refusal wraps: the target was not written.
var ErrRefused = errors.New("refused, nothing written")

// RefusedError says why a target may not be written: every reason found.
type RefusedError struct {
	Target  string
	Reasons []string
}

func (e *RefusedError) Error() string {
	return e.Target + ": " + strings.Join(e.Reasons, "; ")
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Target describes what a flash would overwrite, for a confirmation.
type Target struct {
	Path string
	// Device is true for a block device, false for a regular file.
	Device bool
	// Name is the device's kernel name (sdb, loop3); empty for a file.
	Name string
	// Size is the device's or the file's size in bytes.
	Size int64
	// Model is the device's model string, when the kernel has one.
	Model string
	// Partitions are the kernel names of the device's partitions.
	Partitions []string
	// Backing is a loop device's backing file.
	Backing string
}

// System is where the checks look: the roots of /proc and /sys, and how a
// path's device number is found. Tests point them at fake trees.
type System struct {
	Proc, Sys string
	// Stat stats a path (following links); nil means unix.Stat.
	Stat func(path string, st *unix.Stat_t) error
}

// Host is the running machine's /proc and /sys.
var Host = System{Proc: "/proc", Sys: "/sys"}

// Check tells whether target (a block device, or a regular file standing
// for one) may be overwritten with a disk image of size bytes. It refuses,
// with a *RefusedError naming every reason, a target that:
//   - is neither a block device nor an existing regular file (a missing
//     /dev/sdX is not created as a file, as dd would), or is a regular
//     file in /dev (where dd made one for a device not plugged in);
//   - is a partition: an image is a whole disk;
//   - holds the host's root file system, or a file system mounted anywhere
//     (through any of its partitions, a device-mapper or md device built
//     on it, or for a loop device another loop device over its file);
//   - is used as swap, or is held by another device (dm, md, LVM, LUKS);
//   - is read-only, or smaller than size.
//
// A regular file is checked for the loop devices it backs: it is refused
// when one of them is in use as above.
func Check(target string, size int64) (*Target, error) { return Host.Check(target, size) }

// Check is the package's Check on this system.
func (s System) Check(target string, size int64) (*Target, error) {
	stat := s.Stat
	if stat == nil {
		stat = unix.Stat
	}
	var st unix.Stat_t
	if err := stat(target, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, &RefusedError{target, []string{"no such device or file (is the disk plugged in?)"}}
		}
		return nil, fmt.Errorf("stat %s: %w", target, err)
	}
	t := &Target{Path: target}
	var inside []string // sysfs directories of the devices the flash overwrites
	var why []string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		t.Device = true
		dir, err := s.devDir(st.Rdev)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", target, err)
		}
		t.Name = filepath.Base(dir)
		if isPartition(dir) {
			disk := filepath.Base(filepath.Dir(dir))
			return nil, &RefusedError{target, []string{fmt.Sprintf("is partition %s of disk %s: an image is a whole disk, flash /dev/%s", t.Name, disk, disk)}}
		}
		sectors, err := readInt(filepath.Join(dir, "size"))
		if err != nil {
			return nil, fmt.Errorf("%s: size: %w", target, err)
		}
		t.Size = sectors * 512 // sysfs counts 512-byte sectors whatever the device's
		if b, err := os.ReadFile(filepath.Join(dir, "device", "model")); err == nil {
			t.Model = strings.TrimSpace(string(b))
		}
		inside = append(inside, dir)
		for _, p := range partitions(dir) {
			t.Partitions = append(t.Partitions, filepath.Base(p))
			inside = append(inside, p)
		}
		// A loop device shares its bytes with the other loop devices over
		// the same file (at another offset, say): they are in it too.
		if b, err := os.ReadFile(filepath.Join(dir, "loop", "backing_file")); err == nil {
			t.Backing = strings.TrimSpace(string(b))
			for _, l := range s.loopsOver(t.Backing) {
				if l != dir {
					inside = append(inside, l)
					inside = append(inside, partitions(l)...)
				}
			}
		}
		if ro, err := readInt(filepath.Join(dir, "ro")); err == nil && ro != 0 {
			why = append(why, "is read-only (a write-protect switch, or the kernel's ro flag: blockdev --setrw)")
		}
	case unix.S_IFREG:
		abs, err := filepath.Abs(target)
		if err != nil {
			return nil, err
		}
		if abs, err = filepath.EvalSymlinks(abs); err != nil {
			return nil, err
		}
		if filepath.Dir(abs) == "/dev" {
			return nil, &RefusedError{target, []string{"is a regular file in /dev, not a device (is the disk plugged in?)"}}
		}
		t.Size = st.Size
		// The loop devices over the file are the file: a mounted one is
		// as much in use as a mounted disk.
		for _, l := range s.loopsOver(abs) {
			inside = append(inside, l)
			inside = append(inside, partitions(l)...)
		}
	default:
		return nil, &RefusedError{target, []string{"is neither a block device nor a regular file"}}
	}

	in := func(dirs []string) []string {
		var hit []string
		for _, d := range dirs {
			if slices.Contains(inside, d) {
				hit = append(hit, d)
			}
		}
		return hit
	}
	mounts, err := s.mounts(stat)
	if err != nil {
		return nil, err
	}
	for _, m := range mounts {
		if m.point != "/" {
			continue
		}
		if hit := in(s.under(m.dir)); len(hit) > 0 {
			why = append(why, fmt.Sprintf("is the disk this machine runs from (/ is on %s)", s.chain(m.dir)))
		}
	}
	for _, m := range mounts {
		if m.point == "/" {
			continue
		}
		if hit := in(s.under(m.dir)); len(hit) > 0 {
			on := filepath.Base(m.dir)
			if !slices.Contains(hit, m.dir) {
				on = s.chain(m.dir)
			}
			why = append(why, fmt.Sprintf("%s is mounted at %s", on, m.point))
		}
	}
	swaps, err := s.swaps(stat)
	if err != nil {
		return nil, err
	}
	for _, sw := range swaps {
		if hit := in(s.under(sw)); len(hit) > 0 {
			why = append(why, fmt.Sprintf("%s is in use as swap (swapoff it first)", s.chain(sw)))
		}
	}
	for _, d := range inside {
		hs, _ := os.ReadDir(filepath.Join(d, "holders"))
		var held []string
		for _, h := range hs {
			held = append(held, s.describe(h.Name()))
		}
		if len(held) > 0 {
			why = append(why, fmt.Sprintf("%s is held by %s", filepath.Base(d), strings.Join(held, ", ")))
		}
	}
	if t.Size < size {
		why = append(why, fmt.Sprintf("is %d bytes, smaller than the image's %d", t.Size, size))
	}
	if len(why) > 0 {
		// One reason per mount of the same device would repeat itself.
		why = slices.Compact(why)
		return t, &RefusedError{target, why}
	}
	return t, nil
}

// devDir is the sysfs directory of the block device numbered rdev.
func (s System) devDir(rdev uint64) (string, error) {
	link := filepath.Join(s.Sys, "dev", "block", fmt.Sprintf("%d:%d", unix.Major(rdev), unix.Minor(rdev)))
	dir, err := filepath.EvalSymlinks(link)
	if err != nil {
		return "", fmt.Errorf("device %d:%d has no sysfs entry: %w", unix.Major(rdev), unix.Minor(rdev), err)
	}
	return dir, nil
}

// byName is the sysfs directory of the block device called name (sdb1,
// dm-0): /sys/class/block/NAME.
func (s System) byName(name string) (string, error) {
	return filepath.EvalSymlinks(filepath.Join(s.Sys, "class", "block", name))
}

func isPartition(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "partition"))
	return err == nil
}

// partitions lists the sysfs directories of a disk's partitions, sorted.
func partitions(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() && isPartition(p) {
			out = append(out, p)
		}
	}
	return out
}

// under lists dir, the disk a partition dir is on, and recursively the
// devices a dm, md or loop-partition device is built from (its slaves):
// every device whose bytes dir's contents live on.
func (s System) under(dir string) []string {
	var out []string
	var walk func(d string, depth int)
	walk = func(d string, depth int) {
		if depth > 16 || slices.Contains(out, d) {
			return
		}
		out = append(out, d)
		if isPartition(d) {
			walk(filepath.Dir(d), depth+1)
		}
		slaves, _ := os.ReadDir(filepath.Join(d, "slaves"))
		for _, sl := range slaves {
			if sd, err := s.byName(sl.Name()); err == nil {
				walk(sd, depth+1)
			}
		}
	}
	walk(dir, 0)
	return out
}

// chain names a device and what it is on: "dm-0 (vg-root), on sda3".
func (s System) chain(dir string) string {
	parts := []string{s.describe(filepath.Base(dir))}
	for _, d := range s.under(dir)[1:] {
		if !isPartition(d) && slices.ContainsFunc(s.under(dir), func(p string) bool { return filepath.Dir(p) == d }) {
			continue // the disk of a partition already named
		}
		parts = append(parts, filepath.Base(d))
	}
	return strings.Join(parts, ", on ")
}

// describe names a device for a person: dm devices with their mapping's
// name (LVM's vg-lv, LUKS's luks-…), md devices as RAID.
func (s System) describe(name string) string {
	dir, err := s.byName(name)
	if err != nil {
		return name
	}
	if b, err := os.ReadFile(filepath.Join(dir, "dm", "name")); err == nil {
		return fmt.Sprintf("%s (device mapper %s: LVM, LUKS or similar)", name, strings.TrimSpace(string(b)))
	}
	if _, err := os.Stat(filepath.Join(dir, "md")); err == nil {
		return name + " (software RAID)"
	}
	return name
}

// loopsOver lists the sysfs directories of the loop devices whose backing
// file is path.
func (s System) loopsOver(path string) []string {
	files, _ := filepath.Glob(filepath.Join(s.Sys, "block", "loop*", "loop", "backing_file"))
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || strings.TrimSpace(string(b)) != path {
			continue
		}
		if d, err := filepath.EvalSymlinks(filepath.Dir(filepath.Dir(f))); err == nil {
			out = append(out, d)
		}
	}
	return out
}

type mount struct {
	point string
	dir   string // the mounted device's sysfs directory
}

// mounts lists the mounts of block devices in /proc/self/mountinfo. A
// mount whose device number is not a block device's (btrfs, 0:N) is
// found by its source, when that is a device path.
func (s System) mounts(stat func(string, *unix.Stat_t) error) ([]mount, error) {
	ms, err := mountinfo.ReadFile(filepath.Join(s.Proc, "self", "mountinfo"))
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	var out []mount
	for _, m := range ms {
		var dir string
		var err error
		if m.Major != 0 {
			dir, err = s.devDir(unix.Mkdev(m.Major, m.Minor))
		} else if strings.HasPrefix(m.Source, "/dev/") {
			var st unix.Stat_t
			if err = stat(m.Source, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK {
				dir, err = s.devDir(st.Rdev)
			}
		}
		if err != nil || dir == "" {
			continue // not a block device's mount (proc, tmpfs, nfs)
		}
		out = append(out, mount{point: m.Target, dir: dir})
	}
	return out, nil
}

// swaps lists the sysfs directories of the block devices in /proc/swaps
// (a swap file is on a mounted file system, which the mounts catch).
func (s System) swaps(stat func(string, *unix.Stat_t) error) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(s.Proc, "swaps"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // a kernel without swap
	}
	if err != nil {
		return nil, fmt.Errorf("list swaps: %w", err)
	}
	var out []string
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 2 || f[1] != "partition" {
			continue
		}
		var st unix.Stat_t
		if err := stat(mountinfo.Unescape(f[0]), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
			continue
		}
		if dir, err := s.devDir(st.Rdev); err == nil {
			out = append(out, dir)
		}
	}
	return out, nil
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}
