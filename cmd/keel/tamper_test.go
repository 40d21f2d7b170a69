package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"keel/image/bootcheck"
	"keel/image/bundle"
	"keel/image/disk"
	"keel/image/fat"
	"keel/image/install"
)

// tamperRegion is a part of a bundle: its header, manifest, signature or
// one artifact.
type tamperRegion struct {
	name       string
	start, len int
	// code is the exit status a flipped bit there must give: 3 (refused,
	// nothing written) before the artifacts, 1 in them, where the damage
	// is found by the hash while the inactive slot is being written.
	code int
}

type tamperPos struct {
	region    int
	off       int
	bit       uint8
	regionIdx int // which of its region's positions
}

// bundleRegions cuts a bundle into its regions (image/bundle's format:
// magic, version, manifest and signature lengths, manifest, signature,
// then the artifacts in the manifest's order).
func bundleRegions(t *testing.T, b []byte) []tamperRegion {
	t.Helper()
	const header = 8 + 4 + 4 + 4
	mlen := int(binary.BigEndian.Uint32(b[12:]))
	slen := int(binary.BigEndian.Uint32(b[16:]))
	br, err := bundle.OpenUnverified(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	rs := []tamperRegion{{"header", 0, header, exitRefused}, {"manifest", header, mlen, exitRefused}, {"signature", header + mlen, slen, exitRefused}}
	off := header + mlen + slen
	for _, a := range br.Manifest.Artifacts {
		code := exitFailure
		if a.Name == bundle.Index { // read and checked before anything is written
			code = exitRefused
		}
		rs = append(rs, tamperRegion{a.Name, off, int(a.Size), code})
		off += int(a.Size)
	}
	if off != len(b) {
		t.Fatalf("regions end at %d, the bundle at %d", off, len(b))
	}
	return rs
}

// tamperPositions spreads n bit flips over the regions: an equal share
// each, a region with fewer bits than its share getting every bit and the
// others sharing the rest; within a region, the flipped bytes are evenly
// spaced from its first byte to its last, the bit going round 0 to 7.
func tamperPositions(rs []tamperRegion, n int) []tamperPos {
	share := make([]int, len(rs))
	open := map[int]bool{}
	for i := range rs {
		open[i] = true
	}
	left := n
	for changed := true; changed && len(open) > 0; {
		changed = false
		for i := range rs {
			if open[i] && 8*rs[i].len <= left/len(open) {
				share[i] = 8 * rs[i].len
				left -= share[i]
				delete(open, i)
				changed = true
			}
		}
	}
	k := 0
	for i := range rs {
		if open[i] {
			share[i] = left / len(open)
			if k < left%len(open) {
				share[i]++
			}
			k++
		}
	}
	var out []tamperPos
	for i, r := range rs {
		q := share[i]
		for j := range q {
			if q == 8*r.len {
				out = append(out, tamperPos{i, r.start + j/8, uint8(j % 8), j})
				continue
			}
			off := r.start
			if q > 1 {
				off += j * (r.len - 1) / (q - 1)
			}
			out = append(out, tamperPos{i, off, uint8(j % 8), j})
		}
	}
	return out
}

// memDisk is a disk image in memory, for reading its ESP.
type memDisk []byte

func (m memDisk) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m)) {
		return 0, io.EOF
	}
	return copy(p, m[off:]), nil
}

func (m memDisk) WriteAt([]byte, int64) (int, error) { return 0, fmt.Errorf("read-only") }

// espFiles reads every file of the ESP in a disk image: path → content.
func espFiles(t *testing.T, img []byte, esp disk.Partition) map[string]string {
	t.Helper()
	fs, err := fat.Open(fat.NewSection(memDisk(img), esp.Start, esp.Size), esp.Size, fat.OpenOptions{})
	if err != nil {
		t.Fatalf("ESP: %v", err)
	}
	files := map[string]string{}
	var walk func(dir string)
	walk = func(dir string) {
		es, err := fs.ReadDir(dir)
		if err != nil {
			t.Fatalf("ESP %s: %v", dir, err)
		}
		for _, e := range es {
			p := path.Join(dir, e.Name)
			if e.IsDir {
				files[p+"/"] = ""
				walk(p)
				continue
			}
			b, err := fs.ReadFile(p)
			if err != nil {
				t.Fatalf("ESP %s: %v", p, err)
			}
			files[p] = string(b)
		}
	}
	walk("/")
	return files
}

// fatChunk is a part of a FAT file system image at an offset.
type fatChunk struct {
	off int
	b   []byte
}

// fsckView is what fsck.fat -n reads of a FAT32 file system: the reserved
// sectors and the FATs, and the clusters in use, without their all-zero
// sectors. Free clusters are left out: fsck.fat reads none, and two ESPs
// that differ only there (a tampered kernel is written to the ESP before
// its hash is found wrong, and each flip leaves other bytes in the
// clusters it freed) get the same verdict.
func fsckView(t *testing.T, fs []byte) []fatChunk {
	t.Helper()
	le16 := func(o int) int { return int(binary.LittleEndian.Uint16(fs[o:])) }
	le32 := func(o int) int { return int(binary.LittleEndian.Uint32(fs[o:])) }
	if string(fs[82:90]) != "FAT32   " {
		t.Fatalf("the ESP is not FAT32")
	}
	bps, spc, reserved, fats, fatSize, total := le16(11), int(fs[13]), le16(14), int(fs[16]), le32(36), le32(32)
	dataStart := (reserved + fats*fatSize) * bps
	clusters := (total*bps - dataStart) / (spc * bps)
	out := []fatChunk{{0, fs[:dataStart]}}
	for c := 2; c < clusters+2; c++ {
		if le32(reserved*bps+4*c)&0x0fffffff == 0 {
			continue
		}
		for o := dataStart + (c-2)*spc*bps; o < dataStart+(c-1)*spc*bps; o += bps {
			if s := fs[o : o+bps]; !allZero(s) {
				out = append(out, fatChunk{o, s})
			}
		}
	}
	return out
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// viewHash identifies a fsckView.
func viewHash(seed maphash.Seed, v []fatChunk) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	for _, c := range v {
		binary.Write(&h, binary.LittleEndian, int64(c.off))
		h.Write(c.b)
	}
	return h.Sum64()
}

// fsckClean runs fsck.fat -n on a (sparse) copy of an ESP's fsckView and
// fails on any finding.
func fsckClean(t *testing.T, v []fatChunk, size int64, what string) {
	t.Helper()
	name := filepath.Join(t.TempDir(), "esp.img")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(name)
	err = f.Truncate(size)
	for _, c := range v {
		if err == nil {
			_, err = f.WriteAt(c.b, int64(c.off))
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("fsck.fat", "-n", name).CombinedOutput()
	if err != nil {
		t.Errorf("%s: fsck.fat -n: %v\n%s", what, err, out)
	}
}

// TestTamperMatrix flips one bit at a time at 1,000 positions spread over
// a real signed bundle (keel build of a small profile, v2) and installs
// each with keel update on a disk built from v1, in-process through the
// same code as the command. Every one must be refused: exit 3 with the
// disk file's bytes all unchanged when the flip is in the header,
// manifest, signature or index; exit 1 when it is in another artifact
// (found by its hash while the inactive slot is written). Either way the disk still
// boots slot a by systemd-boot's rules (image/bootcheck); slot a, the
// data partition, both GPTs and every ESP file outside the inactive
// slot's directory (the boot entries, the booted kernel and initrd, the
// loader) keep their bytes; the inactive slot's directory holds no
// leftover; and the ESP is fsck.fat clean. The ESP checks run for every
// ESP state the matrix leaves, except that one differing from a state
// already checked only in free clusters (which fsck.fat does not read) is
// not checked again. One disk copy serves every position: each run is
// compared with the pristine disk for what must never change, and with
// the disk before it for a refusal's "nothing written"; at the end the
// untampered bundle installs.
func TestTamperMatrix(t *testing.T) {
	if _, err := exec.LookPath("fsck.fat"); err != nil {
		t.Skip("fsck.fat not installed: apt-get install dosfstools")
	}
	dir, write := buildDir(t)
	// A kernel of some size, so its artifact is a region worth the name.
	kernel := make([]byte, 48<<10)
	rng := mrand.New(mrand.NewPCG(1, 2))
	for i := range kernel {
		kernel[i] = byte(rng.Uint32())
	}
	write("vmlinuz", kernel)
	pub, priv, err := bundle.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := bundle.WriteKeyPair(dir, "release", pub, priv); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, v := range []string{"1.0.0", "2.0.0"} {
		p := write(v+".yaml", fmt.Appendf(nil, "name: t\nversion: %s\nkernel: {file: vmlinuz}\nsources:\n  - {file: /etc/motd, content: \"%s\\n\"}\ndisk: {esp: 34MiB, slot: 4MiB, data: 16MiB}\n", v, v))
		out.Reset()
		if code := run(context.Background(), []string{"build", p, "-o", filepath.Join(dir, v+".img"), "--sign-key", filepath.Join(dir, "release.key")}, &out, &out); code != exitOK {
			t.Fatalf("build %s: exit %d\n%s", v, code, out.String())
		}
	}
	diskPath, bundlePath, pubPath := filepath.Join(dir, "1.0.0.img"), filepath.Join(dir, "t-2.0.0.keel"), filepath.Join(dir, "release.pub")
	good, err := os.ReadFile(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	pristine, err := os.ReadFile(diskPath)
	if err != nil {
		t.Fatal(err)
	}
	layout, err := install.ReadLayout(bytes.NewReader(pristine), int64(len(pristine)))
	if err != nil {
		t.Fatal(err)
	}
	part := func(label string) disk.Partition {
		p, ok := layout.Find(label)
		if !ok {
			t.Fatalf("no partition %s", label)
		}
		return p
	}
	esp, inactive := part(disk.LabelESP), part("root-b")
	// What must never change: everything but the ESP and the inactive
	// slot (the booted slot a, the data partition, both GPTs, the gaps).
	type span struct{ from, to int64 }
	var fixed []span
	at := int64(0)
	for _, p := range []disk.Partition{esp, inactive} {
		if p.Start < at {
			t.Fatal("partitions out of order")
		}
		fixed = append(fixed, span{at, p.Start})
		at = p.Start + p.Size
	}
	fixed = append(fixed, span{at, int64(len(pristine))})
	espOf := func(img []byte) []byte { return img[esp.Start : esp.Start+esp.Size] }
	slotOf := func(img []byte) []byte { return img[inactive.Start : inactive.Start+inactive.Size] }
	before := espFiles(t, pristine, esp)
	// Which slot systemd-boot boots, by its own rules (image/bootcheck):
	// v1's, from slot a, before and after every run that changed the ESP.
	v1f, err := os.Open(filepath.Join(dir, "t-1.0.0.keel"))
	if err != nil {
		t.Fatal(err)
	}
	v1, err := bundle.OpenUnverified(v1f)
	v1f.Close()
	if err != nil {
		t.Fatal(err)
	}
	boots := func(img []byte, what string) {
		t.Helper()
		p, err := bootcheck.Predict(bytes.NewReader(img), int64(len(img)), v1.Manifest)
		if err != nil || p.Slot != "a" || p.Version != "1.0.0" {
			t.Fatalf("%s: the disk boots %v (%v), want slot a, 1.0.0", what, p, err)
		}
	}
	boots(pristine, "the v1 disk")
	seed := maphash.MakeSeed()
	v := fsckView(t, espOf(pristine))
	fsckClean(t, v, esp.Size, "the v1 disk")

	rs := bundleRegions(t, good)
	pos := tamperPositions(rs, 1000)
	seen := map[[2]int]bool{}
	for _, p := range pos {
		k := [2]int{p.off, int(p.bit)}
		if seen[k] {
			t.Fatalf("position %d bit %d chosen twice", p.off, p.bit)
		}
		seen[k] = true
	}
	var sizes []string
	for i, r := range rs {
		n := 0
		for _, p := range pos {
			if p.region == i {
				n++
			}
		}
		sizes = append(sizes, fmt.Sprintf("%s %d bytes: %d flips", r.name, r.len, n))
	}
	t.Logf("bundle of %d bytes; %s", len(good), strings.Join(sizes, "; "))

	bf, err := os.OpenFile(bundlePath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	// The disk, mapped: each run is compared where it lies, without
	// reading 60 MiB into a buffer a thousand times.
	df, err := os.Open(diskPath)
	if err != nil {
		t.Fatal(err)
	}
	defer df.Close()
	cur, err := unix.Mmap(int(df.Fd()), 0, len(pristine), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(cur)
	prevESP, prevSlot := bytes.Clone(espOf(pristine)), bytes.Clone(slotOf(pristine))
	checked := map[uint64]bool{viewHash(seed, v): true}
	codes := map[string]map[int]int{} // region → exit code → count
	start := time.Now()
	var inInstall time.Duration
	for i, p := range pos {
		r := rs[p.region]
		flipped := []byte{good[p.off] ^ 1<<p.bit}
		if _, err := bf.WriteAt(flipped, int64(p.off)); err != nil {
			t.Fatal(err)
		}
		out.Reset()
		t0 := time.Now()
		code := run(context.Background(), []string{"update", diskPath, bundlePath, "--key", pubPath}, &out, &out)
		inInstall += time.Since(t0)
		if _, err := bf.WriteAt(good[p.off:p.off+1], int64(p.off)); err != nil {
			t.Fatal(err)
		}
		if codes[r.name] == nil {
			codes[r.name] = map[int]int{}
		}
		codes[r.name][code]++
		what := fmt.Sprintf("flip %d (%s byte %d bit %d)", i, r.name, p.off-r.start, p.bit)
		if code != r.code {
			t.Errorf("%s: exit %d, want %d\n%s", what, code, r.code, out.String())
		}
		for _, f := range fixed {
			if !bytes.Equal(cur[f.from:f.to], pristine[f.from:f.to]) {
				t.Fatalf("%s: bytes %d to %d changed (booted slot, data, GPT)", what, f.from, f.to)
			}
		}
		espChanged, slotChanged := !bytes.Equal(espOf(cur), prevESP), !bytes.Equal(slotOf(cur), prevSlot)
		if code == exitRefused && (espChanged || slotChanged) {
			t.Fatalf("%s: refused (exit 3), but the disk changed (ESP %v, slot b %v)", what, espChanged, slotChanged)
		}
		if slotChanged {
			copy(prevSlot, slotOf(cur))
		}
		if !espChanged {
			continue
		}
		copy(prevESP, espOf(cur))
		v := fsckView(t, prevESP)
		if h := viewHash(seed, v); !checked[h] {
			checked[h] = true
			after := espFiles(t, cur, esp)
			for f, c := range before {
				if !strings.HasPrefix(f, "/keel/b/") && after[f] != c {
					t.Fatalf("%s: ESP file %s changed or gone", what, f)
				}
			}
			for f := range after {
				if _, ok := before[f]; !ok && f != "/keel/b/" {
					t.Fatalf("%s: ESP file %s left behind", what, f)
				}
			}
			fsckClean(t, v, esp.Size, what)
			boots(cur, what)
		}
	}
	took := time.Since(start)

	var lines []string
	total := map[int]int{}
	for _, r := range rs {
		var cs []string
		for c, n := range codes[r.name] {
			cs = append(cs, fmt.Sprintf("exit %d: %d", c, n))
			total[c] += n
		}
		sort.Strings(cs)
		lines = append(lines, fmt.Sprintf("%s %s", r.name, strings.Join(cs, ", ")))
	}
	t.Logf("%d positions, %d refused (exit 3: %d, exit 1: %d, exit 0: %d); %s; %d ESP states fsck.fat clean and booting slot a; %v (%v in keel update)",
		len(pos), len(pos)-total[exitOK], total[exitRefused], total[exitFailure], total[exitOK], strings.Join(lines, "; "), len(checked), took.Round(time.Millisecond), inInstall.Round(time.Millisecond))

	// The untampered bundle still installs on the disk the matrix used.
	out.Reset()
	if code := run(context.Background(), []string{"update", diskPath, bundlePath, "--key", pubPath}, &out, &out); code != exitOK || !strings.Contains(out.String(), "into slot b") {
		t.Fatalf("the untampered bundle: exit %d\n%s", code, out.String())
	}
}
