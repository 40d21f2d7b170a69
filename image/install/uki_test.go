package install_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"sort"
	"strings"
	"testing"

	"keel/bootloader"
	"keel/bootloader/systemdboot"
	"keel/image/bootcheck"
	"keel/image/bundle"
	"keel/image/install"
	"keel/image/powercut"
)

// TestInstallKinds installs, one after the other on one disk, bundles of
// both artifact sets, so that each slot changes kind: a unified kernel
// image into b from a's kernel, a kernel into a from b's image (whose
// entry has no options to carry over), an image into b from a's kernel,
// an image into a from b's image, and a rollback to an image. After each
// step the new entry is of the bundle's kind, the slot holds exactly its
// kind's files, image.json has the bundle's root hash, the other slot is
// untouched, and bootcheck, applying systemd-boot's rules, predicts the
// new slot with the new build.
func TestInstallKinds(t *testing.T) {
	f := getFixture(t)
	name := f.copyDisk(t)
	d := open(t, name)
	m := systemdboot.Entries{}
	known := []bundle.Manifest{f.v1}
	// v is the n-th build: distinct bytes, so that bootcheck tells the
	// builds apart.
	v := func(n string, uki bool) []byte {
		root := append(bytes.Clone(f.arts[0]), bytes.Repeat([]byte(n), 4096)...)
		edit := func(m *bundle.Manifest) { m.Version = n + ".0.0" }
		if uki {
			return f.ukiBundleWith(t, f.key, edit, [2][]byte{root, append(bytes.Clone(f.uki[1]), n...)})
		}
		return f.bundleWith(t, f.key, edit, [3][]byte{root, append(bytes.Clone(f.arts[1]), n...), append(bytes.Clone(f.arts[2]), n...)})
	}
	steps := []struct {
		name   string
		booted string
		bundle []byte
	}{
		{"uki into b from a's kernel", "a", v("2", true)},
		{"kernel into a from b's uki", "b", v("3", false)},
		{"uki into b from a's kernel", "a", v("4", true)},
		{"uki into a from b's uki", "b", v("5", true)},
	}
	for _, s := range steps {
		d.Booted = s.booted
		other := map[string]string{"a": "b", "b": "a"}[s.booted]
		before := snapshot(t, &d.Target, s.booted)
		b, err := bundle.Open(bytes.NewReader(s.bundle), []ed25519.PublicKey{f.pub})
		if err != nil {
			t.Fatal(err)
		}
		known = append(known, b.Manifest)
		res, err := install.Install(context.Background(), d.Target, b, install.Options{})
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		snapshot(t, &d.Target, s.booted).diff(t, before)
		es, err := m.Entries(d.ESP)
		if err != nil {
			t.Fatal(err)
		}
		e := es[0]
		if e.Slot != other || e.File != res.Entry || e.State() != "trial" {
			t.Fatalf("%s: newest entry %+v, want slot %s's trial %s", s.name, e, other, res.Entry)
		}
		body, _ := d.ESP.ReadFile("/loader/entries/" + e.File)
		part, _ := d.Layout.Slot(other)
		want := []string{"image.json", "initrd", "vmlinuz"}
		if b.Manifest.UsesUKI() {
			want = []string{"image.json", "keel.efi"}
			if e.EFI != "/keel/"+other+"/keel.efi" || e.Kernel != "" || e.Initrd != "" || e.Options != "" || strings.Contains(string(body), "options") {
				t.Errorf("%s: entry %+v:\n%s", s.name, e, body)
			}
			if got, _ := d.ESP.ReadFile(e.EFI); !bytes.Equal(got, artifact(t, s.bundle, bundle.UKI)) {
				t.Errorf("%s: %s is not the bundle's image", s.name, e.EFI)
			}
		} else {
			// The booted entry boots an image: it has no options to carry
			// over, so the new kernel gets the slot's own and nothing else.
			if e.EFI != "" || e.Kernel != "/keel/"+other+"/vmlinuz" || e.Options != "root=PARTUUID="+strings.ToLower(part.GUID)+" keel.slot="+other {
				t.Errorf("%s: entry %+v:\n%s", s.name, e, body)
			}
		}
		if got := slotFileNames(t, d.ESP, other); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: /keel/%s holds %q, want %q", s.name, other, got, want)
		}
		im, err := install.ReadImage(d.ESP, other, e)
		wantHash := ""
		if b.Manifest.Verity != nil {
			wantHash = b.Manifest.Verity.RootHash
		}
		if err != nil || im.Version != b.Manifest.Version || im.RootHash != wantHash || (b.Manifest.UsesUKI() && len(wantHash) != 64) {
			t.Errorf("%s: image.json %+v (%v), want version %s, root hash %q", s.name, im, err, b.Manifest.Version, wantHash)
		}
		st, err := install.Status(d.ESP, m, s.booted)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range st {
			if x.Slot == other && (x.RootHash != wantHash || x.EFI != e.EFI) {
				t.Errorf("%s: status of slot %s %+v, want root hash %q, efi %q", s.name, other, x, wantHash, e.EFI)
			}
		}
		predictSlot(t, d, known, other, b.Manifest.Version)
		if err := m.MarkGood(d.ESP, other); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s, %s", s.name, e.File, strings.ReplaceAll(string(body), "\n", "; "))
	}
	// a boots v5 from its image, b holds v4's image: a rollback to b
	// writes a new generation of b's efi entry, which boots v4.
	g, err := install.Rollback(d.ESP, m, "a")
	if err != nil {
		t.Fatal(err)
	}
	if g.EFI != "/keel/b/keel.efi" || g.Kernel != "" || g.Generation != 6 {
		t.Errorf("rollback entry %+v", g)
	}
	predictSlot(t, d, known, "b", "4.0.0")
	fsckESP(t, d.File, d.Layout, false)
}

// artifact is the named artifact of a bundle.
func artifact(t *testing.T, b []byte, name string) []byte {
	t.Helper()
	br, err := bundle.OpenUnverified(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	for {
		a, r, err := br.Next()
		if err != nil {
			t.Fatalf("no artifact %s: %v", name, err)
		}
		if a.Name == name {
			var buf bytes.Buffer
			if _, err := buf.ReadFrom(r); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		}
	}
}

func slotFileNames(t *testing.T, esp bootloader.DirESP, slot string) []string {
	t.Helper()
	n, err := esp.ReadDir("/keel/" + slot)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(n)
	return n
}

// predictSlot fails unless bootcheck predicts that d boots slot with the
// build of version.
func predictSlot(t *testing.T, d *install.DiskFile, known []bundle.Manifest, slot, version string) {
	t.Helper()
	if err := d.File.Sync(); err != nil {
		t.Fatal(err)
	}
	fi, err := d.File.Stat()
	if err != nil {
		t.Fatal(err)
	}
	p, err := bootcheck.Predict(d.File, fi.Size(), known...)
	if err != nil || p.Slot != slot || p.Version != version {
		t.Errorf("boots %s (%v), want slot %s with %s (%s)", p, err, slot, version, p.Why)
	}
}

// TestRefusalsUKI: a bundle of a unified kernel image whose image is
// tampered with, cut short or followed by junk is refused after slot b
// was written, with slot a untouched, no entry for b and no temporary file
// left; an older one, or one whose rootfs does not fit, is refused before
// anything is written.
func TestRefusalsUKI(t *testing.T) {
	f := getFixture(t)
	good := f.ukiBundle(t, f.key, nil)
	ukiOff := len(good) - len(f.uki[1])
	flip := func(off int) []byte {
		b := bytes.Clone(good)
		b[off] ^= 0x10
		return b
	}
	tests := []struct {
		name    string
		bundle  []byte
		open    bool // refused by bundle.Open, before Install
		want    error
		written bool
	}{
		{"flipped bit in the image", flip(ukiOff + len(f.uki[1])/2), false, bundle.ErrHashMismatch, true},
		{"flipped bit in the image's last byte", flip(len(good) - 1), false, bundle.ErrHashMismatch, true},
		{"flipped bit in the rootfs", flip(ukiOff - 1), false, bundle.ErrHashMismatch, true},
		{"truncated in the image", good[:len(good)-1], false, bundle.ErrTruncated, true},
		{"junk after the image", append(bytes.Clone(good), "junk"...), false, bundle.ErrCorrupt, true},
		{"older version", f.ukiBundle(t, f.key, func(m *bundle.Manifest) { m.Version = "0.9" }), false, install.ErrDowngrade, false},
		{"rootfs larger than the slot", f.ukiBundleWith(t, f.key, nil, [2][]byte{make([]byte, 4<<20+1), f.uki[1]}), false, install.ErrTooLarge, false},
	}
	name := f.copyDisk(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := open(t, name)
			before := snapshot(t, &d.Target, "a")
			err := func() error {
				b, err := install.OpenBundle(bytes.NewReader(tt.bundle), []ed25519.PublicKey{f.pub})
				if tt.open || err != nil {
					if !tt.open {
						t.Errorf("refused by Open, expected by Install: %v", err)
					}
					return err
				}
				_, err = install.Install(context.Background(), d.Target, b, install.Options{})
				return err
			}()
			t.Logf("error: %v", err)
			if !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			if install.IsRefused(err) == tt.written {
				t.Errorf("refused (nothing written): %v, want %v", install.IsRefused(err), !tt.written)
			}
			d.Close()
			d = open(t, name)
			snapshot(t, &d.Target, "a").diff(t, before)
			es, _ := d.Loader.Entries(d.ESP)
			for _, e := range es {
				if e.Slot == "b" {
					t.Errorf("slot b has an entry after a refused install: %s", e.File)
				}
			}
			if names, err := d.ESP.ReadDir("/keel/b"); err == nil {
				for _, n := range names {
					if strings.HasSuffix(n, ".tmp") {
						t.Errorf("/keel/b/%s left behind", n)
					}
				}
			}
			fsckESP(t, d.File, d.Layout, false)
		})
	}
}

// TestBootcheckCanFailUKI: bootcheck judges efi entries too. A disk whose
// newest entry boots an image that is not the build's, or whose entry
// lacks its image, or whose slot was changed, or whose entry's name (from
// which keel-init takes the slot) names the other slot, or that names the
// loader itself, is predicted accordingly.
func TestBootcheckCanFailUKI(t *testing.T) {
	f := getFixture(t)
	base, err := os.ReadFile(f.disk)
	if err != nil {
		t.Fatal(err)
	}
	uki := f.ukiBundle(t, f.key, nil)
	d := powercut.New(base)
	tg, err := install.OpenDisk(d, int64(len(base)), epoch)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Open(bytes.NewReader(uki), []ed25519.PublicKey{f.pub})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := install.Install(context.Background(), *tg, b, install.Options{}); err != nil {
		t.Fatal(err)
	}
	installed := d.After(powercut.Variant{}).Bytes()
	size := int64(len(installed))
	write := func(tg *install.Target, p, s string) error {
		return tg.ESP.WriteFile(p, strings.NewReader(s), int64(len(s)))
	}
	tests := []struct {
		name   string
		change func(tg *install.Target) error
		slot   string // "": does not boot
	}{
		{"as installed", func(*install.Target) error { return nil }, "b"},
		{"v2's image replaced", func(tg *install.Target) error { return write(tg, "/keel/b/keel.efi", "MZ some other image") }, ""},
		{"v2's image missing: the loader drops the entry", func(tg *install.Target) error { return tg.ESP.Remove("/keel/b/keel.efi") }, "a"},
		{"slot b's partition changed", func(tg *install.Target) error {
			p, _ := tg.Layout.Slot("b")
			_, err := tg.Disk.WriteAt([]byte("x"), p.Start+100)
			return err
		}, ""},
		{"v2 marked bad", func(tg *install.Target) error { return tg.Loader.MarkBad(tg.ESP, "b") }, "a"},
		{"the entry renamed to slot a's: keel-init mounts root-a under v2's image", func(tg *install.Target) error {
			return tg.ESP.Rename("/loader/entries/keel-b+3.conf", "/loader/entries/keel-a+3.conf")
		}, ""},
		{"the entry names the loader itself: the loader drops it", func(tg *install.Target) error {
			return write(tg, "/loader/entries/keel-b+3.conf", "title t\nsort-key keel\nversion 2\nefi /EFI/BOOT/BOOTX64.EFI\n")
		}, "a"},
		{"a linux line after the efi line: the last one counts", func(tg *install.Target) error {
			b, err := tg.ESP.ReadFile("/keel/a/vmlinuz")
			if err != nil {
				return err
			}
			if err := tg.ESP.WriteFile("/keel/b/vmlinuz", bytes.NewReader(b), int64(len(b))); err != nil {
				return err
			}
			return write(tg, "/loader/entries/keel-b+3.conf", "title t\nsort-key keel\nversion 2\nefi /keel/b/keel.efi\nlinux /keel/b/vmlinuz\n")
		}, ""}, // v1's kernel with no initrd and no root=: not a known build
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
			p, err := bootcheck.Predict(d, size, f.v1, b.Manifest)
			t.Logf("%s: %v (%s)", p, err, p.Why)
			switch {
			case tt.slot == "" && !errors.Is(err, bootcheck.ErrUnbootable):
				t.Errorf("predicted %s, want unbootable", p)
			case tt.slot != "" && (err != nil || p.Slot != tt.slot):
				t.Errorf("predicted %s (%v), want slot %s", p, err, tt.slot)
			}
		})
	}
}
