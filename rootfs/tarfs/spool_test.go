package tarfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
