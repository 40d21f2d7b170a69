package ext4

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	KiB = 1 << 10
	MiB = 1 << 20
	GiB = 1 << 30
)

// testTime is 2023-11-14 22:13:20 UTC: in the past, as e2fsck wants.
const testTime = 1700000000

func testOptions() Options {
	return Options{
		UUID:     [16]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef},
		HashSeed: [16]byte{0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10},
		Label:    "keel-data",
		Time:     testTime,
	}
}

// format writes a filesystem into a new sparse file of size bytes.
func format(t *testing.T, size int64, opts Options) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "data.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := Format(f, size, opts); err != nil {
		t.Fatalf("Format(%d): %v", size, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return img
}

func TestFormatTools(t *testing.T) {
	varDirs := []Dir{
		{Path: "log", Mode: 0o755},
		{Path: "log/journal", Mode: 0o2755, GID: 4},
		{Path: "tmp", Mode: 0o1777},
		{Path: "lib", Mode: 0o755, UID: 1000, GID: 1000},
	}
	tests := []struct {
		name    string
		size    int64
		mod     func(*Options)
		journal string // dumpe2fs "Total journal size", "" for none
	}{
		{name: "8MiB", size: 8 * MiB, journal: "4096k"},
		{name: "64MiB", size: 64 * MiB, journal: "4096k"},
		{name: "256MiB", size: 256 * MiB, journal: "16M"},
		{name: "1GiB", size: 1 * GiB, journal: "32M"},
		{name: "3GiB", size: 3 * GiB, journal: "64M"},
		{name: "1GiB+odd", size: 1*GiB + 40*4*KiB + 123, journal: "32M"}, // last group dropped
		{name: "8MiB-1k-blocks", size: 8 * MiB, mod: func(o *Options) { o.BlockSize = 1024 }, journal: "1024k"},
		{name: "300MiB-1k-blocks", size: 300 * MiB, mod: func(o *Options) { o.BlockSize = 1024 }, journal: "8M"},
		{name: "100MiB-2k-blocks", size: 100 * MiB, mod: func(o *Options) { o.BlockSize = 2048 }, journal: "8M"},
		{name: "1MiB-no-journal", size: 1 * MiB, mod: func(o *Options) { o.NoJournal = true }},
		{name: "64KiB-no-journal", size: 64 * KiB, mod: func(o *Options) { o.NoJournal = true }},
		{name: "64MiB-dirs-owner", size: 64 * MiB, mod: func(o *Options) {
			o.Dirs, o.RootUID, o.RootGID = varDirs, 1, 2
		}, journal: "4096k"},
		// 32 MiB of journal in 8 MiB groups: more than 4 extents, so
		// the journal inode gets an extent leaf block.
		{name: "5GiB-1k-blocks", size: 5 * GiB, mod: func(o *Options) { o.BlockSize = 1024; o.AssumeZeroed = true }, journal: "32M"},
		{name: "20GiB", size: 20 * GiB, mod: func(o *Options) { o.AssumeZeroed = true }, journal: "128M"},
		{name: "256MiB-zeroed", size: 256 * MiB, mod: func(o *Options) { o.AssumeZeroed = true }, journal: "16M"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions()
			if tt.mod != nil {
				tt.mod(&opts)
			}
			img := format(t, tt.size, opts)
			r := e2fsckClean(t, img)
			// root, lost+found, the reserved inodes 1-10 and our dirs.
			if want := 11 + len(opts.Dirs); r.usedInodes != want {
				t.Errorf("e2fsck: %d inodes in use, want %d", r.usedInodes, want)
			}

			h := dumpe2fsHeader(t, img)
			features := "ext_attr dir_index filetype extent sparse_super large_file huge_file dir_nlink extra_isize"
			if tt.journal != "" {
				features = "has_journal " + features
			}
			created := time.Unix(testTime, 0).UTC().Format("Mon Jan _2 15:04:05 2006")
			want := map[string]string{
				"Filesystem UUID":         "01234567-89ab-cdef-0123-456789abcdef",
				"Directory Hash Seed":     "fedcba98-7654-3210-fedc-ba9876543210",
				"Filesystem volume name":  "keel-data",
				"Filesystem features":     features,
				"Filesystem created":      created,
				"Last write time":         created,
				"Last checked":            created,
				"Last mount time":         "n/a",
				"Filesystem state":        "clean",
				"Filesystem revision #":   "1 (dynamic)",
				"Inode size":              "256",
				"Default directory hash":  "half_md4",
				"Filesystem flags":        "signed_directory_hash",
				"Block size":              fmt.Sprint(max(opts.BlockSize, 1024*map[bool]int{true: 4, false: 1}[opts.BlockSize == 0])),
				"Total journal size":      tt.journal,
				"Journal sequence":        map[bool]string{true: "0x00000001"}[tt.journal != ""],
				"Journal start":           map[bool]string{true: "0"}[tt.journal != ""],
				"Reserved block count":    fmt.Sprint(r.blocks / 20),
				"Block count":             fmt.Sprint(r.blocks),
				"Inode count":             fmt.Sprint(r.inodes),
				"Free blocks":             fmt.Sprint(r.blocks - r.usedBlocks),
				"Free inodes":             fmt.Sprint(r.inodes - r.usedInodes),
				"Journal backup":          map[bool]string{true: "inode blocks"}[tt.journal != ""],
				"Default mount options":   "user_xattr acl",
				"Required extra isize":    "32",
				"Filesystem magic number": "0xEF53",
			}
			for k, v := range want {
				if h[k] != v {
					t.Errorf("dumpe2fs -h: %s = %q, want %q", k, h[k], v)
				}
			}
			if bs := int64(max(opts.BlockSize, 1024)); opts.BlockSize != 0 && int64(r.blocks)*bs > tt.size {
				t.Errorf("%d blocks of %d bytes exceed %d bytes", r.blocks, bs, tt.size)
			}

			root := lsNames(t, debugfs(t, img, "-R", "ls -l /"))
			wantRoot := map[string]string{
				".":          fmt.Sprintf("2 40755 %d %d", opts.RootUID, opts.RootGID),
				"..":         fmt.Sprintf("2 40755 %d %d", opts.RootUID, opts.RootGID),
				"lost+found": "11 40700 0 0",
			}
			// Inodes are numbered from 12 in path order.
			sorted := slices.SortedFunc(slices.Values(opts.Dirs), func(a, b Dir) int { return strings.Compare(a.Path, b.Path) })
			for i, d := range sorted {
				if !strings.Contains(d.Path, "/") {
					wantRoot[d.Path] = fmt.Sprintf("%d 4%04o %d %d", 12+i, d.Mode, d.UID, d.GID)
				}
			}
			if fmt.Sprint(root) != fmt.Sprint(wantRoot) {
				t.Errorf("debugfs ls -l /:\n got %v\nwant %v", root, wantRoot)
			}
			if len(opts.Dirs) > 0 {
				log := lsNames(t, debugfs(t, img, "-R", "ls -l /log"))
				if got, want := log["journal"], "14 42755 0 4"; got != want {
					t.Errorf("debugfs ls -l /log: journal is %q, want %q", got, want)
				}
			}
			lpf := "Size: 16384"
			if opts.BlockSize == 1024 {
				lpf = "Size: 12288"
			}
			if stat := debugfs(t, img, "-R", "stat lost+found"); !strings.Contains(stat, lpf) {
				t.Errorf("lost+found: want %s:\n%s", lpf, stat)
			}

			// Allocating through e2fsprogs proves the bitmaps and counts
			// are what its allocator expects.
			src := filepath.Join(t.TempDir(), "hostname")
			if err := os.WriteFile(src, []byte("keel\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			debugfs(t, img, "-w", "-R", "write "+src+" x")
			debugfs(t, img, "-w", "-R", "mkdir y")
			r2 := e2fsckClean(t, img)
			if r2.usedInodes != r.usedInodes+2 {
				t.Errorf("after write and mkdir: %d inodes in use, want %d", r2.usedInodes, r.usedInodes+2)
			}
			if got := debugfs(t, img, "-R", "cat x"); got != "keel\n" {
				t.Errorf("debugfs cat x = %q", got)
			}
		})
	}
}

// TestDeterministic formats twice and compares bytes; AssumeZeroed must
// give the same bytes while writing fewer blocks.
func TestDeterministic(t *testing.T) {
	for _, size := range []int64{8 * MiB, 300 * MiB} {
		t.Run(fmt.Sprint(size/MiB, "MiB"), func(t *testing.T) {
			opts := testOptions()
			opts.Dirs = []Dir{{Path: "tmp", Mode: 0o1777}, {Path: "log", Mode: 0o755}}
			a, b := format(t, size, opts), format(t, size, opts)
			opts.AssumeZeroed = true
			c := format(t, size, opts)
			ha, hb, hc := sha256File(t, a), sha256File(t, b), sha256File(t, c)
			if ha != hb {
				t.Errorf("two formats differ: %s vs %s", ha, hb)
			}
			if ha != hc {
				t.Errorf("AssumeZeroed changes the bytes: %s vs %s", ha, hc)
			}
			if da, dc := diskUsage(t, a), diskUsage(t, c); dc >= da {
				t.Errorf("AssumeZeroed uses %d bytes on disk, without it %d: want fewer", dc, da)
			}
			t.Logf("sha256 %s", ha)
		})
	}
}

// TestFormatOverOldData formats over a device full of 0xff bytes, as a
// partition that held something else: every block the filesystem relies on
// must be written, so e2fsck must be as silent as on a sparse file.
func TestFormatOverOldData(t *testing.T) {
	for _, bs := range []int{1024, 4096} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			const size = 300 * MiB
			img := filepath.Join(t.TempDir(), "old.img")
			f, err := os.Create(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			junk := make([]byte, MiB)
			for i := range junk {
				junk[i] = 0xff
			}
			for range size / MiB {
				if _, err := f.Write(junk); err != nil {
					t.Fatal(err)
				}
			}
			opts := testOptions()
			opts.BlockSize = bs
			opts.Dirs = []Dir{{Path: "log", Mode: 0o755}}
			if err := Format(f, size, opts); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			e2fsckClean(t, img)
			debugfs(t, img, "-w", "-R", "mkdir /log/new")
			e2fsckClean(t, img)
		})
	}
}

// TestDirOrder checks that the order of Options.Dirs does not matter.
func TestDirOrder(t *testing.T) {
	opts := testOptions()
	opts.Dirs = []Dir{{Path: "a", Mode: 0o755}, {Path: "a/b", Mode: 0o700}, {Path: "c", Mode: 0o755}}
	a := format(t, 8*MiB, opts)
	opts.Dirs = []Dir{opts.Dirs[2], opts.Dirs[1], opts.Dirs[0]}
	b := format(t, 8*MiB, opts)
	if sha256File(t, a) != sha256File(t, b) {
		t.Error("the order of Dirs changes the bytes")
	}
}

// TestTimeAfter2038 checks the epoch bits of inode and superblock times
// (e2fsck is told the clock is broken, or it would report the future).
func TestTimeAfter2038(t *testing.T) {
	opts := testOptions()
	opts.Time = 4102444800 // 2100-01-01
	img := format(t, 8*MiB, opts)
	conf := filepath.Join(t.TempDir(), "e2fsck.conf")
	if err := os.WriteFile(conf, []byte("[options]\n\tbroken_system_clock = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e2fsckClean(t, img, "E2FSCK_CONFIG="+conf)
	if h := dumpe2fsHeader(t, img); h["Filesystem created"] != "Fri Jan  1 00:00:00 2100" {
		t.Errorf("dumpe2fs: created %q", h["Filesystem created"])
	}
	if stat := debugfs(t, img, "-R", "stat /"); !strings.Contains(stat, "mtime: 0xf4865700:00000001") {
		t.Errorf("root mtime is not 2100 with epoch bit 1:\n%s", stat)
	}
}

// TestMount has the kernel mount the filesystem read-write as ext4, write
// through the journal, and unmount; e2fsck must still be silent.
func TestMount(t *testing.T) {
	needLoopMount(t)
	tests := []struct {
		name string
		size int64
		mod  func(*Options)
	}{
		{name: "64MiB", size: 64 * MiB},
		{name: "1GiB", size: 1 * GiB},
		{name: "3GiB-zeroed", size: 3 * GiB, mod: func(o *Options) { o.AssumeZeroed = true }},
		{name: "8MiB-1k-blocks", size: 8 * MiB, mod: func(o *Options) { o.BlockSize = 1024 }},
		{name: "16MiB-no-journal", size: 16 * MiB, mod: func(o *Options) { o.NoJournal = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions()
			opts.Dirs = []Dir{{Path: "log", Mode: 0o755}}
			if tt.mod != nil {
				tt.mod(&opts)
			}
			img := format(t, tt.size, opts)
			mnt := t.TempDir()
			if out, err := exec.Command("mount", "-t", "ext4", "-o", "loop,rw", img, mnt).CombinedOutput(); err != nil {
				t.Fatalf("mount -t ext4 -o loop,rw %s: %v: %s", img, err, out)
			}
			mounted := true
			defer func() {
				if mounted {
					exec.Command("umount", mnt).Run()
				}
			}()
			if err := os.WriteFile(filepath.Join(mnt, "log", "hello"), []byte("hello\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			big := make([]byte, 4*MiB)
			for i := range big {
				big[i] = byte(i * 7)
			}
			if err := os.WriteFile(filepath.Join(mnt, "big"), big, 0o644); err != nil {
				t.Fatal(err)
			}
			// Enough entries to make the kernel turn / into an htree.
			for i := range 200 {
				if err := os.Mkdir(filepath.Join(mnt, fmt.Sprint("directory-", i)), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			syscall.Sync()
			if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
				t.Fatalf("umount %s: %v: %s", mnt, err, out)
			}
			mounted = false
			r := e2fsckClean(t, img)
			if want := 11 + 1 + 2 + 200; r.usedInodes != want {
				t.Errorf("after the kernel wrote: %d inodes in use, want %d", r.usedInodes, want)
			}
			if got := debugfs(t, img, "-R", "cat /log/hello"); got != "hello\n" {
				t.Errorf("cat /log/hello = %q", got)
			}
			if stat := debugfs(t, img, "-R", "stat /big"); !strings.Contains(stat, "EXTENTS:") {
				t.Errorf("the kernel did not write /big with extents:\n%s", stat)
			}
			if stat := debugfs(t, img, "-R", "stat /"); !strings.Contains(stat, "Flags: 0x81000") {
				t.Errorf("the kernel did not index / (want EXTENTS_FL|INDEX_FL):\n%s", stat)
			}
		})
	}
}

// needLoopMount skips unless this machine can loop-mount an ext4 image that
// mkfs.ext4 made, so that a failure to mount ours is a failure, not a skip.
func needLoopMount(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop mounts need root")
	}
	needTool(t, "mount", "mount")
	needTool(t, "mkfs.ext4", "e2fsprogs")
	img := filepath.Join(t.TempDir(), "ref.img")
	if out, err := exec.Command("mkfs.ext4", "-q", img, "8M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v: %s", img, err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "ext4", "-o", "loop,rw", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("this machine cannot loop-mount ext4: mount -t ext4 -o loop,rw %s: %v: %s", img, err, out)
	}
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount %s: %v: %s", mnt, err, out)
	}
}

func TestFormatErrors(t *testing.T) {
	tests := []struct {
		name    string
		size    int64
		mod     func(*Options)
		wantErr string
		tooSmal bool
	}{
		{name: "zero", size: 0, wantErr: "too small", tooSmal: true},
		{name: "tiny", size: 36 * KiB, mod: func(o *Options) { o.NoJournal = true }, wantErr: "too small", tooSmal: true},
		{name: "no room for journal", size: 4 * MiB, wantErr: "too small for a journal", tooSmal: true},
		{name: "label", size: 8 * MiB, mod: func(o *Options) { o.Label = "seventeen-bytes!!" }, wantErr: "at most 16"},
		{name: "block size", size: 8 * MiB, mod: func(o *Options) { o.BlockSize = 8192 }, wantErr: "block size 8192"},
		{name: "bytes per inode", size: 8 * MiB, mod: func(o *Options) { o.BytesPerInode = 512 }, wantErr: "bytes per inode"},
		{name: "time", size: 8 * MiB, mod: func(o *Options) { o.Time = -1 }, wantErr: "time -1"},
		{name: "absolute dir", size: 8 * MiB, mod: func(o *Options) { o.Dirs = []Dir{{Path: "/log"}} }, wantErr: "clean relative path"},
		{name: "dotdot dir", size: 8 * MiB, mod: func(o *Options) { o.Dirs = []Dir{{Path: "a/../b"}} }, wantErr: "clean relative path"},
		{name: "no parent", size: 8 * MiB, mod: func(o *Options) { o.Dirs = []Dir{{Path: "log/journal"}} }, wantErr: `parent "log"`},
		{name: "twice", size: 8 * MiB, mod: func(o *Options) { o.Dirs = []Dir{{Path: "a"}, {Path: "a"}} }, wantErr: "listed twice"},
		{name: "lost+found", size: 8 * MiB, mod: func(o *Options) { o.Dirs = []Dir{{Path: "lost+found"}} }, wantErr: "reserved"},
		{name: "mode", size: 8 * MiB, mod: func(o *Options) { o.Dirs = []Dir{{Path: "a", Mode: 0o40755}} }, wantErr: "bits other than permissions"},
		{name: "full root", size: 8 * MiB, mod: func(o *Options) {
			for i := range 300 {
				o.Dirs = append(o.Dirs, Dir{Path: fmt.Sprintf("directory-%03d", i), Mode: 0o755})
			}
		}, wantErr: "do not fit in one 4096-byte directory block"},
		{name: "64bit", size: 17 << 40, wantErr: "64bit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions()
			if tt.mod != nil {
				tt.mod(&opts)
			}
			err := Format(failWriter{}, tt.size, opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Format: %v, want an error containing %q", err, tt.wantErr)
			}
			if errors.Is(err, ErrTooSmall) != tt.tooSmal {
				t.Errorf("errors.Is(%v, ErrTooSmall) = %v", err, !tt.tooSmal)
			}
		})
	}
}

// failWriter fails the tests above if Format writes before validating.
type failWriter struct{}

func (failWriter) WriteAt(p []byte, off int64) (int, error) {
	return 0, errors.New("unexpected write")
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func diskUsage(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}
