package inspect

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"keel/image/build"
	"keel/profiles"
)

func TestInspectBuiltDisk(t *testing.T) {
	if _, err := os.Stat("/usr/lib/systemd/boot/efi/systemd-bootx64.efi"); err != nil {
		t.Skip("systemd-boot not installed: apt-get install systemd-boot-efi")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	prof := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(prof, []byte("name: insp\nversion: 1.2.3\nkernel: {file: vmlinuz}\ndisk: {esp: 34MiB, slot: 8MiB, data: 8MiB, squashfs: {compression: gzip}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := profiles.Load(prof)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "disk.img")
	res, err := build.Build(context.Background(), p, build.Options{Output: img, KeelInit: []byte("\x7fELF"), Keelctl: []byte("\x7fELF")})
	if err != nil {
		t.Fatal(err)
	}
	r, err := File(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Partitions) != 4 || r.Partitions[1].Label != "root-a" || r.Partitions[1].Start != res.Layout.Partitions[1].Start {
		t.Errorf("partitions: %+v", r.Partitions)
	}
	if len(r.Slots) != 2 || r.Slots[0].Filesystem != "squashfs" || r.Slots[0].Compression != "gzip" ||
		(r.Slots[0].Bytes+4095)/4096*4096 != res.RootBytes || r.Slots[1].Filesystem != "empty" {
		t.Errorf("slots: %+v", r.Slots)
	}
	if len(r.Entries) != 1 {
		t.Fatalf("entries: %+v", r.Entries)
	}
	e := r.Entries[0]
	if e.File != "keel-a.conf" || e.Slot != "a" || e.State != "good" || e.Generation != 1 || e.Title != "insp 1.2.3 (slot a)" || e.Linux != "/keel/a/vmlinuz" {
		t.Errorf("entry: %+v", e)
	}
}
