package disk

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestCopySparse(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	// Data at the start, in the middle and in a last partial MiB; zeros
	// written out between them.
	for _, at := range []int64{0, 9 << 20, 32<<20 + 5} {
		if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, 4096), at); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.WriteAt(make([]byte, 4<<20), 2<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dst := filepath.Join(dir, "dst.img")
	if err := CopySparse(src, dst); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(dst)
	if !bytes.Equal(a, b) {
		t.Fatalf("copy differs (%d vs %d bytes)", len(a), len(b))
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dst, &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > 4<<20 {
		t.Errorf("copy uses %d bytes on disk: the zeros were written", used)
	}
	if err := CopySparse(dir, filepath.Join(dir, "x")); err == nil {
		t.Errorf("copied a directory")
	}
}
