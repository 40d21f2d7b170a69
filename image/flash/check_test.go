package flash

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeDev is a block device in a fake sysfs tree.
type fakeDev struct {
	name     string
	num      [2]uint32
	parent   string // the disk of a partition
	sectors  int64
	ro       bool
	model    string
	holders  []string
	slaves   []string
	dmName   string // a device mapper device's name
	md       bool
	backing  string // a loop device's backing file
	nodePath string // its /dev node, when not /dev/NAME
}

// fakeSystem lays out /proc and /sys as the kernel does, for devs, the
// mountinfo lines and the /proc/swaps lines, and a Stat that answers for
// the devices' /dev nodes (and the real file system otherwise).
func fakeSystem(t *testing.T, devs []fakeDev, mountinfo, swaps []string) System {
	t.Helper()
	root := t.TempDir()
	proc, sys := filepath.Join(root, "proc"), filepath.Join(root, "sys")
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	nodes := map[string]unix.Stat_t{}
	for _, d := range devs {
		dir := filepath.Join(sys, "devices", "virtual", "block", d.name)
		if d.parent != "" {
			dir = filepath.Join(sys, "devices", "virtual", "block", d.parent, d.name)
			write(filepath.Join(dir, "partition"), "1\n")
		} else {
			link(dir, filepath.Join(sys, "block", d.name))
		}
		write(filepath.Join(dir, "dev"), fmt.Sprintf("%d:%d\n", d.num[0], d.num[1]))
		write(filepath.Join(dir, "size"), fmt.Sprintf("%d\n", d.sectors))
		ro := "0\n"
		if d.ro {
			ro = "1\n"
		}
		write(filepath.Join(dir, "ro"), ro)
		if d.model != "" {
			write(filepath.Join(dir, "device", "model"), d.model+"   \n")
		}
		if err := os.MkdirAll(filepath.Join(dir, "holders"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, h := range d.holders {
			write(filepath.Join(dir, "holders", h), "")
		}
		for _, s := range d.slaves {
			write(filepath.Join(dir, "slaves", s), "")
		}
		if d.dmName != "" {
			write(filepath.Join(dir, "dm", "name"), d.dmName+"\n")
		}
		if d.md {
			write(filepath.Join(dir, "md", "level"), "raid1\n")
		}
		if d.backing != "" {
			write(filepath.Join(dir, "loop", "backing_file"), d.backing+"\n")
		}
		link(dir, filepath.Join(sys, "class", "block", d.name))
		link(dir, filepath.Join(sys, "dev", "block", fmt.Sprintf("%d:%d", d.num[0], d.num[1])))
		node := "/dev/" + d.name
		if d.nodePath != "" {
			node = d.nodePath
		}
		nodes[node] = unix.Stat_t{Mode: unix.S_IFBLK | 0o660, Rdev: unix.Mkdev(d.num[0], d.num[1])}
	}
	write(filepath.Join(proc, "self", "mountinfo"), strings.Join(append([]string{
		"21 26 0:20 / /proc rw,relatime - proc proc rw",
		"22 26 0:21 / /sys rw,relatime - sysfs sysfs rw",
		"23 26 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw",
	}, mountinfo...), "\n")+"\n")
	write(filepath.Join(proc, "swaps"), "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"+strings.Join(swaps, "\n"))
	return System{Proc: proc, Sys: sys, Stat: func(p string, st *unix.Stat_t) error {
		if n, ok := nodes[p]; ok {
			*st = n
			return nil
		}
		if p == "/dev/null" {
			st.Mode = unix.S_IFCHR | 0o666
			return nil
		}
		if strings.HasPrefix(p, "/dev/") {
			return unix.ENOENT
		}
		return unix.Stat(p, st)
	}}
}

const gib = 1 << 30

// A machine with its root on sda2, a USB stick sdb with two partitions and
// a spare disk sdc.
func machine(extra ...fakeDev) []fakeDev {
	return append([]fakeDev{
		{name: "sda", num: [2]uint32{8, 0}, sectors: 100 * gib / 512, model: "Samsung SSD"},
		{name: "sda1", num: [2]uint32{8, 1}, parent: "sda", sectors: gib / 512},
		{name: "sda2", num: [2]uint32{8, 2}, parent: "sda", sectors: 90 * gib / 512},
		{name: "sda3", num: [2]uint32{8, 3}, parent: "sda", sectors: 8 * gib / 512},
		{name: "sdb", num: [2]uint32{8, 16}, sectors: 16 * gib / 512, model: "SanDisk 3.2Gen1"},
		{name: "sdb1", num: [2]uint32{8, 17}, parent: "sdb", sectors: 8 * gib / 512},
		{name: "sdb2", num: [2]uint32{8, 18}, parent: "sdb", sectors: 8 * gib / 512},
		{name: "sdc", num: [2]uint32{8, 32}, sectors: 4 * gib / 512},
	}, extra...)
}

const rootOnSda2 = "26 1 8:2 / / rw,relatime - ext4 /dev/sda2 rw"

func TestCheck(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		devs      []fakeDev
		mountinfo []string
		swaps     []string
		target    string
		size      int64
		refused   []string // substrings of the refusal; none: accepted
	}{
		{name: "a spare USB stick", devs: machine(), mountinfo: []string{rootOnSda2}, target: "/dev/sdb", size: gib},
		{name: "a partition of it mounted", devs: machine(), target: "/dev/sdb", size: gib,
			mountinfo: []string{rootOnSda2, `40 26 8:17 / /media/me/MY\040STICK rw - vfat /dev/sdb1 rw`},
			refused:   []string{"sdb1 is mounted at /media/me/MY STICK"}},
		{name: "the disk itself mounted", devs: machine(), target: "/dev/sdc", size: gib,
			mountinfo: []string{rootOnSda2, "40 26 8:32 / /srv rw - ext4 /dev/sdc rw"},
			refused:   []string{"sdc is mounted at /srv"}},
		{name: "the host's disk", devs: machine(), mountinfo: []string{rootOnSda2}, target: "/dev/sda", size: gib,
			refused: []string{"is the disk this machine runs from (/ is on sda2)"}},
		{name: "the host's disk, root on LVM", target: "/dev/sda", size: gib,
			devs:      machine(fakeDev{name: "dm-0", num: [2]uint32{253, 0}, sectors: 8 * gib / 512, dmName: "vg-root", slaves: []string{"sda3"}}),
			mountinfo: []string{"26 1 253:0 / / rw - ext4 /dev/mapper/vg-root rw"},
			refused:   []string{"is the disk this machine runs from (/ is on dm-0 (device mapper vg-root: LVM, LUKS or similar), on sda3)"}},
		{name: "the host's disk, root on btrfs (no device number)", target: "/dev/sdc", size: gib, devs: machine(),
			mountinfo: []string{"26 1 0:33 / / rw - btrfs /dev/sdc rw,subvol=/@"},
			refused:   []string{"is the disk this machine runs from (/ is on sdc)"}},
		{name: "a partition", devs: machine(), mountinfo: []string{rootOnSda2}, target: "/dev/sdb1", size: gib,
			refused: []string{"is partition sdb1 of disk sdb: an image is a whole disk, flash /dev/sdb"}},
		{name: "swap", devs: machine(), mountinfo: []string{rootOnSda2}, target: "/dev/sdb", size: gib,
			swaps:   []string{"/dev/sdb2                               partition\t8388604\t\t0\t\t-2"},
			refused: []string{"sdb2 is in use as swap"}},
		{name: "a swap file is not a device", devs: machine(), mountinfo: []string{rootOnSda2}, target: "/dev/sdb", size: gib,
			swaps: []string{"/swapfile                               file\t8388604\t\t0\t\t-2"}},
		{name: "held by RAID", target: "/dev/sdb", size: gib,
			devs: machine(fakeDev{name: "md0", num: [2]uint32{9, 0}, sectors: 8 * gib / 512, md: true, slaves: []string{"sdb1"}}),
			// sdb1's holders: set on a copy below.
			mountinfo: []string{rootOnSda2},
			refused:   []string{"sdb1 is held by md0 (software RAID)"}},
		{name: "read-only", target: "/dev/sdd", size: gib,
			devs:      machine(fakeDev{name: "sdd", num: [2]uint32{8, 48}, sectors: 8 * gib / 512, ro: true}),
			mountinfo: []string{rootOnSda2},
			refused:   []string{"is read-only"}},
		{name: "too small", devs: machine(), mountinfo: []string{rootOnSda2}, target: "/dev/sdc", size: 8 * gib,
			refused: []string{"is 4294967296 bytes, smaller than the image's 8589934592"}},
		{name: "every reason at once", devs: machine(), target: "/dev/sda", size: 200 * gib,
			mountinfo: []string{rootOnSda2, "40 26 8:1 / /boot/efi rw - vfat /dev/sda1 rw"},
			swaps:     []string{"/dev/sda3 partition 8388604 0 -2"},
			refused:   []string{"runs from", "sda1 is mounted at /boot/efi", "sda3 is in use as swap", "smaller than the image"}},
		{name: "missing device", devs: machine(), mountinfo: []string{rootOnSda2}, target: "/dev/sdz", size: gib,
			refused: []string{"no such device or file (is the disk plugged in?)"}},
		{name: "a character device", devs: machine(), mountinfo: []string{rootOnSda2}, target: "/dev/null", size: 1,
			refused: []string{"is neither a block device nor a regular file"}},
		{name: "a file", devs: machine(), mountinfo: []string{rootOnSda2}, target: img, size: 1 << 20},
		{name: "a file backing a mounted loop device", target: img, size: 1 << 20,
			devs:      machine(fakeDev{name: "loop3", num: [2]uint32{7, 3}, sectors: 2048, backing: img}),
			mountinfo: []string{rootOnSda2, "50 26 7:3 / /mnt/img rw - ext4 /dev/loop3 rw"},
			refused:   []string{"loop3 is mounted at /mnt/img"}},
		{name: "a loop device sharing its file with a mounted one", target: "/dev/loop3", size: 1 << 20,
			devs: machine(fakeDev{name: "loop3", num: [2]uint32{7, 3}, sectors: 2048, backing: img},
				fakeDev{name: "loop4", num: [2]uint32{7, 4}, sectors: 1024, backing: img}),
			mountinfo: []string{rootOnSda2, "50 26 7:4 / /mnt/img rw - ext4 /dev/loop4 rw"},
			refused:   []string{"loop4 is mounted at /mnt/img"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, d := range tt.devs {
				// A device's holders mirror the slaves of what holds it.
				for _, h := range tt.devs {
					for _, s := range h.slaves {
						if s == d.name {
							tt.devs[i].holders = append(tt.devs[i].holders, h.name)
						}
					}
				}
			}
			sys := fakeSystem(t, tt.devs, tt.mountinfo, tt.swaps)
			tgt, err := sys.Check(tt.target, tt.size)
			if len(tt.refused) == 0 {
				if err != nil {
					t.Fatalf("Check(%s) = %v, want accepted", tt.target, err)
				}
				if tgt == nil || tgt.Size < tt.size {
					t.Fatalf("Check(%s) = %+v", tt.target, tgt)
				}
				return
			}
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("Check(%s) = %v, want a refusal", tt.target, err)
			}
			for _, want := range tt.refused {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("refusal %q does not say %q", err, want)
				}
			}
		})
	}
}

// TestCheckTarget: what the confirmation shows of a device.
func TestCheckTarget(t *testing.T) {
	sys := fakeSystem(t, machine(), []string{rootOnSda2}, nil)
	tgt, err := sys.Check("/dev/sdb", gib)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%v %s %d %q %v", tgt.Device, tgt.Name, tgt.Size, tgt.Model, tgt.Partitions)
	if want := `true sdb 17179869184 "SanDisk 3.2Gen1" [sdb1 sdb2]`; got != want {
		t.Errorf("target %s, want %s", got, want)
	}
}

// TestCheckHost runs the checks on this machine: the disk / is on is
// refused, by name.
func TestCheckHost(t *testing.T) {
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	dir, err := Host.devDir(st.Dev)
	if err != nil || unix.Major(st.Dev) == 0 {
		t.Skipf("/ is not on a block device here (%d:%d): nothing to refuse", unix.Major(st.Dev), unix.Minor(st.Dev))
	}
	disk := dir
	if isPartition(dir) {
		disk = filepath.Dir(dir)
	}
	node := "/dev/" + filepath.Base(disk)
	if _, err := os.Stat(node); err != nil {
		t.Skipf("%s: no device node", node)
	}
	_, err = Check(node, 512)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "is the disk this machine runs from") {
		t.Errorf("Check(%s) = %v, want refused as the host's disk", node, err)
	}
}
