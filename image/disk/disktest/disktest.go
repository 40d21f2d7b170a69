// Package disktest makes disk image files holding keel's partition table,
// for tests of what reads or changes one (the GPT reader, keel-init, keel
// run): the table as keel build writes it, without building an image.
package disktest

import (
	"os"
	"path/filepath"
	"testing"

	"keel/image/disk"
)

// GPT plans a disk of sizes s (GUIDs from seed) and writes its protective
// MBR and both GPTs into a sparse file under dir, name "NAME.img", the
// partitions left empty. It returns the file's path and the layout.
func GPT(t testing.TB, dir, name string, s disk.Sizes, seed string) (string, *disk.Layout) {
	t.Helper()
	l, err := disk.Plan(s, []byte(seed))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(l.Size); err != nil {
		t.Fatal(err)
	}
	if err := disk.WriteGPT(f, l); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, l
}
