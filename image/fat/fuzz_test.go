package fat

import (
	"bytes"
	"path"
	"sync"
	"testing"
)

// fuzzSize is the device under test: big enough for a real FAT32.
const fuzzSize = 40 * MiB

// fuzzBase is a formatted volume with a few directories and files. A fuzz
// input changes some of its bytes (fuzzDev), so mutated geometry lands on
// real FAT and directory bytes.
var fuzzBase = sync.OnceValues(func() (*memDev, error) {
	dev := &memDev{size: fuzzSize}
	fs, err := Format(dev, fuzzSize, FormatOptions{Label: "FUZZ", VolumeID: 1})
	if err != nil {
		return nil, err
	}
	for _, p := range []string{"/a/b", "/c"} {
		if err := fs.Mkdir(p); err != nil {
			return nil, err
		}
	}
	for i, p := range []string{"/a/b/long file name.txt", "/c/D.TXT", "/e"} {
		if err := fs.WriteFile(p, bytes.NewReader(make([]byte, 3000*i)), int64(3000*i)); err != nil {
			return nil, err
		}
	}
	return dev, nil
})

// fuzzMeta is where FuzzOpen's patches land: the first MiB of the base
// volume holds its boot sectors, FSInfo, both FATs and the first
// directory clusters.
const fuzzMeta = 1 << 20

// fuzzDev is the base volume with an input's changes: p1 written over the
// first 64 KiB (boot sector, FSInfo, backup boot sector, start of the
// FAT), p2 anywhere in fuzzMeta, and zeroLen bytes zeroed at zeroOff.
func fuzzDev(base *memDev, off1 uint16, p1 []byte, off2 uint32, p2 []byte, zeroOff uint32, zeroLen uint16) *memDev {
	dev := &memDev{base: base, size: fuzzSize}
	dev.WriteAt(make([]byte, zeroLen), int64(zeroOff%fuzzMeta))
	dev.WriteAt(p1, int64(off1))
	dev.WriteAt(p2, int64(off2%fuzzMeta))
	return dev
}

// FuzzOpen feeds damaged volumes to Open and, when Open accepts them,
// walks the tree and edits it: errors are fine, panics and hangs are not.
// An input is changes to a real volume (fuzzDev) rather than its first
// bytes: the fuzzer minimises every input that finds new coverage, which
// on 512-byte and 20 KiB inputs, at up to 45 ms an execution, took all of
// a fresh run.
func FuzzOpen(f *testing.F) {
	none := []byte{}
	f.Add(uint16(0), none, uint32(0), none, uint32(0), uint16(0))                                         // the formatted volume
	f.Add(uint16(0), none, uint32(0), none, uint32(0), uint16(512))                                       // a zero boot sector
	f.Add(uint16(510), []byte{0x55, 0xaa}, uint32(0), none, uint32(0), uint16(510))                       // only a signature
	f.Add(uint16(0), none, uint32(0), none, uint32(512), uint16(20<<10))                                  // the FAT says the root cluster is free
	f.Add(uint16(13), []byte{0}, uint32(0x20), []byte{0xff, 0xff, 0xff, 0xff}, uint32(0), uint16(0))      // no sectors per cluster; a huge sector count
	f.Add(uint16(512+488), []byte{0, 0, 0, 0}, uint32(16384+8), []byte{2, 0, 0, 0}, uint32(0), uint16(0)) // FSInfo's free count; the root cluster chained to itself
	base, err := fuzzBase()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, off1 uint16, p1 []byte, off2 uint32, p2 []byte, zeroOff uint32, zeroLen uint16) {
		dev := fuzzDev(base, off1, p1, off2, p2, zeroOff, zeroLen)
		fs, err := Open(dev, fuzzSize, OpenOptions{})
		if err != nil {
			return
		}
		budget := 200
		walkAll(fs, "/", &budget)
		_ = fs.Mkdir("/new/dir")
		_ = fs.WriteFile("/new/dir/file.txt", bytes.NewReader([]byte("hello")), 5)
		_ = fs.Rename("/new/dir/file.txt", "/renamed.txt")
		_ = fs.Rename("/a", "/c/a")
		_ = fs.Remove("/renamed.txt")
		_ = fs.Remove("/e")
	})
}

// walkAll reads up to *budget entries: a corrupt image can make a
// directory its own child, and the walk must stay small.
func walkAll(fs *FS, dir string, budget *int) {
	ents, err := fs.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if *budget--; *budget < 0 {
			return
		}
		p := path.Join(dir, e.Name)
		if e.IsDir {
			walkAll(fs, p, budget)
		} else {
			_, _ = fs.ReadFile(p)
		}
	}
}
