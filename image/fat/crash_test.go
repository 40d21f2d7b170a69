package fat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var errCut = errors.New("power cut")

// cutDev lets the first n writes through and fails every later one, as if
// the process had stopped there.
type cutDev struct {
	ReaderWriterAt
	n, writes int
}

func (c *cutDev) WriteAt(p []byte, off int64) (int, error) {
	if c.writes++; c.writes > c.n {
		return 0, errCut
	}
	return c.ReaderWriterAt.WriteAt(p, off)
}

// What fsck.fat -n may say about an image cut in the middle of an
// operation: lost clusters, a stale FSInfo count, FAT copies that differ
// (the first one written is right). Nothing else: no cross-links, no bad
// directory entries, no wrong "..", no file larger than its chain.
var fsckTolerated = []*regexp.Regexp{
	fsckVersion,
	fsckSummary,
	regexp.MustCompile(`^Reclaimed \d+ unused clusters? \(\d+ bytes\)( in \d+ chains?)?\.$`),
	regexp.MustCompile(`^Free cluster summary wrong \(\d+ vs\. really \d+\)$`),
	regexp.MustCompile(`^\s*Auto-correcting\.$`),
	regexp.MustCompile(`^Leaving filesystem unchanged\.$`),
	regexp.MustCompile(`^FATs differ but appear to be intact\.$`),
	regexp.MustCompile(`^\s*Using first FAT\.$`),
	regexp.MustCompile(`^$`),
}

func fsckOnlyLeaks(t *testing.T, img, what string) {
	t.Helper()
	out, _ := exec.Command("fsck.fat", "-n", img).CombinedOutput()
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		ok := false
		for _, re := range fsckTolerated {
			if re.MatchString(l) {
				ok = true
				break
			}
		}
		if !ok {
			t.Errorf("%s: fsck.fat -n: %q is more than a leak\n%s", what, l, out)
			return
		}
	}
}

// TestCrashOrder cuts each operation after every possible number of writes
// and checks that what is left is a valid filesystem with at most leaked
// clusters, and that a replaced file is always there, old or new.
func TestCrashOrder(t *testing.T) {
	needTool(t, "fsck.fat", "dosfstools")
	needTool(t, "mcopy", "mtools")
	const size = 40 * MiB
	dir := t.TempDir()
	base := filepath.Join(dir, "base.img")
	f, err := os.Create(base)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	fs, err := Format(f, size, formatOpts())
	if err != nil {
		t.Fatal(err)
	}
	tr := newTree()
	tr.label = true
	tr.addFile("/loader/entries/keel-a.conf", 300)
	tr.addFile("/loader/entries/keel-b+3.conf", 300)
	tr.addFile("/keel/a/vmlinuz", 5000)
	tr.addFile("/keel/b/vmlinuz", 7000)
	tr.addFile("/keel/b/vmlinuz.new", 9000)
	// 7 long names (2 slots each) + "." and "..": one more entry needs a
	// second cluster.
	for i := range 7 {
		tr.addFile(fmt.Sprintf("/full/entry-%d.conf", i), 10)
	}
	tr.addDir("/keel/c/sub")
	tr.write(t, fs)
	f.Close()
	tr.verify(t, base, nil, "base")

	newData := content("new", 6000)
	ops := []struct {
		name    string
		op      func(fs *FS) error
		replace string // a path that must exist after any cut, old or new
		alt     []byte // the new content of replace
		// from, to: a rename after which, at any cut, the old name or the
		// new one holds the file's content.
		from, to string
	}{
		{"write new file growing a directory", func(fs *FS) error {
			return fs.WriteFile("/full/another long name.conf", bytes.NewReader(newData), int64(len(newData)))
		}, "", nil, "", ""},
		{"replace content", func(fs *FS) error {
			return fs.WriteFile("/keel/a/vmlinuz", bytes.NewReader(newData), int64(len(newData)))
		}, "/keel/a/vmlinuz", newData, "", ""},
		{"rename over existing", func(fs *FS) error {
			return fs.Rename("/keel/b/vmlinuz.new", "/keel/b/vmlinuz")
		}, "/keel/b/vmlinuz", tr.files["/keel/b/vmlinuz.new"], "", ""},
		{"rename over existing across directories", func(fs *FS) error {
			return fs.Rename("/keel/b/vmlinuz.new", "/keel/a/vmlinuz")
		}, "/keel/a/vmlinuz", tr.files["/keel/b/vmlinuz.new"], "", ""},
		{"rename in place", func(fs *FS) error {
			return fs.Rename("/loader/entries/keel-b+3.conf", "/loader/entries/keel-b.conf")
		}, "", nil, "", ""},
		{"rename to a longer name", func(fs *FS) error {
			return fs.Rename("/loader/entries/keel-a.conf", "/loader/entries/keel-a-with-a-much-longer-name.conf")
		}, "", nil, "/loader/entries/keel-a.conf", "/loader/entries/keel-a-with-a-much-longer-name.conf"},
		{"rename to a longer name beside free slots", func(fs *FS) error {
			return fs.Rename("/loader/entries/keel-b+3.conf", "/loader/entries/keel-b+0-0.conf")
		}, "", nil, "/loader/entries/keel-b+3.conf", "/loader/entries/keel-b+0-0.conf"},
		{"rename to a longer name in a full directory", func(fs *FS) error {
			return fs.Rename("/full/entry-3.conf", "/full/entry-3.conf.del")
		}, "", nil, "/full/entry-3.conf", "/full/entry-3.conf.del"},
		{"rename to a longer name, keeping the short name", func(fs *FS) error {
			return fs.Rename("/keel/b/vmlinuz", "/keel/b/vmlinuz-old-kernel")
		}, "", nil, "/keel/b/vmlinuz", "/keel/b/vmlinuz-old-kernel"},
		{"move a directory", func(fs *FS) error { return fs.Rename("/keel/c/sub", "/loader/sub") }, "", nil, "", ""},
		{"mkdir", func(fs *FS) error { return fs.Mkdir("/x/y/z") }, "", nil, "", ""},
		{"remove file", func(fs *FS) error { return fs.Remove("/keel/b/vmlinuz") }, "", nil, "", ""},
		{"remove directory", func(fs *FS) error { return fs.Remove("/keel/c/sub") }, "", nil, "", ""},
	}
	for _, o := range ops {
		t.Run(o.name, func(t *testing.T) {
			for n := 0; ; n++ {
				img := filepath.Join(t.TempDir(), "cut.img")
				if out, err := exec.Command("cp", "--sparse=always", base, img).CombinedOutput(); err != nil {
					t.Fatalf("cp: %v\n%s", err, out)
				}
				f, err := os.OpenFile(img, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				dev := &cutDev{ReaderWriterAt: f, n: n}
				fs, err := Open(dev, size, OpenOptions{Time: epoch})
				if err != nil {
					t.Fatal(err)
				}
				err = o.op(fs)
				f.Close()
				what := fmt.Sprintf("cut after %d writes", n)
				if err == nil {
					// Every write went through: the result must be clean.
					fsckClean(t, img)
					t.Logf("%d writes; every cut before leaves at most leaked clusters", n)
					return
				}
				if !errors.Is(err, errCut) {
					t.Fatalf("%s: %v", what, err)
				}
				fsckOnlyLeaks(t, img, what)
				if o.from != "" {
					old, nw := mcopyTry(img, o.from), mcopyTry(img, o.to)
					want := tr.files[o.from]
					if !bytes.Equal(old, want) && !bytes.Equal(nw, want) {
						t.Errorf("%s: neither %s (%d bytes) nor %s (%d bytes) holds the file", what, o.from, len(old), o.to, len(nw))
					}
				}
				if o.replace != "" {
					got := mcopyOut(t, img, o.replace)
					if !bytes.Equal(got, tr.files[o.replace]) && !bytes.Equal(got, o.alt) {
						t.Errorf("%s: %s is neither old nor new (%d bytes)", what, o.replace, len(got))
					}
				}
			}
		})
	}
}

// mcopyTry is mcopyOut for a file that may be absent: nil then.
func mcopyTry(img, path string) []byte {
	cmd := exec.Command("mcopy", "-n", "-i", img, "::"+path, "-")
	cmd.Env = mtoolsEnv()
	out, err := cmd.Output()
	if err != nil {
		return nil
	}
	return out
}

// After a failed metadata write the FS refuses further changes: its memory
// may no longer match the device.
func TestBrokenAfterFailedWrite(t *testing.T) {
	const size = 40 * MiB
	_, f := newImage(t, size)
	if _, err := Format(f, size, formatOpts()); err != nil {
		t.Fatal(err)
	}
	dev := &cutDev{ReaderWriterAt: f, n: 0}
	fs, err := Open(dev, size, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// An empty file has no data: the first write is its directory entry.
	if err := fs.WriteFile("/a", bytes.NewReader(nil), 0); !errors.Is(err, errCut) {
		t.Fatalf("WriteFile: %v, want the device's error", err)
	}
	dev.n = 1 << 30 // the device works again, the FS still refuses
	for _, err := range []error{
		fs.Mkdir("/d"),
		fs.WriteFile("/b", bytes.NewReader(nil), 0),
		fs.Rename("/a", "/c"),
		fs.Remove("/a"),
	} {
		if err == nil || !strings.Contains(err.Error(), "reopening") {
			t.Errorf("after a failed write: %v, want a refusal", err)
		}
	}
}
