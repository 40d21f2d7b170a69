package ext4

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMatchesMke2fs formats with our code and with mkfs.ext4 given the same
// features and inputs, and compares every byte. The fields mke2fs fills
// and we leave zero are blanked in both images first:
//   - s_kbytes_written and s_overhead_clusters (the kernel computes the
//     overhead), in every superblock copy;
//   - bg_flags ITABLE_ZEROED, which means nothing without group checksums;
//   - the times of inode 1, the bad-blocks inode, which we leave all zero.
//
// The journal is only compared while it is one extent: when it crosses
// groups mke2fs's allocator (ext2fs_fallocate) splits it differently.
func TestMatchesMke2fs(t *testing.T) {
	needTool(t, "mkfs.ext4", "e2fsprogs")
	tests := []struct {
		size      int64
		blockSize int
	}{
		{8 * MiB, 1024},
		{32 * MiB, 2048},
		{64 * MiB, 4096},
		{128*MiB - 4*KiB, 4096},
		{256 * MiB, 4096},
		{1*GiB + 40*4*KiB + 123, 4096}, // the last group is dropped
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%dKiB-%d", tt.size/KiB, tt.blockSize), func(t *testing.T) {
			opts := testOptions()
			opts.BlockSize = tt.blockSize
			opts.AssumeZeroed = true
			ours := format(t, tt.size, opts)

			ref := mke2fs(t, tt.size, opts)

			compareImages(t, ours, ref, tt.blockSize)
		})
	}
}

// TestGeometryMatchesMke2fs compares, for multi-group sizes, where
// mkfs.ext4 and we put every group's superblock backup, descriptors,
// bitmaps and inode table, and the counts that follow from the size (which
// shows that the same last group is dropped). The journal is not compared:
// mke2fs puts it in the middle group.
func TestGeometryMatchesMke2fs(t *testing.T) {
	needTool(t, "mkfs.ext4", "e2fsprogs")
	needTool(t, "dumpe2fs", "e2fsprogs")
	tests := []struct {
		size      int64
		blockSize int
	}{
		{256 * MiB, 4096},
		{1*GiB + 40*4*KiB + 123, 4096}, // a last group too small to keep
		{1*GiB + 600*4*KiB, 4096},      // one just big enough
		{3 * GiB, 4096},
		{300 * MiB, 1024},
		{100 * MiB, 2048},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%dKiB-%d", tt.size/KiB, tt.blockSize), func(t *testing.T) {
			opts := testOptions()
			opts.BlockSize = tt.blockSize
			opts.AssumeZeroed = true
			ours, ref := geometryLines(t, format(t, tt.size, opts)), geometryLines(t, mke2fs(t, tt.size, opts))
			if ours != ref {
				t.Errorf("geometry differs from mke2fs:\n--- ours\n%s\n--- mke2fs\n%s", ours, ref)
			}
		})
	}
}

var geometryLine = regexp.MustCompile(`^(Inode count|Block count|Reserved block count|Inodes per group|Blocks per group|Inode blocks per group|Group \d+:|\s+(Primary|Backup) superblock|\s+Block bitmap|\s+Inode bitmap|\s+Inode table)`)

func geometryLines(t *testing.T, img string) string {
	t.Helper()
	out, err := exec.Command("dumpe2fs", img).Output()
	if err != nil {
		t.Fatalf("dumpe2fs %s: %v", img, err)
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if geometryLine.MatchString(l) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// mke2fs runs mkfs.ext4 with our feature set and opts' inputs on a new
// sparse file, with the clock faked to testTime and no mke2fs.conf.
func mke2fs(t *testing.T, size int64, opts Options) string {
	t.Helper()
	ref := filepath.Join(t.TempDir(), "mke2fs.img")
	if err := os.WriteFile(ref, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(ref, size); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("mkfs.ext4", "-q", "-F",
		"-b", fmt.Sprint(opts.BlockSize), "-I", "256", "-i", "16384", "-m", "5",
		"-O", "none,has_journal,ext_attr,dir_index,filetype,extent,sparse_super,large_file,huge_file,dir_nlink,extra_isize",
		"-U", "01234567-89ab-cdef-0123-456789abcdef",
		"-E", "hash_seed=fedcba98-7654-3210-fedc-ba9876543210,nodiscard,lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0",
		"-L", opts.Label, ref)
	cmd.Env = append(os.Environ(), fmt.Sprint("E2FSPROGS_FAKE_TIME=", testTime), "MKE2FS_CONFIG=/dev/null")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return ref
}

// compareImages compares two images a MiB at a time, after blanking the
// mke2fs-only fields, and reports the first differing bytes.
func compareImages(t *testing.T, ours, ref string, blockSize int) {
	t.Helper()
	fa, err := os.Open(ours)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.Open(ref)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	blank := mke2fsOnly(t, fa, blockSize)
	a, b := make([]byte, MiB), make([]byte, MiB)
	reported := 0
	for off := int64(0); ; off += MiB {
		na, erra := io.ReadFull(fa, a)
		nb, errb := io.ReadFull(fb, b)
		if na != nb {
			t.Fatalf("sizes differ after %d bytes", off+int64(min(na, nb)))
		}
		for _, r := range blank {
			s, e := max(r[0]-off, 0), min(r[1]-off, int64(na))
			if s < e {
				clear(a[s:e])
				clear(b[s:e])
			}
		}
		if !bytes.Equal(a[:na], b[:na]) {
			for i := range na {
				if a[i] == b[i] || reported >= 20 {
					continue
				}
				o := off + int64(i)
				t.Errorf("byte %#x (block %d +%#x): ours %#02x, mke2fs %#02x", o, o/int64(blockSize), o%int64(blockSize), a[i], b[i])
				reported++
			}
		}
		if erra != nil || errb != nil {
			return
		}
	}
}

// mke2fsOnly lists the byte ranges [start, end) of the fields listed in
// TestMatchesMke2fs, from the geometry in our image's superblock.
func mke2fsOnly(t *testing.T, img io.ReaderAt, blockSize int) [][2]int64 {
	t.Helper()
	le := binary.LittleEndian
	sb := make([]byte, superSize)
	if _, err := img.ReadAt(sb, superOffset); err != nil {
		t.Fatal(err)
	}
	bs := int64(blockSize)
	first := int64(le.Uint32(sb[0x14:]))
	bpg := int64(le.Uint32(sb[0x20:]))
	groups := int64(le.Uint32(sb[0x00:]) / le.Uint32(sb[0x28:]))
	var blank [][2]int64
	for g := range groups {
		if !HasSuper(uint32(g)) {
			continue
		}
		start := (first + g*bpg) * bs
		sbAt := start
		if g == 0 {
			sbAt = superOffset
		}
		blank = append(blank,
			[2]int64{sbAt + 0x178, sbAt + 0x180}, // s_kbytes_written
			[2]int64{sbAt + 0x248, sbAt + 0x24C}) // s_overhead_clusters
		for d := range groups {
			at := start + bs + d*descSize
			blank = append(blank, [2]int64{at + 0x12, at + 0x14}) // bg_flags
		}
	}
	desc := make([]byte, descSize)
	if _, err := img.ReadAt(desc, (first+1)*bs); err != nil {
		t.Fatal(err)
	}
	itable := int64(le.Uint32(desc[0x08:])) * bs
	return append(blank, [2]int64{itable + 0x08, itable + 0x14}) // inode 1: atime, ctime, mtime
}
