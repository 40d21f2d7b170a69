package powercut

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// TestOutcomes writes, syncs and writes again, then checks what each kind
// of outcome leaves: synced bytes always, unsynced ones old, new or torn.
func TestOutcomes(t *testing.T) {
	base := bytes.Repeat([]byte{'.'}, 4*SectorSize)
	d := New(base)
	d.WriteAt(bytes.Repeat([]byte{'s'}, SectorSize), 0) // synced
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	d.WriteAt(bytes.Repeat([]byte{'1'}, 2*SectorSize), SectorSize) // sectors 1, 2
	d.WriteAt([]byte("22"), 2*SectorSize)                          // sector 2 again
	d.CutAfter(3)
	if _, err := d.WriteAt([]byte("x"), 0); !errors.Is(err, ErrCut) {
		t.Fatalf("write after the cut: %v", err)
	}
	if err := d.Sync(); !errors.Is(err, ErrCut) {
		t.Fatalf("sync after the cut: %v", err)
	}
	if d.Pending() != 2 || d.PendingWrites() != 2 {
		t.Fatalf("pending %d sectors, %d writes", d.Pending(), d.PendingWrites())
	}
	sector := func(im *Image, s int64) string {
		b := make([]byte, SectorSize)
		im.ReadAt(b, s*SectorSize)
		return string(b[:2]) + string(b[SectorSize-1:])
	}
	tests := []struct {
		v    Variant
		want [4]string // first two bytes and last byte of each sector
	}{
		{Variant{Name: "all written"}, [4]string{"sss", "111", "221", "..."}},
		{Variant{Fates: map[int64]Fate{1: {}, 2: {}}}, [4]string{"sss", "...", "...", "..."}},
		{Variant{Fates: map[int64]Fate{2: {Version: 1}}}, [4]string{"sss", "111", "111", "..."}},
		{Variant{Fates: map[int64]Fate{1: {Version: 1, Torn: true}}}, [4]string{"sss", "11.", "221", "..."}},
		{Variant{Fates: map[int64]Fate{2: {Version: 2, Torn: true}}}, [4]string{"sss", "111", "221", "..."}},
	}
	for _, tt := range tests {
		im := d.After(tt.v)
		for s := range 4 {
			if got := sector(im, int64(s)); got != tt.want[s] {
				t.Errorf("%+v: sector %d is %q, want %q", tt.v.Fates, s, got, tt.want[s])
			}
		}
	}
	vs := d.Variants(rand.New(rand.NewPCG(1, 2)), -1, 3)
	// all, none, 2 in order, 2 sectors × (lost, torn), 3 random
	if len(vs) != 1+1+2+4+3 {
		t.Errorf("%d variants", len(vs))
	}
	// In order, cut in write 1: the first of its two sectors made it.
	if got := sector(d.After(vs[2]), 1) + sector(d.After(vs[2]), 2); got != "111..." {
		t.Errorf("in order to write 1: sectors 1 and 2 are %q", got)
	}
}
