package debfile

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"keel/rootfs/deb/debtest"
	"keel/rootfs/tarfs"
	"keel/rootfs/tarfs/tarfstest"
)

// TestCacheRoundTrip: the tree and file list from the cache are those from
// the .deb, entry for entry, cold (unpacked now) and warm (read back), and
// so is the control part.
func TestCacheRoundTrip(t *testing.T) {
	for _, comp := range []string{"xz", "zst"} {
		t.Run(comp, func(t *testing.T) {
			d := hello(comp, comp)
			p := writeDeb(t, d)
			sum := tarfstest.SHA256(mustRead(t, p))
			f, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			direct := mergedTree(t)
			directAdded, err := f.Apply(context.Background(), direct, newSpool(t), keelOptions)
			if err != nil {
				t.Fatal(err)
			}
			want := tarfstest.Dump(t, direct)
			tarfstest.CheckTree(t, direct, helloTree)

			dir := t.TempDir()
			c, err := NewCache(dir, CacheOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, pass := range []string{"cold", "warm"} {
				u, err := c.Get(context.Background(), p, sum)
				if err != nil {
					t.Fatalf("%s: %v", pass, err)
				}
				if u.SHA256 != sum {
					t.Errorf("%s: sha256 %s", pass, u.SHA256)
				}
				if !reflect.DeepEqual(u.Control, f.Control) {
					t.Errorf("%s: control\n%+v\nwant\n%+v", pass, u.Control, f.Control)
				}
				checkHelloControl(t, u.Control, d)
				tree := mergedTree(t)
				added, err := u.Apply(context.Background(), tree, keelOptions)
				if err != nil {
					t.Fatalf("%s: %v", pass, err)
				}
				if got := tarfstest.Dump(t, tree); !reflect.DeepEqual(got, want) {
					t.Errorf("%s: tree from the cache:\n%s\nfrom the .deb:\n%s", pass, strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
				if !reflect.DeepEqual(added, directAdded) {
					t.Errorf("%s: added %v, want %v", pass, added, directAdded)
				}
			}
			tarfstest.CheckOnly(t, filepath.Join(dir, "unpacked"), sum)
			tarfstest.CheckSpool(t, filepath.Join(dir, "content"))
		})
	}
}

// TestCacheDamaged: a damaged entry, or content missing from the store, is
// unpacked again from the .deb (and said in the log), never trusted.
func TestCacheDamaged(t *testing.T) {
	p := writeDeb(t, hello("gz", "gz"))
	sum := tarfstest.SHA256(mustRead(t, p))
	contentOf := func(t *testing.T, dir string) string {
		// The content of /usr/bin/hello: "#!hello\n".
		return filepath.Join(dir, "content", tarfstest.SHA256([]byte("#!hello\n")))
	}
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
	}{
		{"byte flipped", func(t *testing.T, dir string) {
			e := filepath.Join(dir, "unpacked", sum)
			b := mustRead(t, e)
			b[len(b)-10] ^= 1
			write(t, e, b)
		}},
		{"truncated", func(t *testing.T, dir string) {
			e := filepath.Join(dir, "unpacked", sum)
			write(t, e, mustRead(t, e)[:100])
		}},
		{"empty", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "unpacked", sum), nil) }},
		{"another format", func(t *testing.T, dir string) {
			e := filepath.Join(dir, "unpacked", sum)
			write(t, e, bytes.Replace(mustRead(t, e), []byte("deb 1\n"), []byte("deb 9\n"), 1))
		}},
		{"another package's entry", func(t *testing.T, dir string) {
			other := writeDeb(t, debtest.Deb{Control: [][2]string{{"Package", "other"}, {"Version", "1"}}, Compression: "gz", ControlCompression: "gz"})
			c, err := NewCache(dir, CacheOptions{})
			if err != nil {
				t.Fatal(err)
			}
			osum := tarfstest.SHA256(mustRead(t, other))
			if _, err := c.Get(context.Background(), other, osum); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(dir, "unpacked", osum), filepath.Join(dir, "unpacked", sum)); err != nil {
				t.Fatal(err)
			}
		}},
		{"content missing", func(t *testing.T, dir string) {
			if err := os.Remove(contentOf(t, dir)); err != nil {
				t.Fatal(err)
			}
		}},
		{"content cut", func(t *testing.T, dir string) { write(t, contentOf(t, dir), []byte("#!")) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var logged bytes.Buffer
			c, err := NewCache(dir, CacheOptions{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Get(context.Background(), p, sum); err != nil {
				t.Fatal(err)
			}
			tt.damage(t, dir)
			u, err := c.Get(context.Background(), p, sum)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(logged.String(), "damaged entry") {
				t.Errorf("nothing logged: %q", logged.String())
			}
			t.Log(strings.TrimSpace(logged.String()))
			tree := mergedTree(t)
			if _, err := u.Apply(context.Background(), tree, keelOptions); err != nil {
				t.Fatal(err)
			}
			tarfstest.CheckTree(t, tree, helloTree)
			// Rebuilt: the next Get reads a good entry.
			logged.Reset()
			if _, err := c.Get(context.Background(), p, sum); err != nil || logged.Len() != 0 {
				t.Errorf("after the rebuild: %v, %q", err, logged.String())
			}
		})
	}
}

func write(t *testing.T, name string, b []byte) {
	t.Helper()
	os.Chmod(name, 0o644) // spool files are read-only
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCacheRefused(t *testing.T) {
	p := writeDeb(t, hello("gz", "gz"))
	sum := tarfstest.SHA256(mustRead(t, p))
	bomb := writeDeb(t, debtest.Deb{
		Control: [][2]string{{"Package", "bomb"}, {"Version", "1"}}, Compression: "zst", ControlCompression: "gz",
		Files: []debtest.File{{Path: "./zeros", Body: strings.Repeat("\x00", 1<<20)}},
	})
	tests := []struct {
		name, path, sum string
		limits          tarfs.Limits
		says            string
	}{
		{"wrong sha256", p, strings.Repeat("0", 64), tarfs.Limits{}, "sha256 " + sum + ", want 000"},
		{"not a digest", p, "../../etc", tarfs.Limits{}, "not a lowercase hex digest"},
		{"upper case digest", p, strings.ToUpper(sum), tarfs.Limits{}, "not a lowercase hex digest"},
		{"missing .deb", filepath.Join(t.TempDir(), "nope.deb"), sum, tarfs.Limits{}, "no such file"},
		{"bomb", bomb, tarfstest.SHA256(mustRead(t, bomb)), tarfs.Limits{MaxBytes: 1 << 19}, "package bomb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c, err := NewCache(dir, CacheOptions{Limits: tt.limits})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Get(context.Background(), tt.path, tt.sum)
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("error %v does not say %q", err, tt.says)
			}
			t.Log(err)
			tarfstest.CheckOnly(t, filepath.Join(dir, "unpacked"))
			tarfstest.CheckSpool(t, filepath.Join(dir, "content"))
		})
	}
}

// TestCacheParallel: processes (here goroutines with their own Cache) that
// unpack the same package at once all succeed and leave one entry.
func TestCacheParallel(t *testing.T) {
	p := writeDeb(t, hello("zst", "gz"))
	sum := tarfstest.SHA256(mustRead(t, p))
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := NewCache(dir, CacheOptions{})
			if err == nil {
				var u *Unpacked
				if u, err = c.Get(context.Background(), p, sum); err == nil {
					_, err = u.Apply(context.Background(), mergedTree(t), keelOptions)
				}
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	tarfstest.CheckOnly(t, filepath.Join(dir, "unpacked"), sum)
	tarfstest.CheckSpool(t, filepath.Join(dir, "content"))
}
