// Package powercut models a disk behind a write-back cache, for crash
// tests: what a power cut can leave on a disk that was being written.
//
// A Disk holds, in memory, the bytes the disk held before (never changed),
// the sectors made durable by Sync, and every write since the last Sync.
// The process sees all of them, as it would through the page cache. After
// a cut (CutAfter, or simply stopping), After builds what the disk may
// hold when the power comes back: every sector written since the last Sync
// holds its content as of the last Sync, or as of any later write to it,
// or a torn mix (the first half of the sector from one of those, the rest
// from the one before). Sectors that were not written since the last Sync
// hold their durable content, which is what fsync promises and no more.
//
// The model is at the sector (512 bytes) because that is what a disk
// writes atomically; a page cache writes pages (8 sectors) back in any
// order and a disk can reorder them too, so any combination of sectors is
// possible. Tearing inside a sector models a device without atomic sector
// writes (the worst case; most SSDs do better).
package powercut

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
)

// SectorSize is the unit a disk writes atomically.
const SectorSize = 512

// ErrCut is returned by every write and Sync after the cut.
var ErrCut = errors.New("powercut: the power went")

// Disk is a disk image in memory behind a write-back cache.
type Disk struct {
	base    []byte
	durable map[int64][]byte // sector → content as of the last Sync
	// pending holds, per sector written since the last Sync, its content
	// after each write to it, oldest first.
	pending map[int64][][]byte
	order   []int64 // pending's sectors, in the order first written
	writes  []write // writes since the last Sync, for the in-order model
	nwrites int
	syncs   int
	limit   int // writes before the cut; -1: no cut
}

type write struct{ first, last int64 } // sectors

// New returns a disk holding base, with nothing written.
func New(base []byte) *Disk {
	return &Disk{base: base, durable: map[int64][]byte{}, pending: map[int64][][]byte{}, limit: -1}
}

// Size is the disk's size in bytes.
func (d *Disk) Size() int64 { return int64(len(d.base)) }

// CutAfter lets n more writes through (counted from New) and fails every
// later write and Sync with ErrCut.
func (d *Disk) CutAfter(n int) { d.limit = n }

// Writes is the number of writes that reached the cache.
func (d *Disk) Writes() int { return d.nwrites }

// Syncs is the number of Syncs that completed.
func (d *Disk) Syncs() int { return d.syncs }

// Cut reports whether the power went.
func (d *Disk) Cut() bool { return d.limit >= 0 && d.nwrites >= d.limit }

// ReadAt reads what the process sees: the last write to every sector.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) {
	return readSectors(p, off, d.Size(), func(s int64) []byte {
		if v := d.pending[s]; len(v) > 0 {
			return v[len(v)-1]
		}
		return d.durableSector(s)
	})
}

// WriteAt caches a write, or fails with ErrCut after the cut.
func (d *Disk) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > d.Size() {
		return 0, fmt.Errorf("powercut: write of %d bytes at %d outside the disk of %d", len(p), off, d.Size())
	}
	if d.Cut() {
		return 0, ErrCut
	}
	d.nwrites++
	if len(p) == 0 {
		return 0, nil
	}
	first, last := off/SectorSize, (off+int64(len(p))-1)/SectorSize
	for s := first; s <= last; s++ {
		cur := make([]byte, SectorSize)
		prev := d.pending[s]
		if len(prev) > 0 {
			copy(cur, prev[len(prev)-1])
		} else {
			copy(cur, d.durableSector(s))
			d.order = append(d.order, s)
		}
		lo := max(off, s*SectorSize)
		hi := min(off+int64(len(p)), (s+1)*SectorSize)
		copy(cur[lo-s*SectorSize:], p[lo-off:hi-off])
		d.pending[s] = append(prev, cur)
	}
	d.writes = append(d.writes, write{first, last})
	return len(p), nil
}

// Sync makes every cached write durable, or fails with ErrCut after the
// cut.
func (d *Disk) Sync() error {
	if d.Cut() {
		return ErrCut
	}
	for s, v := range d.pending {
		d.durable[s] = v[len(v)-1]
	}
	clear(d.pending)
	d.order, d.writes = nil, nil
	d.syncs++
	return nil
}

// Pending is the number of sectors written since the last Sync.
func (d *Disk) Pending() int { return len(d.order) }

// PendingWrites is the number of writes since the last Sync.
func (d *Disk) PendingWrites() int { return len(d.writes) }

func (d *Disk) durableSector(s int64) []byte {
	if b, ok := d.durable[s]; ok {
		return b
	}
	return d.base[s*SectorSize : (s+1)*SectorSize]
}

// Fate is what became of one sector written since the last Sync: the
// version it holds (0: as of the last Sync; k: after the k-th write to it
// since), torn or not. A torn sector holds the first half of version k and
// the rest of version k-1.
type Fate struct {
	Version int
	Torn    bool
}

// Variant is one outcome of a power cut: a fate for each pending sector
// (absent: the last version, as if every write had reached the disk).
type Variant struct {
	Name  string
	Fates map[int64]Fate
}

// After returns the disk as it may be after the power came back, for v.
// It is a view: it shares the Disk's memory, so the Disk must not be
// written while it is used.
func (d *Disk) After(v Variant) *Image {
	return &Image{d: d, fates: v.Fates, name: v.Name}
}

// Image is a disk after a power cut (see After).
type Image struct {
	d     *Disk
	fates map[int64]Fate
	name  string
}

// Name says which outcome this is.
func (im *Image) Name() string { return im.name }

// Size is the disk's size in bytes.
func (im *Image) Size() int64 { return im.d.Size() }

// ReadAt reads the disk after the cut.
func (im *Image) ReadAt(p []byte, off int64) (int, error) {
	return readSectors(p, off, im.d.Size(), im.sector)
}

func (im *Image) sector(s int64) []byte {
	v := im.d.pending[s]
	if len(v) == 0 {
		return im.d.durableSector(s)
	}
	f, ok := im.fates[s]
	if !ok {
		return v[len(v)-1]
	}
	version := func(k int) []byte {
		if k <= 0 {
			return im.d.durableSector(s)
		}
		return v[min(k, len(v))-1]
	}
	if !f.Torn || f.Version <= 0 {
		return version(f.Version)
	}
	out := make([]byte, SectorSize)
	copy(out, version(f.Version-1))
	copy(out[:SectorSize/2], version(f.Version)[:SectorSize/2])
	return out
}

// Bytes copies the whole disk after the cut, e.g. to write it to a file
// and boot it.
func (im *Image) Bytes() []byte {
	b := make([]byte, im.d.Size())
	im.ReadAt(b, 0)
	return b
}

func readSectors(p []byte, off, size int64, sector func(int64) []byte) (int, error) {
	if off < 0 || off >= size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off+int64(n) < size {
		pos := off + int64(n)
		s := pos / SectorSize
		n += copy(p[n:], sector(s)[pos-s*SectorSize:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Variants lists outcomes of a cut now, for the given sampling:
//
//   - "all written": every write reached the disk (a process that stopped,
//     with the page cache flushed after it);
//   - "none written": every write since the last Sync was lost;
//   - "in order to write k", for each pending write k: the disk wrote in
//     order and the power went during write k, whose first half of
//     sectors (or, for a one-sector write, first half sector) made it;
//   - "sector S lost" and "sector S torn", for single sectors (all of them
//     when single < 0, else that many picked at random);
//   - random outcomes: each pending sector, independently, at a random
//     version, torn one time in four.
//
// rng picks the sampled sectors and the random outcomes; print its seed.
func (d *Disk) Variants(rng *rand.Rand, single, random int) []Variant {
	out := []Variant{{Name: "all written"}}
	if len(d.order) == 0 {
		return out
	}
	none := map[int64]Fate{}
	for _, s := range d.order {
		none[s] = Fate{}
	}
	out = append(out, Variant{Name: "none written", Fates: none})

	// In order: replay the writes, counting versions per sector.
	for k := range d.writes {
		fates := map[int64]Fate{}
		for _, s := range d.order {
			fates[s] = Fate{}
		}
		for i := 0; i < k; i++ {
			for s := d.writes[i].first; s <= d.writes[i].last; s++ {
				fates[s] = Fate{Version: fates[s].Version + 1}
			}
		}
		w := d.writes[k]
		n := w.last - w.first + 1
		if n == 1 {
			fates[w.first] = Fate{Version: fates[w.first].Version + 1, Torn: true}
		} else {
			for s := w.first; s < w.first+n/2; s++ {
				fates[s] = Fate{Version: fates[s].Version + 1}
			}
		}
		out = append(out, Variant{Name: fmt.Sprintf("in order to write %d of %d", k+1, len(d.writes)), Fates: fates})
	}

	sectors := append([]int64(nil), d.order...)
	sort.Slice(sectors, func(i, j int) bool { return sectors[i] < sectors[j] })
	pick := sectors
	if single >= 0 && single < len(sectors) {
		pick = make([]int64, 0, single)
		for _, i := range rng.Perm(len(sectors))[:single] {
			pick = append(pick, sectors[i])
		}
		sort.Slice(pick, func(i, j int) bool { return pick[i] < pick[j] })
	}
	for _, s := range pick {
		last := len(d.pending[s])
		out = append(out,
			Variant{Name: fmt.Sprintf("sector %d lost", s), Fates: map[int64]Fate{s: {Version: 0}}},
			Variant{Name: fmt.Sprintf("sector %d torn", s), Fates: map[int64]Fate{s: {Version: last, Torn: true}}})
	}
	for i := 0; i < random; i++ {
		fates := map[int64]Fate{}
		for _, s := range sectors {
			fates[s] = Fate{Version: rng.IntN(len(d.pending[s]) + 1), Torn: rng.IntN(4) == 0}
		}
		out = append(out, Variant{Name: fmt.Sprintf("random %d", i+1), Fates: fates})
	}
	return out
}
