package qemutests

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"keel/bootloader"
	"keel/image/bootcheck"
	"keel/image/bundle"
	"keel/image/install"
	"keel/image/powercut"
)

// TestCutBoot boots disks left by power cuts (issue 8, "Cut at every
// write"): image/install's TestPowerCut cuts the offline install after
// every write and asks bootcheck, which applies systemd-boot's rules to
// the ESP left behind, what each disk boots; here a few of those disks,
// cut at chosen writes, are written out and booted under OVMF, and the
// console must say the predicted slot and version.
//
// The install is the one `keel update DISK BUNDLE` runs (v2 into slot b
// of a v1 disk), on a powercut.Disk. A first, uncut run records which ESP
// operation (write a file, rename, remove, sync) makes which disk writes;
// a cut point is then named by what it interrupts, not by a write number
// that changes with the build. The disks: cut after the kernel's rename
// (every write on disk); while the entry is written under its temporary
// name; after the entry's rename, with every write on disk, with the
// writes since the last sync lost, and with the rename's directory sector
// torn; and the finished install.
func TestCutBoot(t *testing.T) {
	// With the other long VM tests, two at a time (go test -parallel
	// defaults to GOMAXPROCS): TCG runs a VM on one core.
	t.Parallel()
	start := time.Now()
	h := setUp(t)
	f := buildAB(t, h, systemdBoot, []abVersion{{version: "1.0.0"}, {version: "2.0.0"}})
	f.bundles = nil // nothing is installed in the guest
	built := time.Since(start)

	base, err := os.ReadFile(f.disk["1.0.0"])
	if err != nil {
		t.Fatal(err)
	}
	v2, err := os.ReadFile(f.bundle["2.0.0"])
	if err != nil {
		t.Fatal(err)
	}
	pub, err := bundle.ReadPublicKey(f.pub)
	if err != nil {
		t.Fatal(err)
	}
	m1 := manifestOf(t, f.bundle["1.0.0"], pub)
	m2 := manifestOf(t, f.bundle["2.0.0"], pub)
	sec, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	run := cutRun{base: base, bundle: v2, pub: pub, when: time.Unix(sec, 0).UTC()}

	// The uncut install: its operations, and the disk it leaves.
	rec, err := run.install(t, -1)
	if err != nil {
		t.Fatalf("the install, uncut: %v", err)
	}
	if rec.disk.Pending() != 0 {
		t.Fatalf("the install returned with %d sectors not synced", rec.disk.Pending())
	}
	t.Logf("the install makes %d writes and %d syncs; its ESP operations (writes numbered from 1):", rec.disk.Writes(), rec.disk.Syncs())
	done := 0
	for _, o := range rec.ops {
		if o.first > done {
			t.Logf("  writes %2d-%-2d  slot b's partition (the rootfs, not through the ESP)", done+1, o.first)
		}
		done = o.last
		switch {
		case o.last == o.first:
			t.Logf("  no write      %s", o)
		case o.last-o.first <= 6:
			var secs []string
			for k := o.first; k < o.last; k++ {
				secs = append(secs, strconv.FormatInt(rec.sector(k), 10))
			}
			t.Logf("  writes %2d-%-2d  %s (sectors %s)", o.first+1, o.last, o, strings.Join(secs, ", "))
		default:
			t.Logf("  writes %2d-%-2d  %s", o.first+1, o.last, o)
		}
	}

	entryTmp := func(o espOp) bool {
		return o.kind == "write" && strings.HasPrefix(o.path, "/loader/entries/keel-b+") && strings.HasSuffix(o.path, ".tmp")
	}
	entryRename := func(o espOp) bool {
		return o.kind == "rename" && strings.HasPrefix(o.to, "/loader/entries/keel-b+") && strings.HasSuffix(o.to, ".conf")
	}
	kernelRename := func(o espOp) bool { return o.kind == "rename" && o.to == "/keel/b/vmlinuz" }
	all := func(o espOp) int { return o.last }
	// The entry's temporary file is written (content, FAT, directory
	// entry, free-count hint): cut right after its directory entry, in
	// the sector the rename writes, so the file is all there, under a
	// name the loader must skip.
	rename, ok := rec.find(entryRename)
	if !ok {
		t.Fatal("the install does not rename the entry into place")
	}
	dirSector := rec.sector(rename.first)
	afterDirEntry := func(o espOp) int {
		for k := o.first; k < o.last; k++ {
			if rec.sector(k) == dirSector {
				return k + 1
			}
		}
		t.Fatalf("%s does not write sector %d, the entries' directory", o, dirSector)
		return 0
	}
	// The cut points. at is the number of writes let through, from the
	// operation the cut interrupts; model picks the outcome among those
	// powercut allows (which sectors written since the last sync made it).
	cuts := []struct {
		name  string
		op    func(espOp) bool
		at    func(o espOp) int
		model cutModel
	}{
		{"kernel renamed into place, before the sync", kernelRename, all, allWritten},
		{"entry being written, cut after its directory entry", entryTmp, afterDirEntry, allWritten},
		{"entry renamed into place, before the last sync", entryRename, all, allWritten},
		{"entry renamed into place, before the last sync", entryRename, all, lostWrites},
		{"entry renamed into place, before the last sync", entryRename, all, tornFirst},
		{"after the last sync (install done)", nil, nil, allWritten},
	}

	type outcome struct {
		cut, writes, model string
		predicted, booted  string
		slot, version      string // predicted
		counter            string // the try counter keel-init must report
		disk               string
	}
	results := make([]outcome, len(cuts))
	for i, c := range cuts {
		o := outcome{cut: c.name}
		var im *powercut.Image
		if c.op == nil {
			im = rec.disk.After(powercut.Variant{Name: "all written"})
			o.writes = fmt.Sprintf("all %d, synced", rec.disk.Writes())
		} else {
			op, ok := rec.find(c.op)
			if !ok {
				t.Fatalf("%s: the install makes no such operation", c.name)
			}
			n := c.at(op)
			r, err := run.install(t, n)
			if !errors.Is(err, powercut.ErrCut) {
				t.Fatalf("%s: cut after %d writes: the install returned %v", c.name, n, err)
			}
			// The cut install must fail in the operation the uncut one
			// was in at that write: the cut is where the test says.
			hit, ok := r.interrupted()
			want, wok := rec.cutIn(n)
			if !ok || !wok || hit.index != want.index || hit.String() != want.String() {
				t.Fatalf("%s: cut after %d writes interrupts operation %d %q, want %d %q", c.name, n, hit.index, hit, want.index, want)
			}
			o.cut = fmt.Sprintf("%s (%s; the cut fails %s)", c.name, op, hit)
			o.writes = fmt.Sprintf("%d of %d, %d since the last sync", n, rec.disk.Writes(), r.disk.PendingWrites())
			v, err := c.model.variant(r, op)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			im = r.disk.After(v)
		}
		o.model = im.Name()
		p, err := bootcheck.Predict(im, im.Size(), m1, m2)
		if err != nil {
			// Every cut must leave a bootable disk: TestPowerCut fails too.
			t.Errorf("%s (%s): %v", o.cut, o.model, err)
			o.predicted = "does not boot"
			results[i] = o
			continue
		}
		o.slot, o.version, o.predicted = p.Slot, p.Version, p.String()
		o.counter = "none"
		if p.TriesLeft >= 0 {
			// systemd-boot counts the try down before it boots the entry.
			o.counter = countedDown(p.Entry)
		}
		o.disk = filepath.Join(f.dir, fmt.Sprintf("cut-%d.img", i+1))
		if err := writeImage(o.disk, im); err != nil {
			t.Fatal(err)
		}
		results[i] = o
		t.Logf("disk %d: %s; writes %s; model %s; predicted %s (%s)", i+1, o.cut, o.writes, o.model, o.predicted, p.Why)
	}
	rec, run.base = nil, nil // the disks are files now
	prepared := time.Since(start)

	// Two VMs at a time (go test's -parallel is GOMAXPROCS, 2 here).
	t.Run("boot", func(t *testing.T) {
		for i := range results {
			if results[i].disk == "" {
				continue
			}
			t.Run(fmt.Sprintf("disk %d", i+1), func(t *testing.T) {
				t.Parallel()
				o := &results[i]
				g := f.boot(t, o.disk, filepath.Join(t.TempDir(), "vars"), fmt.Sprintf("disk %d", i+1))
				// keel-init reports the entry systemd-boot booted, before
				// the ready line.
				counter := expectMatch(g, counterLine)[1]
				if counter != o.counter {
					t.Errorf("disk %d: try counter %s, predicted %s", i+1, counter, o.counter)
				}
				ready := expectMatch(g, readyLine)
				o.booted = ready[0]
				g.vm.Kill()
				t.Logf("disk %d (%s): %s, %s", i+1, g.vm.Accel(), o.booted, time.Since(g.start).Round(time.Second))
				if ready[1] != o.version || ready[2] != o.slot {
					t.Errorf("disk %d booted %q, predicted keel-ab %s slot=%s", i+1, o.booted, o.version, o.slot)
				}
			})
		}
	})

	var table strings.Builder
	fmt.Fprintf(&table, "| # | cut point | writes made | model | predicted | console |\n|---|---|---|---|---|---|\n")
	for i, o := range results {
		fmt.Fprintf(&table, "| %d | %s | %s | %s | %s | %s |\n", i+1, o.cut, o.writes, o.model, o.predicted, o.booted)
	}
	t.Logf("power cuts booted under QEMU:\n%s", table.String())
	t.Logf("wall time: %s (builds %s, installs and cuts %s, boots %s)", time.Since(start).Round(time.Second),
		built.Round(time.Second), (prepared - built).Round(time.Second), (time.Since(start) - prepared).Round(time.Second))
}

// The console lines TestCutBoot reads. Expect can match a line still
// being received: each pattern ends where its value is complete.
var (
	counterLine = regexp.MustCompile(`try counter: (none|\S+\.conf)`)
	readyLine   = regexp.MustCompile(`keel: ready keel-ab (\S+) slot=([ab])`)
)

// expectMatch waits for a console line re matches and returns the match.
func expectMatch(g *guest, re *regexp.Regexp) []string {
	g.t.Helper()
	line, err := g.vm.ExpectRegexp(g.f.h.ctx, re, bootTimeout)
	if err != nil {
		g.fatalf("%v", err)
	}
	return re.FindStringSubmatch(line)
}

// cutRun is the offline install to cut: the v1 disk and the v2 bundle.
type cutRun struct {
	base   []byte
	bundle []byte
	pub    ed25519.PublicKey
	when   time.Time
}

// install runs the install on a fresh powercut.Disk holding the v1 disk,
// cut after n writes (n < 0: not cut), as `keel update` does: install.OpenDisk
// and install.Install with the image's own settings.
func (c cutRun) install(t *testing.T, n int) (*recorded, error) {
	t.Helper()
	r := &recorded{disk: powercut.New(c.base)}
	if n >= 0 {
		r.disk.CutAfter(n)
	}
	dev := &recordingDisk{Disk: r.disk, r: r}
	tg, err := install.OpenDisk(dev, r.disk.Size(), c.when)
	if err != nil {
		t.Fatalf("open the v1 disk: %v", err)
	}
	tg.ESP = recordingESP{DirESP: tg.ESP, r: r}
	b, err := install.OpenBundle(bytes.NewReader(c.bundle), []ed25519.PublicKey{c.pub})
	if err != nil {
		t.Fatalf("open the v2 bundle: %v", err)
	}
	_, err = install.Install(context.Background(), *tg, b, install.Options{})
	return r, err
}

// recorded is one install on a powercut.Disk: the disk, the offset of
// every write that reached it, and the ESP operations that made them.
type recorded struct {
	disk   *powercut.Disk
	writes []int64 // offset of write k+1
	ops    []espOp
}

// espOp is one call to the ESP and the disk writes it made: first+1 to
// last (numbered from 1, as powercut counts them).
type espOp struct {
	index          int // in the install's order
	kind, path, to string
	first, last    int
	err            error
}

func (o espOp) String() string {
	switch o.kind {
	case "rename":
		return fmt.Sprintf("rename %s to %s", o.path, o.to)
	case "sync":
		return "sync"
	}
	return o.kind + " " + o.path
}

// sector is the (first) sector of write k+1.
func (r *recorded) sector(k int) int64 { return r.writes[k] / powercut.SectorSize }

// find is the first operation that matches and made a write.
func (r *recorded) find(match func(espOp) bool) (espOp, bool) {
	for _, o := range r.ops {
		if match(o) && o.last > o.first {
			return o, true
		}
	}
	return espOp{}, false
}

// cutIn is the operation that a cut after n writes fails: the first that
// makes write n+1, or syncs once n writes are made.
func (r *recorded) cutIn(n int) (espOp, bool) {
	for _, o := range r.ops {
		if o.last > n || o.kind == "sync" && o.first >= n {
			return o, true
		}
	}
	return espOp{}, false
}

// interrupted is the operation the cut failed.
func (r *recorded) interrupted() (espOp, bool) {
	for _, o := range r.ops {
		if errors.Is(o.err, powercut.ErrCut) {
			return o, true
		}
	}
	return espOp{}, false
}

// recordingDisk notes where each write that reaches the disk goes. Sync
// is powercut.Disk's, so Install and the FAT writer still sync.
type recordingDisk struct {
	*powercut.Disk
	r *recorded
}

func (d *recordingDisk) WriteAt(p []byte, off int64) (int, error) {
	n, err := d.Disk.WriteAt(p, off)
	if err == nil {
		d.r.writes = append(d.r.writes, off)
	}
	return n, err
}

// recordingESP notes which writes each ESP operation makes. The
// boot-loader code (entries written through a temporary name and
// renamed) calls it too, as it is the Target's ESP.
type recordingESP struct {
	bootloader.DirESP
	r *recorded
}

func (e recordingESP) do(kind, p, to string, f func() error) error {
	o := espOp{index: len(e.r.ops), kind: kind, path: p, to: to, first: e.r.disk.Writes()}
	err := f()
	o.last, o.err = e.r.disk.Writes(), err
	e.r.ops = append(e.r.ops, o)
	return err
}

func (e recordingESP) Mkdir(p string) error {
	return e.do("mkdir", p, "", func() error { return e.DirESP.Mkdir(p) })
}

func (e recordingESP) WriteFile(p string, r io.Reader, size int64) error {
	return e.do("write", p, "", func() error { return e.DirESP.WriteFile(p, r, size) })
}

func (e recordingESP) Rename(from, to string) error {
	return e.do("rename", from, to, func() error { return e.DirESP.Rename(from, to) })
}

func (e recordingESP) Remove(p string) error {
	return e.do("remove", p, "", func() error { return e.DirESP.Remove(p) })
}

func (e recordingESP) Sync() error {
	return e.do("sync", "", "", e.DirESP.Sync)
}

// cutModel picks what the disk holds after the cut among the outcomes
// powercut.Variants lists.
type cutModel int

const (
	allWritten cutModel = iota // every write reached the disk
	lostWrites                 // every write since the last sync lost
	tornFirst                  // the sector of the operation's first write torn
)

func (m cutModel) variant(r *recorded, op espOp) (powercut.Variant, error) {
	want := map[cutModel]string{allWritten: "all written", lostWrites: "none written"}[m]
	if m == tornFirst {
		// For a rename, its first write is the directory's sector; torn,
		// it holds the first half of the new content, the rest of the old.
		want = fmt.Sprintf("sector %d torn", r.sector(op.first))
	}
	// Every single-sector fault is listed (-1), no random outcomes: the
	// generator is not used.
	for _, v := range r.disk.Variants(nil, -1, 0) {
		if v.Name == want {
			return v, nil
		}
	}
	return powercut.Variant{}, fmt.Errorf("no outcome %q among powercut's (%d writes since the last sync)", want, r.disk.PendingWrites())
}

// countedDown is the name systemd-boot gives an entry before booting it:
// one try less left, one more done.
func countedDown(file string) string {
	stem := strings.TrimSuffix(file, ".conf")
	i := strings.LastIndexByte(stem, '+')
	left, done, _ := strings.Cut(stem[i+1:], "-")
	l, _ := strconv.Atoi(left)
	d, _ := strconv.Atoi(done)
	return fmt.Sprintf("%s+%d-%d.conf", stem[:i], l-1, d+1)
}

// writeImage writes the disk to a file, leaving zeros as holes.
func writeImage(name string, im *powercut.Image) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := f.Truncate(im.Size()); err != nil {
		f.Close()
		return err
	}
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for off := int64(0); off < im.Size(); off += int64(len(buf)) {
		n, err := im.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			f.Close()
			return fmt.Errorf("read the cut disk at %d: %w", off, err)
		}
		if bytes.Equal(buf[:n], zero[:n]) {
			continue
		}
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return f.Close()
}

// manifestOf is the manifest of a bundle file, its signature checked.
func manifestOf(t *testing.T, name string, pub ed25519.PublicKey) bundle.Manifest {
	t.Helper()
	bf, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	b, err := bundle.Open(bf, []ed25519.PublicKey{pub})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b.Manifest
}
