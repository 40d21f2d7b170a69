package tarfs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keel/rootfs"
	"keel/rootfs/tarfs/tarfstest"
)

// TestSpoolPut: contents are stored once under their hash; a file of the
// wrong size under a content's name (torn, cut) is replaced, not trusted.
func TestSpoolPut(t *testing.T) {
	s := newSpool(t)
	name, n, err := s.Put(strings.NewReader("hello"))
	if err != nil || n != 5 || filepath.Base(name) != tarfstest.SHA256([]byte("hello")) {
		t.Fatalf("Put: %s, %d, %v", name, n, err)
	}
	if again, _, err := s.Put(strings.NewReader("hello")); err != nil || again != name {
		t.Fatalf("again: %s, %v", again, err)
	}
	os.Chmod(name, 0o644)
	if err := os.WriteFile(name, []byte("he"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Put(strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(name); err != nil || string(b) != "hello" {
		t.Fatalf("after repair: %q, %v", b, err)
	}
	checkSpool(t, s.Dir())
	for _, id := range []string{"", "../x", strings.Repeat("A", 64), strings.Repeat("a", 63)} {
		if _, err := s.Path(id); err == nil {
			t.Errorf("Path(%q) accepted", id)
		}
	}
}

// TestSpoolDiscard: a tracked spool takes back what it added after a failed
// apply, and only that: contents it found there, and what other spools over
// the directory added, stay.
func TestSpoolDiscard(t *testing.T) {
	shared := newSpool(t)
	old, _, err := shared.Put(strings.NewReader("there before"))
	if err != nil {
		t.Fatal(err)
	}
	tr := shared.Tracked()
	err = Apply(context.Background(), rootfs.New(), bytes.NewReader(tarfstest.Tar(t,
		file("a", 0o644, "there before"),
		file("b", 0o644, "new content"),
		file("c", 0o644, strings.Repeat("x", 4096)),
		file("../evil", 0o644, "x"),
	)), Options{Name: "layer", Spool: tr})
	if !errors.Is(err, ErrUnsafe) {
		t.Fatalf("got %v", err)
	}
	other, _, err := shared.Put(strings.NewReader("another image's"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.created) != 2 {
		t.Fatalf("tracked %d contents, want 2", len(tr.created))
	}
	if err := tr.Discard(); err != nil {
		t.Fatal(err)
	}
	checkOnly(t, shared.Dir(), filepath.Base(old), filepath.Base(other))
	if err := tr.Discard(); err != nil {
		t.Fatalf("second Discard: %v", err)
	}
}
