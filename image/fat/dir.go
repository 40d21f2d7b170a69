package fat

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"
)

const (
	dirEntrySize = 32
	maxDirSlots  = 65536 // FAT's limit on entries in one directory (2 MiB)

	attrReadOnly = 0x01
	attrHidden   = 0x02
	attrSystem   = 0x04
	attrVolumeID = 0x08
	attrDir      = 0x10
	attrArchive  = 0x20
	attrLFN      = attrReadOnly | attrHidden | attrSystem | attrVolumeID

	slotFree    = 0xE5 // deleted entry
	slotEnd     = 0x00 // this and every later slot are unused
	ntLowerBase = 0x08
)

// dir is a directory's contents, all its clusters concatenated.
type dir struct {
	first    uint32 // first cluster; the root's is the boot sector's root cluster
	clusters []uint32
	data     []byte
}

func (d *dir) slots() int { return len(d.data) / dirEntrySize }

func (d *dir) slot(i int) []byte { return d.data[i*dirEntrySize : (i+1)*dirEntrySize] }

// entry is one name in a directory: its short entry and, if any, the
// long-name entries in front of it.
type entry struct {
	name    string // long name if present, else the short name for display
	short   [11]byte
	attr    byte
	ntres   byte
	cluster uint32
	size    uint32
	wdate   uint16
	wtime   uint16
	start   int // first slot (first long-name entry, or the short entry)
	slot    int // the short entry's slot
}

func (e *entry) isDir() bool { return e.attr&attrDir != 0 }

func (e *entry) shortName() string { return shortDisplay(e.short, 0) }

// matches implements FAT's case-insensitive lookup, by long or short name.
func (e *entry) matches(name string) bool {
	return strings.EqualFold(e.name, name) || strings.EqualFold(e.shortName(), name)
}

// entries parses d. Long names are kept only when their sequence is complete
// and their checksum matches the short entry, as every FAT driver does, so
// orphaned long-name entries (left by a crash) are ignored, not trusted.
// "." and "..", volume labels and deleted entries are skipped.
func (d *dir) entries() []entry {
	var out []entry
	var units []uint16
	lfnStart, want, sum := -1, 0, byte(0)
	for i := 0; i < d.slots(); i++ {
		s := d.slot(i)
		switch {
		case s[0] == slotEnd:
			return out
		case s[0] == slotFree:
			lfnStart = -1
			continue
		case s[11]&0x3F == attrLFN:
			ord := int(s[0] & lfnOrderMask)
			if s[0]&lfnLastFlag != 0 {
				if ord == 0 {
					lfnStart = -1
					continue
				}
				lfnStart, want, sum = i, ord, s[13]
				units = make([]uint16, ord*lfnChars)
			} else if lfnStart < 0 || ord == 0 || ord != want || s[13] != sum {
				lfnStart = -1
				continue
			}
			copy(units[(ord-1)*lfnChars:], lfnUnits(s))
			want = ord - 1
			continue
		}
		var short [11]byte
		copy(short[:], s[:11])
		e := entry{
			short:   short,
			attr:    s[11],
			ntres:   s[12],
			cluster: uint32(binary.LittleEndian.Uint16(s[20:]))<<16 | uint32(binary.LittleEndian.Uint16(s[26:])),
			size:    binary.LittleEndian.Uint32(s[28:]),
			wtime:   binary.LittleEndian.Uint16(s[22:]),
			wdate:   binary.LittleEndian.Uint16(s[24:]),
			start:   i,
			slot:    i,
		}
		if lfnStart >= 0 && want == 0 && sum == lfnChecksum(short) {
			n := 0
			for n < len(units) && units[n] != 0 {
				n++
			}
			e.name = string(utf16.Decode(units[:n]))
			e.start = lfnStart
		} else {
			e.name = shortDisplay(short, e.ntres)
		}
		lfnStart = -1
		if e.attr&attrVolumeID != 0 || e.name == "." || e.name == ".." {
			continue
		}
		out = append(out, e)
	}
	return out
}

func (d *dir) lookup(name string) (entry, bool) {
	for _, e := range d.entries() {
		if e.matches(name) {
			return e, true
		}
	}
	return entry{}, false
}

// shortNames is the set of short names in use, except the entry at slot
// skip (the one a rename is about to replace), for picking a unique one.
func (d *dir) shortNames(skip int) map[[11]byte]bool {
	taken := map[[11]byte]bool{}
	for i := 0; i < d.slots(); i++ {
		s := d.slot(i)
		if s[0] == slotEnd {
			break
		}
		if s[0] == slotFree || s[11]&0x3F == attrLFN || i == skip {
			continue
		}
		var n [11]byte
		copy(n[:], s[:11])
		taken[n] = true
	}
	return taken
}

// loadDir returns the directory starting at cluster first, from the cache
// or the device.
func (fs *FS) loadDir(first uint32) (*dir, error) {
	if d, ok := fs.dirs[first]; ok {
		return d, nil
	}
	chain, err := fs.fat.chain(first)
	if err != nil {
		return nil, err
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: directory without clusters", ErrCorrupt)
	}
	if int64(len(chain))*fs.clusterSize > maxDirSlots*dirEntrySize {
		return nil, fmt.Errorf("%w: directory at cluster %d has %d clusters", ErrCorrupt, first, len(chain))
	}
	d := &dir{first: first, clusters: chain, data: make([]byte, int64(len(chain))*fs.clusterSize)}
	for i, c := range chain {
		if err := readFull(fs.dev, d.data[int64(i)*fs.clusterSize:int64(i+1)*fs.clusterSize], fs.clusterOffset(c)); err != nil {
			return nil, fmt.Errorf("read directory: %w", err)
		}
	}
	fs.dirs[first] = d
	return d, nil
}

// writeSlots writes slots [from, to) of d to the device in one WriteAt per
// cluster they touch.
func (fs *FS) writeSlots(d *dir, from, to int) error {
	perCluster := int(fs.clusterSize / dirEntrySize)
	for from < to {
		ci := from / perCluster
		end := min(to, (ci+1)*perCluster)
		off := fs.clusterOffset(d.clusters[ci]) + int64(from%perCluster)*dirEntrySize
		if _, err := fs.writeMeta(d.data[from*dirEntrySize:end*dirEntrySize], off); err != nil {
			return fmt.Errorf("write directory: %w", err)
		}
		from = end
	}
	return nil
}

// findSlots returns the first run of n unused slots, growing the directory
// by zeroed clusters when the free tail is too short. Growing writes the new
// cluster and links it in the FAT before any entry goes there.
func (fs *FS) findSlots(d *dir, n int) (int, error) {
	run, start := 0, 0
	end := -1
	for i := 0; i < d.slots(); i++ {
		c := d.slot(i)[0]
		if c == slotEnd {
			end = i
			break
		}
		if c != slotFree {
			run = 0
			continue
		}
		if run == 0 {
			start = i
		}
		if run++; run == n {
			return start, nil
		}
	}
	if end < 0 { // no end marker: the free run, if any, reaches the end
		end = d.slots()
		if run == 0 {
			start = end
		}
	} else if run == 0 || start+run != end {
		start = end
	}
	// Every slot from the end marker on is unused. A foreign directory may
	// hold stale bytes there, which would come to life once the end marker
	// moves past them: clear them.
	if tail := d.data[end*dirEntrySize:]; !allZero(tail) {
		clear(tail)
		if err := fs.writeSlots(d, end, d.slots()); err != nil {
			return 0, err
		}
	}
	if need := start + n - d.slots(); need > 0 {
		perCluster := int(fs.clusterSize / dirEntrySize)
		if err := fs.growDir(d, (need+perCluster-1)/perCluster); err != nil {
			return 0, err
		}
	}
	return start, nil
}

func (fs *FS) growDir(d *dir, k int) error {
	if int64(len(d.clusters)+k)*fs.clusterSize > maxDirSlots*dirEntrySize {
		return fmt.Errorf("%w: directory full (%d entries)", ErrNoSpace, maxDirSlots)
	}
	cs, err := fs.fat.alloc(k)
	if err != nil {
		return err
	}
	zero := make([]byte, fs.clusterSize)
	for _, c := range cs {
		if _, err := fs.dev.WriteAt(zero, fs.clusterOffset(c)); err != nil {
			fs.fat.release(cs)
			return fmt.Errorf("grow directory: %w", err)
		}
	}
	fs.fat.set(d.clusters[len(d.clusters)-1], cs[0])
	if err := fs.flushFAT(); err != nil {
		return err
	}
	d.clusters = append(d.clusters, cs...)
	d.data = append(d.data, make([]byte, int64(k)*fs.clusterSize)...)
	return nil
}

// nameSlots builds the slots for name: long-name entries (unless name is
// already an upper-case 8.3 name) followed by the short entry made by
// short(s).
func (fs *FS) nameSlots(d *dir, name string, skip int, short func([11]byte) [dirEntrySize]byte) ([][dirEntrySize]byte, error) {
	if s, ok := exactShortName(name); ok {
		if d.shortNames(skip)[s] {
			return nil, fmt.Errorf("%w: short name %q", ErrExist, name)
		}
		return [][dirEntrySize]byte{short(s)}, nil
	}
	s, err := makeShortName(name, d.shortNames(skip))
	if err != nil {
		return nil, err
	}
	return append(lfnEntries(name, s), short(s)), nil
}

// addEntry writes a new name into d: slots found (and the directory grown)
// first, then all its slots in one write.
func (fs *FS) addEntry(d *dir, name string, short func([11]byte) [dirEntrySize]byte) error {
	slots, err := fs.nameSlots(d, name, -1, short)
	if err != nil {
		return err
	}
	at, err := fs.findSlots(d, len(slots))
	if err != nil {
		return err
	}
	for i, s := range slots {
		copy(d.slot(at+i), s[:])
	}
	return fs.writeSlots(d, at, at+len(slots))
}

// deleteEntry marks all of e's slots deleted in one write.
func (fs *FS) deleteEntry(d *dir, e entry) error {
	for i := e.start; i <= e.slot; i++ {
		d.slot(i)[0] = slotFree
	}
	return fs.writeSlots(d, e.start, e.slot+1)
}

// newShortEntry is a short directory entry stamped with the FS time.
func (fs *FS) newShortEntry(name [11]byte, attr byte, cluster, size uint32) [dirEntrySize]byte {
	var e [dirEntrySize]byte
	copy(e[:11], name[:])
	e[11] = attr
	le := binary.LittleEndian
	e[13] = fs.stamp.tenth
	le.PutUint16(e[14:], fs.stamp.time)
	le.PutUint16(e[16:], fs.stamp.date)
	le.PutUint16(e[18:], fs.stamp.date)
	le.PutUint16(e[22:], fs.stamp.time)
	le.PutUint16(e[24:], fs.stamp.date)
	setCluster(e[:], cluster)
	le.PutUint32(e[28:], size)
	return e
}

func setCluster(e []byte, c uint32) {
	binary.LittleEndian.PutUint16(e[20:], uint16(c>>16))
	binary.LittleEndian.PutUint16(e[26:], uint16(c))
}

// dosTime is a timestamp in FAT's encoding.
type dosTime struct {
	date, time uint16
	tenth      uint8 // creation time's extra 10 ms units: 0..199
}

// toDOSTime encodes t, clamped to FAT's range 1980..2107; the zero time is
// FAT's epoch.
func toDOSTime(t time.Time) dosTime {
	lo := time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	hi := time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC)
	if t.IsZero() || t.Before(lo) {
		t = lo
	}
	if t.After(hi) {
		t = hi
	}
	return dosTime{
		date:  uint16((t.Year()-1980)<<9 | int(t.Month())<<5 | t.Day()),
		time:  uint16(t.Hour()<<11 | t.Minute()<<5 | t.Second()/2),
		tenth: uint8(t.Second()%2*100 + t.Nanosecond()/10_000_000),
	}
}

func fromDOSTime(date, tm uint16) time.Time {
	return time.Date(1980+int(date>>9), time.Month(date>>5&0x0F), int(date&0x1F),
		int(tm>>11), int(tm>>5&0x3F), int(tm&0x1F)*2, 0, time.UTC)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// renameWindow finds where a same-directory rename of e to a name of n
// slots can be written in one sector write: e's own slots and the free
// slots around them, all in the sector of e's short entry. It returns the
// first slot of the new name.
func (fs *FS) renameWindow(d *dir, e entry, n int) (int, bool) {
	per := fs.sectorSize / dirEntrySize
	first := e.slot / per * per
	if e.start < first {
		return 0, false // e's long-name slots start in an earlier sector
	}
	last := first + per - 1
	if last >= d.slots() {
		last = d.slots() - 1
	}
	lo := e.start
	for lo > first && d.slot(lo - 1)[0] == slotFree {
		lo--
	}
	hi := e.slot
	// Past the end marker every slot is unused, if the tail is clean
	// (findSlots clears a dirty one before using it).
	end := d.endMarker()
	for hi < last {
		c := d.slot(hi + 1)[0]
		if c != slotFree && !(c == slotEnd && end >= 0 && allZero(d.data[end*dirEntrySize:])) {
			break
		}
		hi++
	}
	if hi-lo+1 < n {
		return 0, false
	}
	return lo, true
}

// endMarker is the first slot whose first byte is 0 (the end of the
// directory's entries), or -1.
func (d *dir) endMarker() int {
	for i := 0; i < d.slots(); i++ {
		if d.slot(i)[0] == slotEnd {
			return i
		}
	}
	return -1
}

// replaceSlots writes slots at lo and marks e's slots that they do not
// cover deleted, in one write (renameWindow keeps it inside one sector).
func (fs *FS) replaceSlots(d *dir, e entry, lo int, slots [][dirEntrySize]byte) error {
	from, to := min(lo, e.start), max(lo+len(slots), e.slot+1)
	for i := e.start; i <= e.slot; i++ {
		d.slot(i)[0] = slotFree
	}
	for k, s := range slots {
		copy(d.slot(lo+k), s[:])
	}
	return fs.writeSlots(d, from, to)
}
