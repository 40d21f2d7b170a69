package squashfs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"keel/rootfs"
	"keel/rootfs/squashfs"
)

var errBoom = errors.New("boom: the source went away")

// TestWriteErrors checks that bad input fails with an error that names the
// path (and the attribute, for xattrs), and that WriteFile then leaves
// nothing behind: neither the image nor its temporary file.
func TestWriteErrors(t *testing.T) {
	long := strings.Repeat("x", 257)
	cases := []struct {
		name  string
		setup func(t *testing.T, tree *rootfs.Tree, cancel context.CancelFunc)
		opts  squashfs.Options
		want  []string // substrings of the error
		is    error    // errors.Is target, if any
	}{
		{
			name: "opener fails",
			setup: func(t *testing.T, tree *rootfs.Tree, _ context.CancelFunc) {
				add(t, tree, "/etc/broken", &rootfs.Entry{Type: rootfs.TypeFile, Mode: 0o644, Size: 10,
					Content: func() (io.ReadCloser, error) { return nil, errBoom }})
			},
			want: []string{"/etc/broken"},
			is:   errBoom,
		},
		{
			name: "read fails after a block",
			setup: func(t *testing.T, tree *rootfs.Tree, _ context.CancelFunc) {
				add(t, tree, "/etc/flaky", &rootfs.Entry{Type: rootfs.TypeFile, Mode: 0o644, Size: 300000,
					Content: func() (io.ReadCloser, error) {
						return io.NopCloser(io.MultiReader(bytes.NewReader(make([]byte, 200000)), errReader{errBoom})), nil
					}})
			},
			want: []string{"/etc/flaky"},
			is:   errBoom,
		},
		{
			name: "content shorter than Size",
			setup: func(t *testing.T, tree *rootfs.Tree, _ context.CancelFunc) {
				add(t, tree, "/etc/short", sized(100, 50))
			},
			want: []string{"/etc/short"},
		},
		{
			name: "content longer than Size",
			setup: func(t *testing.T, tree *rootfs.Tree, _ context.CancelFunc) {
				add(t, tree, "/etc/long", sized(50, 100))
			},
			want: []string{"/etc/long"},
		},
		{
			name: "multi-block content shorter than Size",
			setup: func(t *testing.T, tree *rootfs.Tree, _ context.CancelFunc) {
				add(t, tree, "/etc/short-big", sized(3<<17, 2<<17+5))
			},
			want: []string{"/etc/short-big"},
		},
		{
			name: "multi-block content longer than Size",
			setup: func(t *testing.T, tree *rootfs.Tree, _ context.CancelFunc) {
				add(t, tree, "/etc/long-big", sized(2<<17, 2<<17+1))
			},
			want: []string{"/etc/long-big"},
		},
		{
			name: "block-sized duplicates, one longer than Size",
			setup: func(t *testing.T, tree *rootfs.Tree, _ context.CancelFunc) {
				// Same size: the writer hashes both to look for duplicates.
				add(t, tree, "/etc/a", sized(1<<17, 1<<17))
				add(t, tree, "/etc/b", sized(1<<17, 1<<17+1))
			},
			want: []string{"/etc/b"},
		},
		{
			name: "name longer than 256 bytes",
			setup: func(t *testing.T, tree *rootfs.Tree, _ context.CancelFunc) {
				add(t, tree, "/etc/"+long, &rootfs.Entry{Type: rootfs.TypeFifo, Mode: 0o644})
			},
			want: []string{"/etc/" + long},
		},
		{
			name: "xattr with system. prefix",
			setup: func(t *testing.T, tree *rootfs.Tree, _ context.CancelFunc) {
				add(t, tree, "/etc/acl", &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755,
					Xattrs: map[string][]byte{"user.ok": []byte("1"), "system.foo": []byte("x")}})
			},
			want: []string{"/etc/acl", "system.foo"},
		},
		{
			name: "xattr with os2. prefix",
			setup: func(t *testing.T, tree *rootfs.Tree, _ context.CancelFunc) {
				add(t, tree, "/etc/os2", &rootfs.Entry{Type: rootfs.TypeFifo, Mode: 0o644,
					Xattrs: map[string][]byte{"os2.x": []byte("x")}})
			},
			want: []string{"/etc/os2", "os2.x"},
		},
		{
			name: "xattr without a prefix",
			setup: func(t *testing.T, tree *rootfs.Tree, _ context.CancelFunc) {
				add(t, tree, "/etc/bare", &rootfs.Entry{Type: rootfs.TypeFifo, Mode: 0o644,
					Xattrs: map[string][]byte{"bare": []byte("x")}})
			},
			want: []string{"/etc/bare", "bare"},
		},
		{
			name: "context cancelled before writing",
			setup: func(t *testing.T, tree *rootfs.Tree, cancel context.CancelFunc) {
				add(t, tree, "/etc/file", rootfs.NewFile(0o644, []byte("content")))
				cancel()
			},
			is: context.Canceled,
		},
		{
			name: "context cancelled while reading content",
			setup: func(t *testing.T, tree *rootfs.Tree, cancel context.CancelFunc) {
				for i := range 20 {
					add(t, tree, "/etc/file"+string(rune('a'+i)), &rootfs.Entry{Type: rootfs.TypeFile, Mode: 0o644, Size: 1 << 20,
						Content: func() (io.ReadCloser, error) {
							if i == 3 {
								cancel()
							}
							return io.NopCloser(bytes.NewReader(bytes.Repeat([]byte{byte(i)}, 1<<20))), nil
						}})
				}
			},
			is: context.Canceled,
		},
		{
			name: "unknown compressor",
			opts: squashfs.Options{Compression: "lzo"},
			want: []string{"lzo"},
		},
		{
			name: "block size not a power of two",
			opts: squashfs.Options{BlockSize: 100000},
			want: []string{"100000"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tree := rootfs.New()
			add(t, tree, "/etc", &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755})
			if tc.setup != nil {
				tc.setup(t, tree, cancel)
			}
			dir := t.TempDir()
			_, err := squashfs.WriteFile(ctx, filepath.Join(dir, "root.sqfs"), tree, tc.opts)
			if err == nil {
				t.Fatal("WriteFile succeeded")
			}
			t.Logf("error: %s", head(err.Error(), 400))
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q does not wrap %q", err, tc.is)
			}
			left, rerr := os.ReadDir(dir)
			if rerr != nil {
				t.Fatal(rerr)
			}
			for _, e := range left {
				t.Errorf("WriteFile failed but left %s behind", e.Name())
			}
		})
	}
}

func add(t *testing.T, tree *rootfs.Tree, p string, e *rootfs.Entry) {
	t.Helper()
	if err := tree.Add(p, e); err != nil {
		t.Fatal(err)
	}
}

// sized is a file that declares size bytes and holds n.
func sized(size, n int) *rootfs.Entry {
	return &rootfs.Entry{Type: rootfs.TypeFile, Mode: 0o644, Size: int64(size), Content: rootfs.Bytes(bytes.Repeat([]byte("k"), n))}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestWriterAtFails makes the destination fail at various points: the error
// must come back, wrapped, and Write must not hang with its pipeline half
// torn down.
func TestWriterAtFails(t *testing.T) {
	tree := buildFixture(t, smallFixture)
	var m memImage
	st, err := squashfs.Write(context.Background(), &m, tree, squashfs.Options{})
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	before := runtime.NumGoroutine()
	defer checkNoLeak(t, before)
	for _, at := range []int64{0, 96, 1 << 20, st.Bytes / 2, st.Bytes - 4096, st.Bytes - 1} {
		t.Run(fmt.Sprint(at), func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := squashfs.Write(context.Background(), &failingWriterAt{at: at}, tree, squashfs.Options{Workers: 2})
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, errBoom) {
					t.Errorf("Write to a destination failing at byte %d: %v, want an error wrapping %q", at, err, errBoom)
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("Write to a destination failing at byte %d has not returned after 60 s", at)
			}
		})
	}
}

// checkNoLeak waits a little for goroutines to wind down to n, then reports
// those left: a library that leaks on every failed write hurts a long-running
// updater.
func checkNoLeak(t *testing.T, n int) {
	t.Helper()
	for range 50 {
		if runtime.NumGoroutine() <= n {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	t.Errorf("%d goroutines left running after failed writes, %d before:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
}

// failingWriterAt fails every write that reaches byte at.
type failingWriterAt struct{ at int64 }

func (f *failingWriterAt) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.at {
		return 0, errBoom
	}
	return len(p), nil
}
