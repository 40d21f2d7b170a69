package grow

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"keel/image/disk"
	"keel/image/disk/disktest"
	"keel/image/ext4"
	"keel/image/gpt"
)

// memDisk is an in-memory io.WriterAt for ext4.Format.
type memDisk struct{ b []byte }

func (m *memDisk) WriteAt(p []byte, off int64) (int, error) {
	copy(m.b[off:], p)
	return len(p), nil
}

// TestSuperblock reads the superblocks of keel's ext4 and of mke2fs's (with
// and without 64bit and resize_inode) and checks them against dumpe2fs.
func TestSuperblock(t *testing.T) {
	dir := t.TempDir()
	keel := filepath.Join(dir, "keel.img")
	m := &memDisk{b: make([]byte, 40<<20)}
	if err := ext4.Format(m, int64(len(m.b)), ext4.Options{Time: 1}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keel, m.b, 0o644); err != nil {
		t.Fatal(err)
	}
	images := map[string]string{"keel": keel}
	for name, args := range map[string][]string{
		"mke2fs 64bit":        {"-O", "64bit", "-b", "4096"},
		"mke2fs 1k blocks":    {"-b", "1024", "-O", "^64bit"},
		"mke2fs resize_inode": {"-O", "^64bit,resize_inode", "-b", "2048"},
	} {
		img := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".img")
		if err := os.WriteFile(img, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, 37<<20); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("mkfs.ext4", append(append([]string{"-q", "-F", "-t", "ext4"}, args...), img)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mkfs.ext4 %v: %v\n%s", args, err, out)
		}
		images[name] = img
	}
	for name, img := range images {
		t.Run(name, func(t *testing.T) {
			sb, err := readSuperblock(img)
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("dumpe2fs", "-h", img).Output()
			if err != nil {
				t.Fatalf("dumpe2fs: %v", err)
			}
			field := func(f string) uint64 {
				m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(f) + `:\s+(\d+)`).FindSubmatch(out)
				if m == nil {
					return 0
				}
				n, _ := strconv.ParseUint(string(m[1]), 10, 64)
				return n
			}
			want := superblock{
				blocks: field("Block count"), blockSize: uint32(field("Block size")),
				firstDataBlock: uint32(field("First block")), blocksPerGroup: uint32(field("Blocks per group")),
				inodesPerGroup: uint32(field("Inodes per group")), inodeSize: uint32(field("Inode size")),
				reservedGDT: uint32(field("Reserved GDT blocks")), descSize: 32, sparseSuper: true,
			}
			if d := field("Group descriptor size"); d != 0 {
				want.descSize = uint32(d)
			}
			if sb != want {
				t.Errorf("superblock %+v, dumpe2fs says %+v", sb, want)
			}
		})
	}
	if _, err := parseSuperblock(make([]byte, 1024)); err == nil {
		t.Error("zeros read as a superblock")
	}
}

// TestFitFreshFilesystem: a filesystem keel formats fills its partition
// as far as the kernel would grow it, so an image's first boot on a disk
// of its own size asks the kernel for nothing (which would not be a no-op:
// see fit).
func TestFitFreshFilesystem(t *testing.T) {
	for _, mib := range []int64{8, 33, 127, 128, 129, 257, 300} {
		for _, extra := range []int64{0, 4 << 10, 1<<20 - 4096} {
			size := mib<<20 + extra
			m := &memDisk{b: make([]byte, size)}
			if err := ext4.Format(m, size, ext4.Options{Time: 1, NoJournal: mib < 16, AssumeZeroed: true}); err != nil {
				t.Fatal(err)
			}
			sb, err := parseSuperblock(m.b[1024:2048])
			if err != nil {
				t.Fatal(err)
			}
			if got := sb.fit(uint64(size) / uint64(sb.blockSize)); got > sb.blocks {
				t.Errorf("%d bytes: keel's ext4 has %d blocks, the kernel would grow it to %d", size, sb.blocks, got)
			}
		}
	}
}

func TestFit(t *testing.T) {
	// 4 KiB blocks, 32768 a group, 256-byte inodes, 8192 a group: 512
	// blocks of inode table.
	sb := superblock{blocks: 32768, blockSize: 4096, blocksPerGroup: 32768, inodesPerGroup: 8192, inodeSize: 256, descSize: 32, sparseSuper: true}
	for _, c := range []struct{ n, want uint64 }{
		{32768, 32768},
		{32768 + 100, 32768},                     // group 1 (a backup superblock) too small
		{32768 + 1 + 1 + 1 + 2 + 512 + 1, 32768}, // just too small
		{32768 + 1 + 1 + 1 + 2 + 512 + 2, 32768 + 1 + 1 + 1 + 2 + 512 + 2},
		{2*32768 + 1 + 2 + 512 + 2, 2*32768 + 1 + 2 + 512 + 2}, // group 2: no superblock
		{2*32768 + 1 + 2 + 512 + 1, 2 * 32768},
		{1 << 20, 1 << 20},
	} {
		if got := sb.fit(c.n); got != c.want {
			t.Errorf("fit(%d) = %d, want %d", c.n, got, c.want)
		}
	}
	for g, want := range map[uint32]bool{0: true, 1: true, 2: false, 3: true, 9: true, 25: true, 49: true, 50: false, 125: true, 243: true, 100: false} {
		if ext4.HasSuper(uint32(g)) != want {
			t.Errorf("HasSuper(%d) = %v", g, !want)
		}
	}
}

// TestPartitionLoop grows the data partition of keel's disk on a real
// kernel: a loop device over the image file made larger, partitions
// scanned. The kernel's partition must take the new size (BLKPG) and
// sgdisk must find the disk sound.
func TestPartitionLoop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root for a loop device (CI runs as root)")
	}
	name, l := disktest.GPT(t, t.TempDir(), "disk", disk.Sizes{ESP: 34 << 20, Slot: 2 << 20, Data: 8 << 20}, "grow test")
	if err := os.Truncate(name, l.Size+64<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", name).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		// Partitions added by BLKPG outlive the loop device's binding.
		exec.Command("partx", "-d", loop).Run()
		exec.Command("losetup", "-d", loop).Run()
	})
	// partx reads the table and adds the partitions with BLKPG, which
	// works where the kernel has no GPT parser of its own (some
	// sandboxes' kernels), unlike losetup -P.
	if out, err := exec.Command("partx", "-a", loop).CombinedOutput(); err != nil {
		t.Fatalf("partx -a: %v\n%s", err, out)
	}
	part := filepath.Base(loop) + "p4"
	before, err := sysfsSize(part)
	for i := 0; err != nil && i < 50; i++ { // the scan is asynchronous
		time.Sleep(100 * time.Millisecond)
		before, err = sysfsSize(part)
	}
	if err != nil {
		t.Fatal(err)
	}
	from, to, err := Partition(loop, 4, part)
	if err != nil {
		t.Fatal(err)
	}
	size := l.Size + 64<<20
	wantLast := (uint64(size/512)-34)/8*8 - 1
	data, _ := l.Find(disk.LabelData)
	wantSize := int64(wantLast+1)*512 - data.Start
	if from != before || from != data.Size || to != wantSize {
		t.Errorf("Partition: %d → %d bytes, want %d → %d", from, to, data.Size, wantSize)
	}
	if got, _ := sysfsSize(part); got != wantSize {
		t.Errorf("the kernel has %s at %d bytes, want %d", part, got, wantSize)
	}
	if out, err := exec.Command("sgdisk", "-v", loop).CombinedOutput(); err != nil || !bytes.Contains(out, []byte("No problems found")) {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
	// Again: nothing to do, nothing written.
	if from, to, err := Partition(loop, 4, part); err != nil || from != to {
		t.Errorf("second Partition: %d → %d, %v", from, to, err)
	}
	tb, err := gpt.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if p := tb.Partitions[3]; p.LastLBA != wantLast || tb.BackupErr != nil {
		t.Errorf("data partition ends at LBA %d, want %d; backup: %v", p.LastLBA, wantLast, tb.BackupErr)
	}
}
