package gpt_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keel/image/gpt"
	"keel/image/powercut"
)

// growOpts are keel-init's: 4 KiB alignment, at least 1 MiB gained.
var growOpts = gpt.GrowOptions{Align: 8, MinGain: 2048}

const dataPart = 4 // keel's data partition: last on the disk

// bigger returns keel's disk image on a disk extra bytes larger.
func bigger(t *testing.T, extra int) ([]byte, []byte) {
	img, _ := newDisk(t)
	return img, append(bytes.Clone(img), make([]byte, extra)...)
}

func TestGrow(t *testing.T) {
	img, b := bigger(t, 16<<20)
	size := int64(len(b))
	last := uint64(size/512) - 1
	before, err := gpt.Read(bytes.NewReader(b), size)
	if err != nil {
		t.Fatal(err)
	}
	d := powercut.New(b)
	g, err := gpt.Grow(d, size, dataPart, growOpts)
	if err != nil {
		t.Fatal(err)
	}
	grown := d.After(powercut.Variant{}).Bytes()
	after, err := gpt.Read(bytes.NewReader(grown), size)
	if err != nil {
		t.Fatal(err)
	}
	if after.FromBackup || after.BackupErr != nil {
		t.Errorf("after Grow: from backup %v, backup error %v", after.FromBackup, after.BackupErr)
	}
	wantLast := (last-33)/8*8 - 1 // last usable + 1, rounded down to 4 KiB, - 1
	if !g.Written || g.Repaired || g.Partition.LastLBA != wantLast || g.OldLastLBA != before.Partitions[3].LastLBA {
		t.Errorf("Growth %+v, want written, last LBA %d (from %d)", g, wantLast, before.Partitions[3].LastLBA)
	}
	if after.LastUsableLBA != last-33 {
		t.Errorf("last usable LBA %d, want %d", after.LastUsableLBA, last-33)
	}
	for i, p := range before.Partitions {
		q := after.Partitions[i]
		if p.Number == dataPart {
			p.LastLBA = wantLast
		}
		if p != q {
			t.Errorf("partition %d: %+v, want %+v", p.Number, q, p)
		}
	}
	// The old backup header, now inside the data partition, is gone.
	if old := img[len(img)-512:]; !bytes.Equal(grown[len(img)-512:len(img)], make([]byte, 512)) || !bytes.HasPrefix(old, []byte("EFI PART")) {
		t.Error("the old backup header is still there")
	}
	// The protective MBR covers the disk.
	if got := uint64(grown[446+12]) | uint64(grown[446+13])<<8 | uint64(grown[446+14])<<16 | uint64(grown[446+15])<<24; got != last {
		t.Errorf("protective MBR covers %d sectors, want %d", got, last)
	}
	sgdiskVerify(t, grown)

	// Again: nothing to do.
	d2 := powercut.New(grown)
	g2, err := gpt.Grow(d2, size, dataPart, growOpts)
	if err != nil || g2.Written || d2.Writes() != 0 {
		t.Errorf("second Grow: %+v, %v, %d writes; want nothing written", g2, err, d2.Writes())
	}
}

func TestGrowNothingToDo(t *testing.T) {
	for _, c := range []struct {
		name  string
		extra int
		part  int
		err   error
	}{
		{"image size", 0, dataPart, nil},
		{"less than MinGain larger", 1 << 20, dataPart, nil}, // with MinGain 4 MiB
		{"not the last partition", 16 << 20, 1, gpt.ErrNotLast},
		{"no such partition", 16 << 20, 9, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, b := bigger(t, c.extra)
			d := powercut.New(b)
			o := growOpts
			if c.extra == 1<<20 {
				o.MinGain = 8192
			}
			g, err := gpt.Grow(d, int64(len(b)), c.part, o)
			switch {
			case c.part == 9:
				if err == nil || !strings.Contains(err.Error(), "no partition 9") {
					t.Errorf("err %v, want no partition 9", err)
				}
			case c.err != nil:
				if !errors.Is(err, c.err) {
					t.Errorf("err %v, want %v", err, c.err)
				}
			case err != nil || g.Written:
				t.Errorf("%+v, %v: want nothing written", g, err)
			}
			if d.Writes() != 0 {
				t.Errorf("%d writes, want none", d.Writes())
			}
		})
	}
}

// TestGrowCut cuts the power after every write of Grow, in every way a
// write-back cache can lose, reorder or tear sectors (powercut.Variants):
// a reader must always find an intact table with the data partition at its
// old or its new size and every other partition unchanged, and Grow run
// again on what is left must end with exactly the disk an uninterrupted
// Grow writes.
func TestGrowCut(t *testing.T) {
	_, b := bigger(t, 16<<20)
	size := int64(len(b))
	before, err := gpt.Read(bytes.NewReader(b), size)
	if err != nil {
		t.Fatal(err)
	}
	whole := powercut.New(bytes.Clone(b))
	if _, err := gpt.Grow(whole, size, dataPart, growOpts); err != nil {
		t.Fatal(err)
	}
	want := whole.After(powercut.Variant{}).Bytes()
	newLast := (uint64(size/512)-34)/8*8 - 1

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d, %d writes uninterrupted", seed, whole.Writes())
	cases := 0
	for cut := 0; cut <= whole.Writes(); cut++ {
		d := powercut.New(b)
		d.CutAfter(cut)
		_, err := gpt.Grow(d, size, dataPart, growOpts)
		if cut < whole.Writes() && !errors.Is(err, powercut.ErrCut) {
			t.Fatalf("cut after %d writes: Grow returned %v", cut, err)
		}
		for _, v := range d.Variants(rng, -1, 20) {
			cases++
			im := d.After(v)
			what := func() string { return fmt.Sprintf("cut after %d writes, %s", cut, v.Name) }
			tb, err := gpt.Read(im, size)
			if err != nil {
				t.Fatalf("%s: no table: %v", what(), err)
			}
			for i, p := range before.Partitions {
				q := tb.Partitions[i]
				if p.Number == dataPart && q.LastLBA == newLast {
					p.LastLBA = newLast
				}
				if p != q {
					t.Fatalf("%s: partition %d is %+v, want %+v (or grown to LBA %d)", what(), p.Number, q, p, newLast)
				}
			}
			again := powercut.New(im.Bytes())
			if _, err := gpt.Grow(again, size, dataPart, growOpts); err != nil {
				t.Fatalf("%s: Grow again: %v", what(), err)
			}
			if got := again.After(powercut.Variant{}).Bytes(); !bytes.Equal(got, want) {
				t.Fatalf("%s: Grow again left a disk unlike an uninterrupted Grow's (first difference at byte %d)", what(), firstDiff(got, want))
			}
		}
	}
	t.Logf("%d cut outcomes checked", cases)
}

// TestGrowRepairsPrimary: a damaged primary on a disk whose backup is at
// its end (what a cut inside step 2 leaves) is rewritten from the backup.
func TestGrowRepairsPrimary(t *testing.T) {
	img, _ := newDisk(t)
	b := bytes.Clone(img)
	b[1024+56] ^= 1 // the primary's entries
	d := powercut.New(b)
	g, err := gpt.Grow(d, int64(len(b)), dataPart, growOpts)
	if err != nil || !g.Repaired {
		t.Fatalf("Grow: %+v, %v; want Repaired", g, err)
	}
	if got := d.After(powercut.Variant{}).Bytes(); !bytes.Equal(got, img) {
		t.Errorf("repaired disk differs from the original at byte %d", firstDiff(got, img))
	}
}

// sgdiskVerify has the reference tool check a disk.
func sgdiskVerify(t *testing.T, b []byte) {
	t.Helper()
	name := filepath.Join(t.TempDir(), "grown.img")
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sgdisk", "-v", name).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
