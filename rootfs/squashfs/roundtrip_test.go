package squashfs_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"keel/rootfs"
	"keel/rootfs/squashfs"
)

// realReaderCases are the images the real readers check. gzip and xz get
// the fixture with less content: their pure-Go encoders are far slower than
// zstd's, and the shapes, not the bytes, are what is being tested.
var realReaderCases = []struct {
	name    string
	fixture fixtureConfig
	opts    squashfs.Options
}{
	{"zstd", fullFixture, squashfs.Options{Compression: squashfs.Zstd}},
	{"gzip", smallFixture, squashfs.Options{Compression: squashfs.Gzip, Level: 6}}, // 9, the default, in the fuzz seeds
	{"xz", smallFixture, squashfs.Options{Compression: squashfs.XZ}},
}

// TestRealReaders writes the fixture with each compressor and reads it back
// with unsquashfs (superblock, listing, extraction) and the kernel (mount).
func TestRealReaders(t *testing.T) {
	requireUnsquashfs(t)
	for _, tc := range realReaderCases {
		t.Run(tc.name, func(t *testing.T) {
			tree := buildFixture(t, tc.fixture)
			opts := tc.opts
			opts.ModTime = 1700000000
			opts.Workers = 2
			progress := &progressLog{}
			opts.Progress = progress.record
			image := filepath.Join(t.TempDir(), "root.sqfs")
			start := time.Now()
			st, err := squashfs.WriteFile(context.Background(), image, tree, opts)
			if err != nil {
				t.Fatalf("WriteFile: %v", err)
			}
			t.Logf("%d inodes, %d content bytes → %d bytes in %v; %d duplicates, %d fragments",
				st.Inodes, st.ContentBytes, st.Bytes, time.Since(start).Round(time.Millisecond), st.Duplicates, st.Fragments)
			block := opts.BlockSize
			if block == 0 {
				block = squashfs.DefaultBlockSize
			}
			want := expectations(t, tree, block)

			t.Run("stats", func(t *testing.T) { progress.check(t, st) })
			t.Run("superblock", func(t *testing.T) { checkSuperblock(t, image, want, opts, st) })
			t.Run("listing", func(t *testing.T) { checkListing(t, image, want) })
			t.Run("extract", func(t *testing.T) {
				requireRoot(t, "extracting")
				compareFS(t, extract(t, image), want, fsCheck{holes: true, blockSize: block})
			})
			t.Run("mount", func(t *testing.T) {
				mnt := mountImage(t, image, opts.Compression)
				compareFS(t, mnt, want, fsCheck{})
				if !opts.NoExport {
					checkExportTable(t, image, mnt, want)
				}
			})
		})
	}
}

// progressLog records Progress calls, to check the documented contract: done
// never goes back, the total stays put, and the last call reports all the
// content. There is deliberately no mutex: the contract is one goroutine,
// and under -race a second one shows up as a data race.
type progressLog struct {
	calls       int
	done, total int64
	backwards   bool
}

func (p *progressLog) record(done, total int64) {
	p.backwards = p.backwards || done < p.done || (p.calls > 0 && total != p.total)
	p.calls++
	p.done, p.total = done, total
}

func (p *progressLog) check(t *testing.T, st *squashfs.Stats) {
	switch {
	case p.calls == 0:
		t.Errorf("Progress was never called")
	case p.backwards:
		t.Errorf("Progress went backwards or changed its total")
	case p.done != p.total || p.total != st.ContentBytes:
		t.Errorf("last Progress(%d, %d), want both = Stats.ContentBytes %d", p.done, p.total, st.ContentBytes)
	}
}

// TestManyInodes goes past what the fixture reaches: a directory entry
// stores its inode number as a signed 16-bit delta from its header's base, so
// hard links in one directory to inodes numbered more than 32767 apart need
// new headers; and a 34,000-entry directory has a listing longer than the
// basic inode's 16-bit size field.
func TestManyInodes(t *testing.T) {
	requireUnsquashfs(t)
	const n = 34000
	tree := rootfs.New()
	add(t, tree, "/a", &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755})
	add(t, tree, "/z", &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755})
	for i := range n {
		e := &rootfs.Entry{Type: rootfs.TypeFile, Mode: 0o644, UID: uint32(i % 3), Mtime: int64(i)}
		if i%1000 == 0 {
			e = rootfs.NewFile(0o600, []byte(fmt.Sprintf("file %d\n", i)))
		}
		add(t, tree, fmt.Sprintf("/a/%05d", i), e)
	}
	for i := range 200 {
		// Jump around the numbering: consecutive names, distant inodes.
		target := fmt.Sprintf("/a/%05d", (i*7919)%n)
		if err := tree.Link(fmt.Sprintf("/z/link%03d", i), target); err != nil {
			t.Fatal(err)
		}
	}
	opts := squashfs.Options{ModTime: 1}
	image := filepath.Join(t.TempDir(), "many.sqfs")
	st, err := squashfs.WriteFile(context.Background(), image, tree, opts)
	if err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	want := expectations(t, tree, squashfs.DefaultBlockSize)
	t.Run("superblock", func(t *testing.T) { checkSuperblock(t, image, want, opts, st) })
	t.Run("listing", func(t *testing.T) { checkListing(t, image, want) })
	t.Run("extract", func(t *testing.T) {
		requireRoot(t, "extracting")
		compareFS(t, extract(t, image), want, fsCheck{})
	})
	t.Run("mount", func(t *testing.T) {
		mnt := mountImage(t, image, squashfs.Zstd)
		compareFS(t, mnt, want, fsCheck{})
		checkExportTable(t, image, mnt, want)
	})
}

// TestXZBCJ writes x86-64 machine code (the start of this test binary) with
// the BCJ filter. The filter must pay for itself, and unsquashfs and the
// kernel, whose xz decoders have to undo it, must read the image back.
func TestXZBCJ(t *testing.T) {
	requireUnsquashfs(t)
	if runtime.GOARCH != "amd64" {
		t.Skipf("needs x86 machine code to filter; this test binary is %s", runtime.GOARCH)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	code, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	code = code[:min(len(code), 2<<20)]
	tree, _ := fuzzTree(reproSeed)
	add(t, tree, "/x86-code", rootfs.NewFile(0o755, code))

	dir := t.TempDir()
	plainOpts := squashfs.Options{Compression: squashfs.XZ, Workers: 2}
	plain, err := squashfs.WriteFile(context.Background(), filepath.Join(dir, "plain.sqfs"), tree, plainOpts)
	if err != nil {
		t.Fatalf("WriteFile without BCJ: %v", err)
	}
	opts := squashfs.Options{Compression: squashfs.XZ, XZBCJ: true, Workers: 2}
	image := filepath.Join(dir, "bcj.sqfs")
	st, err := squashfs.WriteFile(context.Background(), image, tree, opts)
	if err != nil {
		t.Fatalf("WriteFile with BCJ: %v", err)
	}
	t.Logf("%d bytes of x86 code: %d bytes plain, %d with BCJ", len(code), plain.Bytes, st.Bytes)
	if st.Bytes >= plain.Bytes {
		t.Errorf("the BCJ filter did not shrink x86 code: %d bytes with it, %d without", st.Bytes, plain.Bytes)
	}
	want := expectations(t, tree, squashfs.DefaultBlockSize)
	t.Run("superblock", func(t *testing.T) { checkSuperblock(t, image, want, opts, st) })
	t.Run("listing", func(t *testing.T) { checkListing(t, image, want) })
	t.Run("extract", func(t *testing.T) {
		requireRoot(t, "extracting")
		compareFS(t, extract(t, image), want, fsCheck{holes: true, blockSize: squashfs.DefaultBlockSize})
	})
	t.Run("mount", func(t *testing.T) {
		compareFS(t, mountImage(t, image, squashfs.XZ), want, fsCheck{})
	})
}
