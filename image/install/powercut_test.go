package install_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"keel/image/bootcheck"
	"keel/image/bundle"
	"keel/image/install"
	"keel/image/powercut"
)

var (
	cutMatrix = flag.String("cutmatrix", "sample", "power-cut outcomes checked at each cut point: sample (a few per point) or full (every single-sector fault and 64 random outcomes)")
	cutSeed   = flag.Uint64("cutseed", 0, "seed for the sampled power-cut outcomes (0: from the clock; the seed used is logged)")
)

// powerCutScenario is an install to cut: the disk before it, the bundle,
// and the builds the disk may boot after a cut.
type powerCutScenario struct {
	name     string
	base     []byte
	bundle   []byte
	old, new bundle.Manifest
	oldSlot  string
}

// TestPowerCut cuts the offline install after every write, as a power cut
// would: writes since the last sync (of the disk or the ESP) may each have
// reached the disk or not, in any order, and a sector may be torn. For
// every cut point it builds such disks (powercut.Variants) and asks
// bootcheck, which applies systemd-boot's rules to the ESP left behind,
// what each boots: the old slot with the old build or the new slot with
// the new one, byte for byte, and nothing else.
func TestPowerCut(t *testing.T) {
	f := getFixture(t)
	seed := *cutSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("power-cut outcomes sampled with -cutseed=%d (-cutmatrix=%s)", seed, *cutMatrix)
	single, random := 6, 6
	if *cutMatrix == "full" {
		single, random = -1, 64
	} else if *cutMatrix != "sample" {
		t.Fatalf("-cutmatrix=%q: want sample or full", *cutMatrix)
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	var total powerCutCount
	for _, sc := range powerCutScenarios(t, f) {
		t.Run(sc.name, func(t *testing.T) {
			c := runPowerCut(t, sc, rng, single, random)
			t.Logf("%d cut points; %d disks checked: %d with every write on disk, %d with lost or torn unsynced writes; %d boot the old slot, %d the new one, %d do not boot",
				c.points, c.disks, c.allWritten, c.disks-c.allWritten, c.old, c.new, c.bad)
			total.add(c)
		})
	}
	t.Logf("power cut, all scenarios: %d cut points, %d disks (%d every write on disk, %d lost or torn), %d old slot, %d new slot, %d unbootable",
		total.points, total.disks, total.allWritten, total.disks-total.allWritten, total.old, total.new, total.bad)
}

type powerCutCount struct{ points, disks, allWritten, old, new, bad int }

func (c *powerCutCount) add(o powerCutCount) {
	c.points += o.points
	c.disks += o.disks
	c.allWritten += o.allWritten
	c.old += o.old
	c.new += o.new
	c.bad += o.bad
}

func runPowerCut(t *testing.T, sc powerCutScenario, rng *rand.Rand, single, random int) powerCutCount {
	var c powerCutCount
	size := int64(len(sc.base))
	newSlot := map[string]string{"a": "b", "b": "a"}[sc.oldSlot]
	check := func(what string, im *powercut.Image) {
		c.disks++
		if im.Name() == "all written" {
			c.allWritten++
		}
		p, err := bootcheck.Predict(im, size, sc.old, sc.new)
		switch {
		case err != nil:
			c.bad++
			t.Errorf("%s, %s: %v", what, im.Name(), err)
		case p.Slot == sc.oldSlot && p.Version == sc.old.Version:
			c.old++
		case p.Slot == newSlot && p.Version == sc.new.Version:
			c.new++
		default:
			c.bad++
			t.Errorf("%s, %s: boots %s", what, im.Name(), p)
		}
	}
	for n := 1; ; n++ {
		d := powercut.New(sc.base)
		d.CutAfter(n)
		tg, err := install.OpenDisk(d, size, epoch)
		if err != nil {
			t.Fatal(err)
		}
		b, err := bundle.Open(bytes.NewReader(sc.bundle), nil)
		if err == nil || !errors.Is(err, bundle.ErrUnknownKey) {
			t.Fatalf("bundle.Open with no key: %v", err)
		}
		b, err = bundle.Open(bytes.NewReader(sc.bundle), []ed25519.PublicKey{fix.pub})
		if err != nil {
			t.Fatal(err)
		}
		_, err = install.Install(context.Background(), *tg, b, install.Options{})
		if err == nil {
			// Every write done and synced: the new slot, and nothing pending.
			if d.Pending() != 0 {
				t.Errorf("the install returned with %d sectors not synced", d.Pending())
			}
			p, err := bootcheck.Predict(d.After(powercut.Variant{Name: "done"}), size, sc.old, sc.new)
			if err != nil || p.Slot != newSlot || p.Version != sc.new.Version {
				t.Errorf("after the install: %s (%v), want slot %s", p, err, newSlot)
			}
			t.Logf("the install makes %d writes and %d syncs", d.Writes(), d.Syncs())
			return c
		}
		if !errors.Is(err, powercut.ErrCut) {
			t.Fatalf("cut after %d writes: %v", n, err)
		}
		c.points++
		what := "cut after " + strconv.Itoa(n) + " writes (" + strconv.Itoa(d.PendingWrites()) + " since the last sync)"
		for _, v := range d.Variants(rng, single, random) {
			check(what, d.After(v))
		}
	}
}

// powerCutScenarios: v2 into slot b of the v1 disk (slot a booted); and
// from that disk, with b blessed and booted, a v3 of distinct bytes into
// slot a, which removes a's entry first. Then the same with unified kernel
// images: v2's image into slot b of the v1 disk (a linux entry booted, an
// efi entry written), and from that disk, with b blessed, v3's image into
// slot a, and v3's kernel and initrd into slot a (an efi entry booted, a
// linux entry written).
func powerCutScenarios(t *testing.T, f *fixture) []powerCutScenario {
	base, err := os.ReadFile(f.disk)
	if err != nil {
		t.Fatal(err)
	}
	v2 := f.bundleBytes(t, f.key, nil)
	blessed := installBlessed(t, f, base, v2, "b")

	arts3 := [3][]byte{
		append(bytes.Clone(f.arts[0]), bytes.Repeat([]byte("v3"), 2048)...),
		append(bytes.Clone(f.arts[1]), "v3"...),
		append(bytes.Clone(f.arts[2]), make([]byte, 100)...),
	}
	v3 := f.bundleWith(t, f.key, func(m *bundle.Manifest) { m.Version = "3.0.0" }, arts3)
	uki2 := f.ukiBundle(t, f.key, nil)
	uki3 := f.ukiBundleWith(t, f.key, func(m *bundle.Manifest) { m.Version = "3.0.0" }, [2][]byte{arts3[0], append(bytes.Clone(f.uki[1]), "v3"...)})
	ukiBlessed := installBlessed(t, f, base, uki2, "b")
	return []powerCutScenario{
		{name: "v2 into slot b", base: base, bundle: v2, old: f.v1, new: manifest(t, v2), oldSlot: "a"},
		{name: "v3 into slot a", base: blessed, bundle: v3, old: f.v2, new: manifest(t, v3), oldSlot: "b"},
		{name: "v2's image into slot b", base: base, bundle: uki2, old: f.v1, new: manifest(t, uki2), oldSlot: "a"},
		{name: "v3's image into slot a from b's image", base: ukiBlessed, bundle: uki3, old: manifest(t, uki2), new: manifest(t, uki3), oldSlot: "b"},
		{name: "v3's kernel into slot a from b's image", base: ukiBlessed, bundle: v3, old: manifest(t, uki2), new: manifest(t, v3), oldSlot: "b"},
	}
}

// installBlessed is the disk base with bundle installed into slot and
// blessed.
func installBlessed(t *testing.T, f *fixture, base, bb []byte, slot string) []byte {
	t.Helper()
	d := powercut.New(base)
	tg, err := install.OpenDisk(d, int64(len(base)), epoch)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Open(bytes.NewReader(bb), []ed25519.PublicKey{f.pub})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := install.Install(context.Background(), *tg, b, install.Options{}); err != nil || res.Slot != slot {
		t.Fatalf("install into slot %s: %+v, %v", slot, res, err)
	}
	if err := tg.Loader.MarkGood(tg.ESP, slot); err != nil {
		t.Fatal(err)
	}
	return d.After(powercut.Variant{Name: "installed and blessed"}).Bytes()
}

// manifest is a bundle's manifest.
func manifest(t *testing.T, bb []byte) bundle.Manifest {
	t.Helper()
	b, err := bundle.OpenUnverified(bytes.NewReader(bb))
	if err != nil {
		t.Fatal(err)
	}
	return b.Manifest
}

// TestBootcheckCanFail: the checker is not a rubber stamp. A disk whose
// newest entry names a kernel that is not the build's, or that lacks its
// entry's kernel, or whose slot was changed, is predicted accordingly.
func TestBootcheckCanFail(t *testing.T) {
	f := getFixture(t)
	base, err := os.ReadFile(f.disk)
	if err != nil {
		t.Fatal(err)
	}
	d := powercut.New(base)
	tg, err := install.OpenDisk(d, int64(len(base)), epoch)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Open(bytes.NewReader(f.bundleBytes(t, f.key, nil)), []ed25519.PublicKey{f.pub})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := install.Install(context.Background(), *tg, b, install.Options{}); err != nil {
		t.Fatal(err)
	}
	installed := d.After(powercut.Variant{}).Bytes()
	size := int64(len(installed))
	tests := []struct {
		name   string
		change func(tg *install.Target) error
		slot   string // "": does not boot
	}{
		{"as installed", func(*install.Target) error { return nil }, "b"},
		{"v2's kernel replaced", func(tg *install.Target) error {
			k := []byte("some other kernel")
			return tg.ESP.WriteFile("/keel/b/vmlinuz", bytes.NewReader(k), int64(len(k)))
		}, ""},
		{"v2's kernel missing: the loader drops the entry", func(tg *install.Target) error { return tg.ESP.Remove("/keel/b/vmlinuz") }, "a"},
		{"slot b's partition changed", func(tg *install.Target) error {
			p, _ := tg.Layout.Slot("b")
			_, err := tg.Disk.WriteAt([]byte("x"), p.Start+100)
			return err
		}, ""},
		{"v2 marked bad", func(tg *install.Target) error { return tg.Loader.MarkBad(tg.ESP, "b") }, "a"},
		{"default glob names slot b only", func(tg *install.Target) error {
			c := []byte("timeout 0\ndefault keel-b*\n")
			if err := tg.Loader.MarkBad(tg.ESP, "b"); err != nil {
				return err
			}
			return tg.ESP.WriteFile("/loader/loader.conf", bytes.NewReader(c), int64(len(c)))
		}, "b"}, // DESIGN §4: such a default keeps booting b even at +0
		{"entry zeroed", func(tg *install.Target) error {
			z := make([]byte, 200)
			return tg.ESP.WriteFile("/loader/entries/keel-b+3.conf", bytes.NewReader(z), int64(len(z)))
		}, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := powercut.New(bytes.Clone(installed))
			tg, err := install.OpenDisk(d, size, epoch)
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.change(tg); err != nil {
				t.Fatal(err)
			}
			p, err := bootcheck.Predict(d, size, f.v1, f.v2)
			t.Logf("%s: %v (%s)", p, err, p.Why)
			switch {
			case tt.slot == "" && !errors.Is(err, bootcheck.ErrUnbootable):
				t.Errorf("predicted %s, want unbootable", p)
			case tt.slot != "" && (err != nil || p.Slot != tt.slot):
				t.Errorf("predicted %s (%v), want slot %s", p, err, tt.slot)
			}
		})
	}
	_ = fmt.Sprint
}
