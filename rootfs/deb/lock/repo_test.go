package lock_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keel/rootfs/deb/debtest"
	"keel/rootfs/deb/lock"
	"keel/rootfs/deb/repo"
	"keel/rootfs/deb/repotest"
)

// TestLockedBuild is the lock's life against a real (test) repository: an
// index is opened and locked; a build from the lock fetches exactly its
// packages, from the mirror and then with the mirror gone, and from
// another mirror of the same repository (a lock names none).
func TestLockedBuild(t *testing.T) {
	r := repotest.New(t, repotest.Options{Debs: []debtest.Deb{
		{Control: [][2]string{{"Package", "hello"}, {"Version", "1:2.10-3"}}, Files: []debtest.File{{Path: "./usr/bin/hello", Body: "hi"}}},
		{Control: [][2]string{{"Package", "busybox"}, {"Version", "1.35.0-4"}}},
		{Control: [][2]string{{"Package", "unwanted"}, {"Version", "1.0"}}},
	}})
	cache := t.TempDir()
	idx, err := repo.Open(t.Context(), repo.Config{Mirror: r.URL, Suite: r.Suite, Keyring: []string{r.Keyring}, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	var chosen = idx.Packages[:2] // what a resolver would pick: busybox, hello
	l := lock.New(lock.Debian{
		Suite: idx.Suite, Codename: idx.Codename, Architecture: idx.Architecture, Components: idx.Components,
		ReleaseDate: idx.Date, InReleaseSHA256: idx.InReleaseSHA256,
	}, []string{"hello", "busybox"}, chosen, nil)
	path := filepath.Join(t.TempDir(), "minimal.lock")
	if err := lock.Write(path, l); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), r.URL) || strings.Contains(string(b), "127.0.0.1") {
		t.Errorf("the lock names the mirror:\n%s", b)
	}

	read, err := lock.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := read.Drift([]string{"busybox", "hello"}); err != nil {
		t.Fatal(err)
	}
	fc := repo.FetchConfig{Mirror: r.URL, CacheDir: cache}
	paths, err := repo.Fetch(t.Context(), fc, read.Packages(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range read.Packages() {
		if got, _ := os.ReadFile(paths[i]); string(got) != string(r.Deb(p.Name)) {
			t.Errorf("%s: %s is not the published .deb", p.Name, paths[i])
		}
	}

	// The mirror gone: the cache alone.
	r.Close()
	fc.Offline = true
	again, err := repo.Fetch(t.Context(), fc, read.Packages(), nil)
	if err != nil || strings.Join(again, " ") != strings.Join(paths, " ") {
		t.Fatalf("offline: %q, %v", again, err)
	}

	// Another machine with another mirror of the same repository, here
	// the repository's files through file://.
	other := repo.FetchConfig{Mirror: "file://" + r.Dir, CacheDir: t.TempDir()}
	if _, err := repo.Fetch(t.Context(), other, read.Packages(), nil); err != nil {
		t.Fatal(err)
	}
}
