package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"keel/image/ext4"
	"keel/image/fat"
)

const mib = 1 << 20

func TestPlan(t *testing.T) {
	tests := []struct {
		name    string
		sizes   Sizes
		size    int64
		wantErr string
	}{
		{"default fit", Sizes{ESP: 64 * mib, Slot: 128 * mib, Data: 32 * mib}, 354 * mib, ""},
		{"explicit total", Sizes{Total: 512 * mib, ESP: 64 * mib, Slot: 128 * mib, Data: 32 * mib}, 512 * mib, ""},
		{"total too small", Sizes{Total: 300 * mib, ESP: 64 * mib, Slot: 128 * mib, Data: 32 * mib}, 0, "too small"},
		{"zero slot", Sizes{ESP: 64 * mib, Data: 32 * mib}, 0, "disk.slot"},
		{"odd esp", Sizes{ESP: 64*mib + 1, Slot: 128 * mib, Data: 32 * mib}, 0, "disk.esp: 67108865 bytes is not a whole number of 512-byte sectors"},
		// Each partition starts on a MiB boundary: sizes just over a MiB
		// take a whole MiB more each than their sum.
		{"unaligned sizes", Sizes{ESP: 64001 * 1024, Slot: 100001 * 1024, Data: 64001 * 1024}, 324 * mib, ""},
		// The flat sum plus 2 MiB that profile validation used to allow.
		{"unaligned, total from their sum", Sizes{Total: (64001+2*100001+64001)*1024 + 2*mib, ESP: 64001 * 1024, Slot: 100001 * 1024, Data: 64001 * 1024}, 0,
			"disk.size: 337973248 bytes is too small: esp, two slots and data, each starting on a MiB boundary, and the two partition tables need at least 338707456 bytes, say 339738624 bytes"},
		{"smallest", Sizes{ESP: MinESP, Slot: sector, Data: MinData}, 45 * mib, ""},
		{"esp below FAT32", Sizes{ESP: 16 * mib, Slot: 128 * mib, Data: 32 * mib}, 0,
			"disk.esp: 16777216 bytes is too small: FAT32 (65525 clusters) needs at least 34089472 bytes"},
		{"esp beyond FAT32", Sizes{ESP: MaxESP + sector, Slot: 128 * mib, Data: 32 * mib}, 0, "disk.esp: 2199023255552 bytes is too large: FAT32 holds at most"},
		{"data below ext4", Sizes{ESP: 64 * mib, Slot: 128 * mib, Data: 4 * mib}, 0, "disk.data: 4194304 bytes is too small: ext4 with a journal needs at least 8388608 bytes"},
		{"huge slot", Sizes{ESP: 64 * mib, Slot: 1 << 62, Data: 32 * mib}, 0, "disk.slot: 4611686018427387904 bytes is too large"},
		{"total not whole sectors", Sizes{Total: 512*mib + 1, ESP: 64 * mib, Slot: 128 * mib, Data: 32 * mib}, 0, "disk.size: 536870913 bytes is not a whole number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Plan(tt.sizes, []byte("seed"))
			if tt.wantErr != "" {
				var se *SizeError
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &se) {
					t.Fatalf("err = %v, want a *SizeError with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.Size != tt.size {
				t.Errorf("size = %d MiB, want %d MiB", l.Size/mib, tt.size/mib)
			}
			prevEnd := int64(0)
			for _, p := range l.Partitions {
				if p.Start%mib != 0 || p.Start < prevEnd {
					t.Errorf("%s starts at %d (previous ends at %d)", p.Label, p.Start, prevEnd)
				}
				prevEnd = p.Start + p.Size
			}
			if prevEnd+gptReserve > l.Size {
				t.Errorf("partitions end at %d, no room for the backup GPT in %d", prevEnd, l.Size)
			}
		})
	}
}

func TestGUIDStable(t *testing.T) {
	a, b := GUID([]byte("x"), "disk"), GUID([]byte("x"), "disk")
	if a != b || a == GUID([]byte("y"), "disk") || a == GUID([]byte("x"), "root-a") {
		t.Fatalf("GUID not a stable function of its inputs: %s %s", a, b)
	}
	if a[14] != '4' {
		t.Errorf("GUID %s is not version 4 shaped", a)
	}
}

func TestWriteChecked(t *testing.T) {
	if _, err := exec.LookPath("sgdisk"); err != nil {
		t.Skip("sgdisk not installed: apt-get install gdisk")
	}
	dir := t.TempDir()
	l, err := Plan(Sizes{ESP: 34 * mib, Slot: 8 * mib, Data: 8 * mib}, []byte("test"))
	if err != nil {
		t.Fatal(err)
	}
	c := Contents{
		Layout: l,
		Root: func(_ context.Context, w ReadWriterAt) (int64, error) {
			_, err := w.WriteAt([]byte("root filesystem"), 0)
			return 15, err
		},
	}
	var sums [2][32]byte
	for i := range sums {
		out := filepath.Join(dir, "disk.img")
		if _, err := Write(context.Background(), out, c); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		sums[i] = sha256.Sum256(b)
		a, _ := l.Slot("a")
		if !bytes.HasPrefix(b[a.Start:], []byte("root filesystem")) {
			t.Error("slot a does not hold what Root wrote")
		}
		v, err := exec.Command("sgdisk", "-v", out).CombinedOutput()
		if err != nil || !strings.Contains(string(v), "No problems found") {
			t.Fatalf("sgdisk -v: %v\n%s", err, v)
		}
		p, err := exec.Command("sgdisk", "-p", out).CombinedOutput()
		if err != nil {
			t.Fatalf("sgdisk -p: %v\n%s", err, p)
		}
		for _, part := range l.Partitions {
			if !strings.Contains(string(p), part.Label) {
				t.Errorf("sgdisk -p does not list %s:\n%s", part.Label, p)
			}
		}
		info, err := exec.Command("sgdisk", "-i", "2", out).CombinedOutput()
		if err != nil || !strings.Contains(string(info), strings.ToUpper(TypeRootX8664)) || !strings.Contains(string(info), l.Partitions[1].GUID) {
			t.Errorf("sgdisk -i 2: type or GUID wrong: %v\n%s", err, info)
		}
	}
	if sums[0] != sums[1] {
		t.Error("two writes of the same layout differ")
	}
}

func TestWriteFailureLeavesOldFile(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(out, []byte("previous image"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Plan(Sizes{ESP: 34 * mib, Slot: 1 * mib, Data: 8 * mib}, []byte("t"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Write(context.Background(), out, Contents{Layout: l, Root: func(_ context.Context, w ReadWriterAt) (int64, error) {
		_, err := w.WriteAt(make([]byte, 2*mib), 0) // larger than the slot
		return 0, err
	}})
	if !errors.Is(err, ErrPartitionFull) {
		t.Fatalf("err = %v, want ErrPartitionFull", err)
	}
	b, _ := os.ReadFile(out)
	if string(b) != "previous image" {
		t.Error("failed write changed the existing image")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}

// TestLimitsMatchFormatters holds Plan's limits to what keel's FAT32 and
// ext4 formatters accept, so that a layout Plan accepts formats.
func TestLimitsMatchFormatters(t *testing.T) {
	formatFAT := func(size int64) error {
		_, err := fat.Format(discard{}, size, fat.FormatOptions{})
		return err
	}
	formatExt4 := func(size int64) error { return ext4.Format(discard{}, size, ext4.Options{}) }
	for _, c := range []struct {
		name   string
		format func(int64) error
		size   int64
		ok     bool
	}{
		{"FAT32 at MinESP", formatFAT, MinESP, true},
		{"FAT32 below MinESP", formatFAT, MinESP - sector, false},
		{"FAT32 above MaxESP", formatFAT, MaxESP + sector, false},
		{"ext4 at MinData", formatExt4, MinData, true},
		{"ext4 below MinData", formatExt4, MinData - sector, false},
		{"ext4 above MaxData", formatExt4, MaxData + sector, false},
	} {
		err := c.format(c.size)
		if (err == nil) != c.ok {
			t.Errorf("%s (%d bytes): err = %v, want ok = %v", c.name, c.size, err, c.ok)
		}
	}
}

type discard struct{}

func (discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// TestRootTypeByArch: both slots get the root type of the profile's
// architecture, and an architecture without one is refused.
func TestRootTypeByArch(t *testing.T) {
	for _, c := range []struct {
		arch, want, wantErr string
	}{
		{"", TypeRootX8664, ""},
		{"x86_64", TypeRootX8664, ""},
		{"aarch64", "B921B045-1DF0-41C3-AF44-4C6F280D3FAE", ""},
		{"riscv64", "", `no root partition type for architecture "riscv64"`},
	} {
		t.Run(c.arch, func(t *testing.T) {
			l, err := Plan(Sizes{ESP: 64 * mib, Slot: 8 * mib, Data: 32 * mib, Arch: c.arch}, []byte("seed"))
			if c.wantErr != "" {
				if err == nil || err.Error() != c.wantErr {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, slot := range []string{"a", "b"} {
				if p, _ := l.Slot(slot); p.Type != c.want {
					t.Errorf("slot %s type = %s, want %s", slot, p.Type, c.want)
				}
			}
			// As inspect reports it, in lower case.
			want := c.arch
			if want == "" {
				want = "x86_64"
			}
			if got := RootArch(strings.ToLower(c.want)); got != want {
				t.Errorf("RootArch(%s) = %q, want %q", c.want, got, want)
			}
		})
	}
}
