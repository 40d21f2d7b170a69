package fat

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

const MiB = 1 << 20

var epoch = time.Date(2024, 5, 17, 12, 34, 56, 0, time.UTC)

// content is deterministic pseudo-random data for a path.
func content(p string, n int) []byte {
	h := fnv.New64a()
	h.Write([]byte(p))
	r := rand.New(rand.NewPCG(h.Sum64(), 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// tree is what a test puts in a filesystem: files with content, and
// directories (with or without files in them).
type tree struct {
	files map[string][]byte
	dirs  map[string]bool
	label bool // fsck.fat counts a volume label entry as a file
}

func newTree() *tree { return &tree{files: map[string][]byte{}, dirs: map[string]bool{}} }

func (tr *tree) addFile(p string, n int) {
	tr.files[p] = content(p, n)
	tr.addDir(path.Dir(p))
}

func (tr *tree) addDir(p string) {
	for d := p; d != "/"; d = path.Dir(d) {
		tr.dirs[d] = true
	}
}

// espTree is an ESP like keel builds, plus what stresses the writer: a file
// of a few MiB, an empty file, long and non-ASCII names, and a directory of
// 300 long-named files (many clusters of directory, short-name tails past ~9).
func espTree() *tree {
	tr := newTree()
	for _, f := range []struct {
		p string
		n int
	}{
		{"/EFI/BOOT/BOOTX64.EFI", 110_000},
		{"/loader/loader.conf", 40},
		{"/loader/entries/keel-a.conf", 300},
		{"/loader/entries/keel-b+3-0.conf", 301},
		{"/keel/a/vmlinuz", 3*MiB + 12345},
		{"/keel/a/initrd", 1 * MiB},
		{"/keel/b/vmlinuz", 0},
		{"/README.TXT", 5},
		{"/Ünïcødé – näme.txt", 10},
		{"/a long name that needs several long-name entries, well past thirteen characters.data", 77},
	} {
		tr.addFile(f.p, f.n)
	}
	for i := range 300 {
		tr.addFile(fmt.Sprintf("/many/file-%04d.txt", i), i*7)
	}
	tr.addDir("/empty/dir")
	return tr
}

func (tr *tree) sortedDirs() []string {
	var out []string
	for d := range tr.dirs {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

func (tr *tree) sortedFiles() []string {
	var out []string
	for f := range tr.files {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// write puts tr into fs in sorted order.
func (tr *tree) write(t *testing.T, fs *FS) {
	t.Helper()
	for _, d := range tr.sortedDirs() {
		if err := fs.Mkdir(d); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range tr.sortedFiles() {
		b := tr.files[f]
		if err := fs.WriteFile(f, bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
	}
}

// verify checks an image against tr with fsck.fat, mtools and our reader.
// step names what just happened, for the log.
func (tr *tree) verify(t *testing.T, img string, fs *FS, step string) {
	t.Helper()
	files, used, total := fsckClean(t, img)
	t.Logf("%s: fsck.fat -n: %s", step, lastLine(fsckOutput(img)))
	want := len(tr.files) + len(tr.dirs)
	if tr.label {
		want++
	}
	if files != want {
		t.Errorf("%s: fsck.fat counts %d files and directories, want %d", step, files, want)
	}
	if fs != nil {
		if got := int(fs.clusterCount() - fs.fat.free); used != got {
			t.Errorf("%s: fsck.fat says %d clusters used, our FAT %d", step, used, got)
		}
		if total != int(fs.clusterCount()) {
			t.Errorf("%s: fsck.fat says %d clusters, we %d", step, total, fs.clusterCount())
		}
	}

	var paths []string
	for d := range tr.dirs {
		paths = append(paths, d+"/")
	}
	for f := range tr.files {
		paths = append(paths, f)
	}
	sort.Strings(paths)
	got := mdirAll(t, img)
	sort.Strings(got)
	if !slices.Equal(got, paths) {
		t.Errorf("%s: mdir lists\n%q\nwant\n%q", step, got, paths)
	}
	for i, f := range tr.sortedFiles() {
		// mtools for all but the crowd in /many, where every 23rd is enough.
		if strings.HasPrefix(f, "/many/") && i%23 != 0 {
			continue
		}
		if b := mcopyOut(t, img, f); !bytes.Equal(b, tr.files[f]) {
			t.Errorf("%s: mcopy %s: %d bytes differ from the %d written", step, f, len(b), len(tr.files[f]))
		}
	}
	if fs != nil {
		for _, f := range tr.sortedFiles() {
			b, err := fs.ReadFile(f)
			if err != nil {
				t.Errorf("%s: %v", step, err)
			} else if !bytes.Equal(b, tr.files[f]) {
				t.Errorf("%s: ReadFile %s differs", step, f)
			}
		}
	}
}

func lastLine(s string) string {
	l := strings.Split(s, "\n")
	return l[len(l)-1]
}

func newImage(t *testing.T, size int64) (string, *os.File) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "esp.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(size); err != nil { // sparse
		t.Fatal(err)
	}
	return img, f
}

func formatOpts() FormatOptions {
	return FormatOptions{Label: "KEEL-ESP", VolumeID: 0x4B45454C, HiddenSectors: 2048, Time: epoch}
}

func TestFormatGeometry(t *testing.T) {
	for _, tc := range []struct {
		size        int64
		clusterSize int // what mkfs.fat picks, checked against it too
	}{
		{33 * MiB, 512},
		{64 * MiB, 512},
		{256 * MiB, 512},
		{260 * MiB, 512},
		{261 * MiB, 4096},
		{1024 * MiB, 4096},
	} {
		t.Run(fmt.Sprint(tc.size/MiB, "MiB"), func(t *testing.T) {
			img, f := newImage(t, tc.size)
			fs, err := Format(f, tc.size, formatOpts())
			if err != nil {
				t.Fatal(err)
			}
			if got := fs.ClusterSize(); got != int64(tc.clusterSize) {
				t.Errorf("cluster size %d, want %d", got, tc.clusterSize)
			}
			mkCluster, mkFAT := mkfsGeometry(t, tc.size)
			if mkCluster != tc.clusterSize {
				t.Errorf("mkfs.fat picks %d-byte clusters, the table says %d", mkCluster, tc.clusterSize)
			}
			if int(fs.bs.fatSize) != mkFAT {
				t.Errorf("FAT of %d sectors, mkfs.fat makes %d", fs.bs.fatSize, mkFAT)
			}
			if fs.dataOffset%fs.clusterSize != 0 {
				t.Errorf("data area at %d is not cluster aligned", fs.dataOffset)
			}
			files, used, _ := fsckClean(t, img)
			if files != 1 || used != 1 { // the label entry; the root's cluster
				t.Errorf("fresh volume: %d files, %d clusters used; want 1 and 1", files, used)
			}
			// The boot sector says what was asked for.
			again, err := Open(f, tc.size, OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if again.Label() != "KEEL-ESP" || again.VolumeID() != 0x4B45454C || again.bs.hidden != 2048 ||
				again.bs.media != 0xF8 || again.bs.reserved != 32 || again.bs.fsInfo != 1 || again.bs.backupBoot != 6 {
				t.Errorf("boot sector: %+v", again.bs)
			}
		})
	}
}

func TestFormatTooSmall(t *testing.T) {
	_, f := newImage(t, 16*MiB)
	if _, err := Format(f, 16*MiB, FormatOptions{}); err == nil {
		t.Fatal("16 MiB formatted as FAT32 with 512-byte clusters; want an error")
	}
	if _, err := Format(f, 64*MiB, FormatOptions{Label: "bad/label"}); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("bad label: %v, want ErrInvalidName", err)
	}
}

func TestBuildAndRead(t *testing.T) {
	for _, size := range []int64{64 * MiB, 256 * MiB, 1024 * MiB} {
		t.Run(fmt.Sprint(size/MiB, "MiB"), func(t *testing.T) {
			img, f := newImage(t, size)
			fs, err := Format(f, size, formatOpts())
			if err != nil {
				t.Fatal(err)
			}
			tr := espTree()
			tr.label = true
			tr.write(t, fs)
			tr.verify(t, img, fs, "build")

			// The names as written, and the short names Linux would make.
			ents, err := fs.ReadDir("/loader/entries")
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range ents {
				names = append(names, e.Name+"="+e.ShortName)
			}
			want := []string{"keel-a.conf=KEEL-A~1.CON", "keel-b+3-0.conf=KEEL-B~1.CON"}
			if !slices.Equal(names, want) {
				t.Errorf("entries: %q, want %q", names, want)
			}
			for p, short := range map[string]string{
				"/keel/a/vmlinuz":       "VMLINUZ",
				"/loader/loader.conf":   "LOADER~1.CON",
				"/README.TXT":           "README.TXT",
				"/EFI/BOOT/BOOTX64.EFI": "BOOTX64.EFI",
			} {
				st, err := fs.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if st.ShortName != short || !st.ModTime.Equal(epoch) {
					t.Errorf("%s: short name %s, mtime %v; want %s, %v", p, st.ShortName, st.ModTime, short, epoch)
				}
			}
			// Lookups ignore case and accept the short name.
			for _, p := range []string{"/efi/boot/bootx64.efi", "/LOADER/ENTRIES/KEEL-B~1.CON", "/Keel/A/VMLINUZ"} {
				if _, err := fs.Stat(p); err != nil {
					t.Errorf("case-insensitive lookup: %v", err)
				}
			}
			// /many grew well past one cluster.
			d, err := fs.walk([]string{"many"})
			if err != nil {
				t.Fatal(err)
			}
			if len(d.clusters) < 2 {
				t.Errorf("/many has %d clusters, want several", len(d.clusters))
			}

			// Reopen from the device and read everything back.
			re, err := Open(f, size, OpenOptions{Time: epoch})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tr.sortedFiles() {
				r, err := re.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(r)
				if err != nil {
					t.Fatalf("read %s: %v", p, err)
				}
				if !bytes.Equal(b, tr.files[p]) {
					t.Errorf("reopened %s differs", p)
				}
			}
			if re.fat.free != fs.fat.free {
				t.Errorf("reopened free count %d, want %d", re.fat.free, fs.fat.free)
			}
		})
	}
}

// edit runs the operations keel's updater does (DESIGN §4) and more, with
// fsck.fat and mtools after each.
func TestEdit(t *testing.T) {
	const size = 64 * MiB
	img, f := newImage(t, size)
	fs, err := Format(f, size, formatOpts())
	if err != nil {
		t.Fatal(err)
	}
	tr := espTree()
	tr.label = true
	tr.write(t, fs)
	used := func() uint32 { return fs.clusterCount() - fs.fat.free }
	clustersOf := func(n int) uint32 { return uint32((int64(n) + fs.clusterSize - 1) / fs.clusterSize) }

	steps := []struct {
		name string
		do   func(t *testing.T)
	}{
		{"rename over existing frees the target", func(t *testing.T) {
			before := used()
			nb := content("new kernel", 2*MiB)
			if err := fs.WriteFile("/keel/a/vmlinuz.new", bytes.NewReader(nb), int64(len(nb))); err != nil {
				t.Fatal(err)
			}
			if err := fs.Rename("/keel/a/vmlinuz.new", "/keel/a/vmlinuz"); err != nil {
				t.Fatal(err)
			}
			old := tr.files["/keel/a/vmlinuz"]
			tr.files["/keel/a/vmlinuz"] = nb
			if got, want := used(), before-clustersOf(len(old))+clustersOf(len(nb)); got != want {
				t.Errorf("%d clusters used, want %d (old kernel's clusters leaked?)", got, want)
			}
		}},
		{"rename in place: entry through its counter states", func(t *testing.T) {
			names := []string{"keel-b+3-0.conf", "keel-b+2-1.conf", "keel-b+1-2.conf", "keel-b.conf", "KEEL-B.CONF", "keel-b-renamed-to-something-much-longer.conf"}
			for i := 1; i < len(names); i++ {
				from, to := "/loader/entries/"+names[i-1], "/loader/entries/"+names[i]
				if err := fs.Rename(from, to); err != nil {
					t.Fatal(err)
				}
				tr.files[to] = tr.files[from]
				delete(tr.files, from)
			}
		}},
		{"write through a temporary name, replace, across directories", func(t *testing.T) {
			b := content("entry v2", 333)
			if err := fs.WriteFile("/keel/b/keel-a.conf.tmp", bytes.NewReader(b), int64(len(b))); err != nil {
				t.Fatal(err)
			}
			if err := fs.Rename("/keel/b/keel-a.conf.tmp", "/loader/entries/keel-a.conf"); err != nil {
				t.Fatal(err)
			}
			tr.files["/loader/entries/keel-a.conf"] = b
		}},
		{"replace content in place", func(t *testing.T) {
			before := used()
			b := content("initrd v2", MiB/2)
			if err := fs.WriteFile("/keel/a/initrd", bytes.NewReader(b), int64(len(b))); err != nil {
				t.Fatal(err)
			}
			if got, want := used(), before-clustersOf(MiB)+clustersOf(MiB/2); got != want {
				t.Errorf("%d clusters used, want %d", got, want)
			}
			tr.files["/keel/a/initrd"] = b
		}},
		{"move a directory to another parent", func(t *testing.T) {
			if err := fs.Rename("/empty/dir", "/keel/b/moved"); err != nil {
				t.Fatal(err)
			}
			delete(tr.dirs, "/empty/dir")
			tr.dirs["/keel/b/moved"] = true
			if err := fs.Rename("/keel/b", "/keel/slot-b"); err != nil {
				t.Fatal(err)
			}
			for _, d := range []string{"/keel/b", "/keel/b/moved"} {
				delete(tr.dirs, d)
			}
			tr.dirs["/keel/slot-b"], tr.dirs["/keel/slot-b/moved"] = true, true
			tr.files["/keel/slot-b/vmlinuz"] = tr.files["/keel/b/vmlinuz"]
			delete(tr.files, "/keel/b/vmlinuz")
			// Into the root: ".." becomes 0.
			if err := fs.Rename("/keel/slot-b/moved", "/moved"); err != nil {
				t.Fatal(err)
			}
			delete(tr.dirs, "/keel/slot-b/moved")
			tr.dirs["/moved"] = true
		}},
		{"remove files and directories", func(t *testing.T) {
			before := used()
			if err := fs.Remove("/many"); !errors.Is(err, ErrNotEmpty) {
				t.Errorf("remove non-empty: %v, want ErrNotEmpty", err)
			}
			freed := uint32(0)
			for i := range 300 {
				p := fmt.Sprintf("/many/file-%04d.txt", i)
				if i%3 == 0 {
					continue
				}
				freed += clustersOf(len(tr.files[p]))
				if err := fs.Remove(p); err != nil {
					t.Fatal(err)
				}
				delete(tr.files, p)
			}
			if err := fs.Remove("/empty"); err != nil {
				t.Fatal(err)
			}
			delete(tr.dirs, "/empty")
			freed++
			if got := used(); got != before-freed {
				t.Errorf("%d clusters used, want %d", got, before-freed)
			}
		}},
		{"reuse deleted slots", func(t *testing.T) {
			for i := range 50 {
				p := fmt.Sprintf("/many/new name %d.bin", i)
				b := content(p, 1000+i)
				if err := fs.WriteFile(p, bytes.NewReader(b), int64(len(b))); err != nil {
					t.Fatal(err)
				}
				tr.files[p] = b
			}
		}},
		{"errors leave the filesystem alone", func(t *testing.T) {
			cases := []struct {
				err  error
				want error
			}{
				{fs.Rename("/nope", "/x"), ErrNotExist},
				{fs.Rename("/keel", "/keel/a/inside"), ErrInvalidName},
				{fs.Rename("/README.TXT", "/keel"), ErrExist},
				{fs.Remove("/nope/x"), ErrNotExist},
				{fs.WriteFile("/keel", strings.NewReader(""), 0), ErrIsDir},
				{fs.WriteFile("/no/such/dir/f", strings.NewReader(""), 0), ErrNotExist},
				{fs.WriteFile("/bad:name", strings.NewReader(""), 0), ErrInvalidName},
				{fs.WriteFile("/short", strings.NewReader("abc"), 10), io.ErrUnexpectedEOF},
				{fs.WriteFile("/huge", strings.NewReader(""), 63*MiB), ErrNoSpace},
				{fs.Mkdir("/README.TXT/x"), ErrNotDir},
			}
			for i, c := range cases {
				if !errors.Is(c.err, c.want) {
					t.Errorf("case %d: %v, want %v", i, c.err, c.want)
				}
			}
		}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.do(t)
			tr.verify(t, img, fs, s.name)
		})
	}

	// And everything reads back after reopening.
	re, err := Open(f, size, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr.verify(t, img, re, "reopened")
}

// An image made by mkfs.fat, edited by us, must stay clean.
func TestEditMkfsImage(t *testing.T) {
	for _, tc := range []struct {
		size int64
		args []string
	}{
		{64 * MiB, []string{"-F", "32", "-n", "MKFS", "-i", "12345678"}},
		{300 * MiB, []string{"-F", "32"}},
		{256 * MiB, []string{"-F", "32", "-s", "2", "-S", "1024"}},
		{512 * MiB, []string{"-F", "32", "-S", "4096"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			img := mkfsFAT(t, tc.size, tc.args...)
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fs, err := Open(f, tc.size, OpenOptions{Time: epoch})
			if err != nil {
				t.Fatal(err)
			}
			tr := espTree()
			tr.label = slices.Contains(tc.args, "-n")
			tr.write(t, fs)
			tr.verify(t, img, fs, "written")
			if err := fs.Rename("/keel/a/initrd", "/keel/a/vmlinuz"); err != nil {
				t.Fatal(err)
			}
			tr.files["/keel/a/vmlinuz"] = tr.files["/keel/a/initrd"]
			delete(tr.files, "/keel/a/initrd")
			if err := fs.Remove("/EFI/BOOT/BOOTX64.EFI"); err != nil {
				t.Fatal(err)
			}
			delete(tr.files, "/EFI/BOOT/BOOTX64.EFI")
			if err := fs.Sync(); err != nil {
				t.Fatal(err)
			}
			tr.verify(t, img, fs, "edited")
		})
	}
}

// A filesystem in a partition of a bigger disk image, through NewSection;
// mtools reads it at the offset.
func TestSection(t *testing.T) {
	const off, size = 1 * MiB, 64 * MiB
	img, f := newImage(t, off+size+MiB)
	fs, err := Format(NewSection(f, off, size), size, formatOpts())
	if err != nil {
		t.Fatal(err)
	}
	tr := espTree()
	tr.label = true
	tr.write(t, fs)
	got := mdirAll(t, fmt.Sprintf("%s@@%d", img, off))
	if want := len(tr.files) + len(tr.dirs); len(got) != want {
		t.Errorf("mdir at offset lists %d paths, want %d", len(got), want)
	}
	// fsck.fat has no offset option: check a copy of the partition.
	part := filepath.Join(t.TempDir(), "part.img")
	out, err := os.Create(part)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, io.NewSectionReader(f, off, size)); err != nil {
		t.Fatal(err)
	}
	out.Close()
	tr.verify(t, part, nil, "partition copy")
	// Writes past the section are refused, not spilled into the next partition.
	if _, err := NewSection(f, off, size).WriteAt([]byte{1}, size); err == nil {
		t.Error("write past the section end succeeded")
	}
}

// Format works on a plain io.WriterAt (no reading back needed to build).
func TestWriteOnly(t *testing.T) {
	const size = 64 * MiB
	img, f := newImage(t, size)
	fs, err := Format(struct{ io.WriterAt }{f}, size, formatOpts())
	if err != nil {
		t.Fatal(err)
	}
	tr := espTree()
	tr.label = true
	tr.write(t, fs)
	if err := fs.Rename("/keel/a/initrd", "/keel/a/initrd.old"); err != nil {
		t.Fatal(err)
	}
	tr.files["/keel/a/initrd.old"] = tr.files["/keel/a/initrd"]
	delete(tr.files, "/keel/a/initrd")
	if _, err := fs.ReadFile("/keel/a/vmlinuz"); !errors.Is(err, ErrWriteOnly) {
		t.Errorf("ReadFile on a write-only device: %v, want ErrWriteOnly", err)
	}
	tr.verify(t, img, nil, "write-only")
}

// The same operations give the same bytes.
func TestDeterministic(t *testing.T) {
	const size = 64 * MiB
	sum := func() [32]byte {
		_, f := newImage(t, size)
		fs, err := Format(f, size, formatOpts())
		if err != nil {
			t.Fatal(err)
		}
		espTree().write(t, fs)
		if err := fs.Rename("/loader/entries/keel-b+3-0.conf", "/loader/entries/keel-b.conf"); err != nil {
			t.Fatal(err)
		}
		if err := fs.Remove("/many/file-0100.txt"); err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
			t.Fatal(err)
		}
		return [32]byte(h.Sum(nil))
	}
	a, b := sum(), sum()
	if a != b {
		t.Fatalf("two runs differ: %x vs %x", a, b)
	}
	t.Logf("sha256 %x", a)
}

func TestOpenRejects(t *testing.T) {
	const size = 64 * MiB
	valid := func(t *testing.T) []byte {
		_, f := newImage(t, size)
		if _, err := Format(f, size, formatOpts()); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 512)
		if _, err := f.ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		edit func(b []byte)
		want string
	}{
		{"zeros", func(b []byte) { clear(b) }, "0x55AA"},
		{"no signature", func(b []byte) { b[511] = 0 }, "0x55AA"},
		{"bytes per sector", func(b []byte) { b[11], b[12] = 0x00, 0x03 }, "bytes per sector"},
		{"sectors per cluster", func(b []byte) { b[13] = 3 }, "sectors per cluster"},
		{"no FATs", func(b []byte) { b[16] = 0 }, "number of FATs"},
		{"FAT16", func(b []byte) { b[17] = 0x02 }, "not FAT32"},
		{"too big", func(b []byte) { b[35] = 0xFF }, "do not fit"},
		{"huge FAT", func(b []byte) { b[39] = 0x10 }, "fill the volume"},
		{"root cluster", func(b []byte) { b[44], b[45], b[46], b[47] = 0xFF, 0xFF, 0xFF, 0x0F }, "root cluster"},
		{"version", func(b []byte) { b[42] = 1 }, "version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := valid(t)
			tc.edit(b)
			dev := &memDev{data: b, size: size}
			_, err := Open(dev, size, OpenOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v, want an error about %q", err, tc.want)
			}
		})
	}
	if _, err := Open(&memDev{size: 100}, 100, OpenOptions{}); err == nil {
		t.Error("Open of 100 bytes succeeded")
	}
	t.Run("FAT16 by mkfs.fat", func(t *testing.T) {
		img := mkfsFAT(t, 64*MiB, "-F", "16")
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := Open(struct {
			io.ReaderAt
			io.WriterAt
		}{f, nil}, 64*MiB, OpenOptions{}); err == nil || !strings.Contains(err.Error(), "not FAT32") {
			t.Fatalf("Open FAT16: %v, want not FAT32", err)
		}
	})
}

// memDev is a sparse in-memory device of size bytes: sectors written, over
// data (the first bytes), over base (another memDev), over zeros.
type memDev struct {
	data []byte
	base *memDev
	size int64
	over map[int64][]byte
}

func (m *memDev) sector(sec int64) [512]byte {
	var s [512]byte
	if b, ok := m.over[sec]; ok {
		copy(s[:], b)
		return s
	}
	if m.base != nil {
		s = m.base.sector(sec)
	}
	if sec*512 < int64(len(m.data)) {
		copy(s[:], m.data[sec*512:])
	}
	return s
}

func (m *memDev) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		o := off + int64(n)
		if o < 0 || o >= m.size {
			return n, io.EOF
		}
		sec, in := o/512, int(o%512)
		s := m.sector(sec)
		n += copy(p[n:], s[in:min(512, int(m.size-sec*512))])
	}
	return n, nil
}

func (m *memDev) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > m.size {
		return 0, errors.New("write past end")
	}
	if m.over == nil {
		m.over = map[int64][]byte{}
	}
	for n := 0; n < len(p); {
		o := off + int64(n)
		sec, in := o/512, o%512
		s, ok := m.over[sec]
		if !ok {
			b := m.sector(sec)
			s = b[:]
			m.over[sec] = s
		}
		n += copy(s[in:], p[n:])
	}
	return len(p), nil
}
