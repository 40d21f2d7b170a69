package gpt_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"keel/image/disk"
	"keel/image/disk/disktest"
	"keel/image/gpt"
)

// newDisk returns a disk image as keel build writes its GPT.
func newDisk(t testing.TB) ([]byte, *disk.Layout) {
	t.Helper()
	name, l := disktest.GPT(t, t.TempDir(), "disk", disk.Sizes{ESP: 34 << 20, Slot: 2 << 20, Data: 8 << 20}, "gpt test")
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b, l
}

func check(t *testing.T, tb *gpt.Table, l *disk.Layout) {
	t.Helper()
	if tb.DiskGUID != l.GUID {
		t.Errorf("disk GUID %s, want %s", tb.DiskGUID, l.GUID)
	}
	if len(tb.Partitions) != len(l.Partitions) {
		t.Fatalf("%d partitions, want %d", len(tb.Partitions), len(l.Partitions))
	}
	for i, p := range l.Partitions {
		g := tb.Partitions[i]
		if g.Number != p.Number || g.Name != p.Label || g.GUID != p.GUID || g.Type != p.Type || g.Offset() != p.Start || g.Size() != p.Size {
			t.Errorf("partition %d: %+v, want %+v", i+1, g, p)
		}
	}
}

func TestRead(t *testing.T) {
	img, l := newDisk(t)
	last := len(img) - gpt.SectorSize
	flip := func(off int) func([]byte) {
		return func(b []byte) { b[off] ^= 0x40 }
	}
	tests := []struct {
		name       string
		damage     func([]byte)
		fromBackup bool
		backupErr  string // in Table.BackupErr
		err        error
		errText    string
	}{
		{name: "intact"},
		{name: "primary header bit", damage: flip(512 + 60), fromBackup: true},
		{name: "primary header zeroed", damage: func(b []byte) { clear(b[512:1024]) }, fromBackup: true},
		{name: "primary entries bit", damage: flip(1024 + 56), fromBackup: true},
		{name: "backup header bit", damage: flip(last + 60), backupErr: "header CRC32"},
		{name: "backup entries bit", damage: flip(last - 32*512 + 20), backupErr: "partition entries' CRC32"},
		{name: "both headers", damage: func(b []byte) { b[512+60] ^= 1; b[last+60] ^= 1 }, err: gpt.ErrDamaged, errText: "header CRC32"},
		{name: "no GPT", damage: func(b []byte) { clear(b[512:1024]); clear(b[last:]) }, err: gpt.ErrNoGPT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bytes.Clone(img)
			if tt.damage != nil {
				tt.damage(b)
			}
			tb, err := gpt.Read(bytes.NewReader(b), int64(len(b)))
			if tt.err != nil {
				if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("err %v, want %v containing %q", err, tt.err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			check(t, tb, l)
			if tb.FromBackup != tt.fromBackup {
				t.Errorf("FromBackup %v, want %v (primary: %v)", tb.FromBackup, tt.fromBackup, tb.PrimaryErr)
			}
			if tt.backupErr == "" && tb.BackupErr != nil {
				t.Errorf("backup: %v", tb.BackupErr)
			}
			if tt.backupErr != "" && (tb.BackupErr == nil || !strings.Contains(tb.BackupErr.Error(), tt.backupErr)) {
				t.Errorf("backup error %v, want one containing %q", tb.BackupErr, tt.backupErr)
			}
		})
	}
}

// TestReadGrownDisk reads an image written to a larger disk: the backup is
// no longer at the last LBA, and the primary says where it is. With its
// entries damaged but its header intact the primary still points at the
// backup; with the header damaged nothing does (as for the kernel, which
// looks at the last LBA only), and Read says so.
func TestReadGrownDisk(t *testing.T) {
	img, l := newDisk(t)
	b := append(bytes.Clone(img), make([]byte, 4<<20)...)
	tb, err := gpt.Read(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	check(t, tb, l)
	b[1024+56] ^= 1
	tb, err = gpt.Read(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("damaged primary entries on a grown disk: %v", err)
	}
	if !tb.FromBackup {
		t.Error("not read from the backup")
	}
	check(t, tb, l)
	b[512+60] ^= 1
	if _, err := gpt.Read(bytes.NewReader(b), int64(len(b))); !errors.Is(err, gpt.ErrDamaged) {
		t.Errorf("damaged primary header on a grown disk: %v, want ErrDamaged", err)
	}
}

// TestSgdiskAgrees has sgdisk, the reference reader, check the disks the
// damage cases leave: where sgdisk finds a usable table, so does Read.
func TestSgdiskAgrees(t *testing.T) {
	if _, err := exec.LookPath("sgdisk"); err != nil {
		t.Fatal("sgdisk is not installed (apt-get install gdisk)")
	}
	img, l := newDisk(t)
	name := filepath.Join(t.TempDir(), "d.img")
	img[512+60] ^= 1 // primary header damaged
	if err := os.WriteFile(name, img, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sgdisk", "-p", name).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "root-a") {
		t.Fatalf("sgdisk -p: %v\n%s", err, out)
	}
	tb, err := gpt.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	check(t, tb, l)
}

// FuzzRead feeds Read damaged disks: it must never panic, and what it
// accepts must lie inside the disk. An input is two patches written over a
// small real disk and a cut of its end, rather than a whole disk: the
// fuzzer minimises every new input, which takes minutes on a 40 KiB one.
func FuzzRead(f *testing.F) {
	// A 40 KiB disk written by image/disk's GPT writer, with partitions of
	// two sectors: both tables are in it.
	l := &disk.Layout{Size: 80 * 512, GUID: disk.GUID([]byte("fuzz"), "disk")}
	for i, label := range []string{"esp", "root-a", "root-b", "data"} {
		l.Partitions = append(l.Partitions, disk.Partition{
			Number: i + 1, Label: label, Type: disk.TypeESP, GUID: disk.GUID([]byte("fuzz"), label),
			Start: int64(34+2*i) * 512, Size: 2 * 512,
		})
	}
	name := filepath.Join(f.TempDir(), "small.img")
	w, err := os.Create(name)
	if err != nil {
		f.Fatal(err)
	}
	if err := w.Truncate(l.Size); err != nil {
		f.Fatal(err)
	}
	if err := disk.WriteGPT(w, l); err != nil {
		f.Fatal(err)
	}
	w.Close()
	seed, err := os.ReadFile(name)
	if err != nil {
		f.Fatal(err)
	}
	last := uint16(len(seed) - 512)
	f.Add(uint16(0), []byte{}, uint16(0), []byte{}, uint16(0))
	f.Add(uint16(512+16), []byte{1, 2, 3, 4}, last+16, []byte{5}, uint16(0))               // both header CRCs
	f.Add(uint16(512+80), []byte{0xff, 0xff, 0, 0}, uint16(1024+32), []byte{9}, uint16(0)) // entry count, an LBA
	f.Add(uint16(512+72), []byte{0x10}, uint16(0), []byte{}, uint16(512))                  // array LBA, shorter disk
	f.Fuzz(func(t *testing.T, off1 uint16, p1 []byte, off2 uint16, p2 []byte, cut uint16) {
		b := bytes.Clone(seed)
		copy(b[int(off1)%len(b):], p1)
		copy(b[int(off2)%len(b):], p2)
		b = b[:len(b)-int(cut)%len(b)]
		tb, err := gpt.Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		for _, p := range tb.Partitions {
			if p.Offset() < 0 || p.Offset()+p.Size() > int64(len(b)) || p.Size() <= 0 {
				t.Fatalf("partition %d at %d+%d outside a %d-byte disk", p.Number, p.Offset(), p.Size(), len(b))
			}
		}
	})
}
