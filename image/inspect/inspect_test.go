package inspect

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keel/image/build"
	"keel/image/bundle"
	"keel/image/install"
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

// TestInspectUKI: a slot installed from a bundle of a unified kernel image
// shows its efi entry and, from its image.json, its root hash.
func TestInspectUKI(t *testing.T) {
	if _, err := os.Stat("/usr/lib/systemd/boot/efi/systemd-bootx64.efi"); err != nil {
		t.Skip("systemd-boot not installed: apt-get install systemd-boot-efi")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	prof := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(prof, []byte("name: insp\nversion: 1.2.3\nkernel: {file: vmlinuz}\ndisk: {esp: 34MiB, slot: 8MiB, data: 8MiB}\n"), 0o644); err != nil {
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
	// Slot a's rootfs and a stand-in image (nothing boots here), as a
	// signed bundle of 1.2.4.
	d, err := install.OpenFile(img, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	root := make([]byte, res.RootBytes)
	if _, err := d.File.ReadAt(root, res.RootOffset); err != nil {
		t.Fatal(err)
	}
	// What the data's hash tree would add after it, the superblock
	// first (rootfs/verity's layout).
	verity := &bundle.Verity{DataBlocks: uint64(len(root)+4095) / 4096, HashOffset: int64(len(root)+4095) / 4096 * 4096}
	root = append(root, make([]byte, verity.HashOffset-int64(len(root))+2*4096)...)
	uki := []byte("MZ unified kernel image")
	sum := sha256.Sum256(root)
	hash := hex.EncodeToString(sum[:])
	verity.RootHash = hash
	pub, key, err := bundle.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var bb bytes.Buffer
	m := bundle.Manifest{Name: "insp", Version: "1.2.4", Compatible: "insp", Arch: "x86_64",
		Verity: verity}
	srcs := []bundle.Source{
		{Name: bundle.Rootfs, Size: int64(len(root)), Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(root)), nil }},
		{Name: bundle.UKI, Size: int64(len(uki)), Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(uki)), nil }},
	}
	if err := bundle.Write(context.Background(), &bb, m, key, srcs); err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Open(&bb, []ed25519.PublicKey{pub})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := install.Install(context.Background(), d.Target, b, install.Options{}); err != nil {
		t.Fatal(err)
	}
	r, err := File(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Entries) != 2 {
		t.Fatalf("entries: %+v", r.Entries)
	}
	if e := r.Entries[0]; e.File != "keel-b+3.conf" || e.Slot != "b" || e.State != "trial" || e.EFI != "/keel/b/keel.efi" || e.Linux != "" || e.Options != "" {
		t.Errorf("slot b's entry: %+v", e)
	}
	if e := r.Entries[1]; e.EFI != "" || e.Linux != "/keel/a/vmlinuz" {
		t.Errorf("slot a's entry: %+v", e)
	}
	if len(r.Slots) != 2 || r.Slots[0].RootHash != "" || r.Slots[1].RootHash != hash || r.Slots[1].Filesystem != "squashfs" {
		t.Errorf("slots: %+v, want slot b's root hash %s", r.Slots, hash)
	}
	j, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"efi":"/keel/b/keel.efi"`, `"root_hash":"` + hash + `"`} {
		if !strings.Contains(string(j), want) {
			t.Errorf("JSON report does not contain %s", want)
		}
	}
}
