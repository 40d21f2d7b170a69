package install_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"strconv"
	"strings"
	"testing"

	"keel/bootloader/systemdboot"
	"keel/image/bundle"
	"keel/image/install"
)

func open(t *testing.T, name string) *install.DiskFile {
	t.Helper()
	d, err := install.OpenFile(name, epoch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestInstallOffline(t *testing.T) {
	f := getFixture(t)
	name := f.copyDisk(t)
	d := open(t, name)
	if d.Booted != "a" || d.Running.Version != "1.0.0" || d.Running.Compatible != "t" || d.Running.Arch != "x86_64" {
		t.Fatalf("booted %s, running %+v", d.Booted, d.Running)
	}
	before := snapshot(t, &d.Target, "a")
	b, err := bundle.Open(bytes.NewReader(f.bundleBytes(t, f.key, nil)), []ed25519.PublicKey{f.pub})
	if err != nil {
		t.Fatal(err)
	}
	var stages []string
	res, err := install.Install(context.Background(), d.Target, b, install.Options{Progress: func(s string, _, _ int64) {
		if len(stages) == 0 || stages[len(stages)-1] != s {
			stages = append(stages, s)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stages: %q", stages)
	if res.Slot != "b" || res.Generation != 2 || res.Entry != "keel-b+3.conf" {
		t.Errorf("result %+v", res)
	}
	d.Close()

	// Read everything back from a fresh open, as the next boot would.
	d = open(t, name)
	snapshot(t, &d.Target, "a").diff(t, before)
	es, err := d.Loader.Entries(d.ESP)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].File != "keel-b+3.conf" || es[0].Generation != 2 || es[0].State() != "trial" || es[1].File != "keel-a.conf" {
		t.Fatalf("entries %+v", es)
	}
	b0 := es[0]
	part, _ := d.Layout.Slot("b")
	if !strings.Contains(b0.Options, "root=PARTUUID="+strings.ToLower(part.GUID)) || !strings.Contains(b0.Options, "keel.slot=b") ||
		strings.Contains(b0.Options, "keel.slot=a") || b0.Title != "t 2.0.0 (slot b)" || b0.Kernel != "/keel/b/vmlinuz" {
		t.Errorf("slot b entry: %+v", b0)
	}
	got := make([]byte, len(f.arts[0]))
	if _, err := d.File.ReadAt(got, part.Start); err != nil || !bytes.Equal(got, f.arts[0]) {
		t.Errorf("slot b does not hold v2's rootfs (%v)", err)
	}
	for i, p := range []string{"", "/keel/b/vmlinuz", "/keel/b/initrd"} {
		if i == 0 {
			continue
		}
		if b, err := d.ESP.ReadFile(p); err != nil || !bytes.Equal(b, f.arts[i]) {
			t.Errorf("%s is not v2's %s (%v)", p, bundle.InstallOrder[i], err)
		}
	}
	im, err := install.ReadImage(d.ESP, "b", b0)
	if err != nil || im.Version != "2.0.0" || im.BuildID != b.Manifest.BuildID {
		t.Errorf("slot b image.json %+v (%v), want build id %s", im, err, b.Manifest.BuildID)
	}
	fsckESP(t, d.File, d.Layout, false)
}

// TestRefusals feeds bad bundles and checks each is refused with the
// right error and leaves the booted slot byte for byte as it was, and no
// entry for slot b.
func TestRefusals(t *testing.T) {
	f := getFixture(t)
	good := f.bundleBytes(t, f.key, nil)
	head := len(good) - len(f.arts[0]) - len(f.arts[1]) - len(f.arts[2])
	flip := func(off int) []byte {
		b := bytes.Clone(good)
		b[off] ^= 0x10
		return b
	}
	artOff := func(i int) int {
		o := head
		for j := 0; j < i; j++ {
			o += len(f.arts[j])
		}
		return o
	}
	tests := []struct {
		name   string
		bundle []byte
		open   bool // refused by bundle.Open, before Install
		want   error
		// written: parts of slot b were written before the error, so it
		// is a failure, not a refusal (*RefusedError: nothing written).
		written bool
	}{
		{"wrong key", f.bundleBytes(t, f.other, nil), true, bundle.ErrUnknownKey, false},
		{"flipped bit in manifest", flip(head - 80), true, bundle.ErrBadSignature, false},
		{"flipped bit in signature", flip(head - 10), true, bundle.ErrBadSignature, false},
		{"flipped bit in rootfs", flip(artOff(0) + len(f.arts[0])/2), false, bundle.ErrHashMismatch, true},
		{"flipped bit in rootfs's last byte", flip(artOff(1) - 1), false, bundle.ErrHashMismatch, true},
		{"flipped bit in kernel", flip(artOff(1) + 5), false, bundle.ErrHashMismatch, true},
		{"flipped bit in initrd", flip(artOff(2) + len(f.arts[2])/2), false, bundle.ErrHashMismatch, true},
		{"flipped bit in initrd's last byte", flip(len(good) - 1), false, bundle.ErrHashMismatch, true},
		{"truncated in header", good[:head-1], true, bundle.ErrTruncated, false},
		{"truncated in rootfs", good[:artOff(0)+100], false, bundle.ErrTruncated, true},
		{"truncated in kernel", good[:artOff(1)+100], false, bundle.ErrTruncated, true},
		{"truncated in initrd", good[:len(good)-1], false, bundle.ErrTruncated, true},
		{"junk after the initrd", append(bytes.Clone(good), "junk"...), false, bundle.ErrCorrupt, true},
		{"zeros after the initrd", append(bytes.Clone(good), make([]byte, 511)...), false, bundle.ErrCorrupt, true},
		{"rootfs larger than the slot", f.bundleWith(t, f.key, nil, [3][]byte{make([]byte, 4<<20+1), f.arts[1], f.arts[2]}), false, install.ErrTooLarge, false},
		{"other compatible", f.bundleBytes(t, f.key, func(m *bundle.Manifest) { m.Compatible = "other" }), false, install.ErrIncompatible, false},
		{"other arch", f.bundleBytes(t, f.key, func(m *bundle.Manifest) { m.Arch = "aarch64" }), false, install.ErrWrongArch, false},
		{"older version", f.bundleBytes(t, f.key, func(m *bundle.Manifest) { m.Version = "0.9.9" }), false, install.ErrDowngrade, false},
		{"older version with a longer number", f.bundleBytes(t, f.key, func(m *bundle.Manifest) { m.Version = "1.0.0-rc1" }), false, install.ErrDowngrade, false},
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
			// A failed install takes its temporary files with it.
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

func TestDowngradeAllowed(t *testing.T) {
	f := getFixture(t)
	d := open(t, f.copyDisk(t))
	bb := f.bundleBytes(t, f.key, func(m *bundle.Manifest) { m.Version = "0.9" })
	b, err := bundle.Open(bytes.NewReader(bb), []ed25519.PublicKey{f.pub})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := install.Install(context.Background(), d.Target, b, install.Options{AllowDowngrade: true, Tries: 1}); err != nil {
		t.Fatal(err)
	}
	es, _ := d.Loader.Entries(d.ESP)
	if es[0].File != "keel-b+1.conf" {
		t.Errorf("entries %+v", es)
	}
}

// TestStates walks the entry states: install (trial), bless, install
// again over the other slot, mark bad, roll back.
func TestStates(t *testing.T) {
	f := getFixture(t)
	d := open(t, f.copyDisk(t))
	m := systemdboot.Entries{}
	inst := func(booted string) error {
		d.Booted = booted
		b, err := bundle.Open(bytes.NewReader(f.bundleBytes(t, f.key, nil)), []ed25519.PublicKey{f.pub})
		if err != nil {
			t.Fatal(err)
		}
		_, err = install.Install(context.Background(), d.Target, b, install.Options{})
		return err
	}
	state := func() string {
		st, err := install.Status(d.ESP, m, d.Booted)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, x := range st {
			s = append(s, x.Slot+":"+x.State+":"+strconv.Itoa(x.Generation)+":"+x.Version)
		}
		return strings.Join(s, " ")
	}
	steps := []struct {
		name string
		do   func() error
		want string
		err  error
	}{
		{"v1 image", func() error { return nil }, "a:good:1:1.0.0 b:none:0:", nil},
		{"rollback with nothing in b", func() error { _, err := install.Rollback(d.ESP, m, "a"); return err }, "a:good:1:1.0.0 b:none:0:", install.ErrNotGood},
		{"install into b", func() error { return inst("a") }, "a:good:1:1.0.0 b:trial:2:2.0.0", nil},
		{"rollback to a trial", func() error { _, err := install.Rollback(d.ESP, m, "a"); return err }, "a:good:1:1.0.0 b:trial:2:2.0.0", install.ErrNotGood},
		{"install from a trial", func() error { return inst("b") }, "a:good:1:1.0.0 b:trial:2:2.0.0", install.ErrBootedNotGood},
		{"bless b", func() error { d.Booted = "b"; return m.MarkGood(d.ESP, "b") }, "a:good:1:1.0.0 b:good:2:2.0.0", nil},
		{"bless again", func() error { return m.MarkGood(d.ESP, "b") }, "a:good:1:1.0.0 b:good:2:2.0.0", nil},
		{"install into a from b", func() error { return inst("b") }, "a:trial:3:2.0.0 b:good:2:2.0.0", nil},
		{"mark a bad", func() error { return m.MarkBad(d.ESP, "a") }, "a:bad:3:2.0.0 b:good:2:2.0.0", nil},
		{"rollback to a bad slot", func() error { _, err := install.Rollback(d.ESP, m, "b"); return err }, "a:bad:3:2.0.0 b:good:2:2.0.0", install.ErrNotGood},
		{"install into a again", func() error { return inst("b") }, "a:trial:4:2.0.0 b:good:2:2.0.0", nil},
		{"bless a", func() error { return m.MarkGood(d.ESP, "a") }, "a:good:4:2.0.0 b:good:2:2.0.0", nil},
		{"rollback from a to b", func() error { d.Booted = "a"; _, err := install.Rollback(d.ESP, m, "a"); return err }, "a:good:4:2.0.0 b:good:5:2.0.0", nil},
	}
	for _, s := range steps {
		err := s.do()
		if !errors.Is(err, s.err) {
			t.Fatalf("%s: error %v, want %v", s.name, err, s.err)
		}
		if got := state(); got != s.want {
			t.Fatalf("%s: state %s, want %s", s.name, got, s.want)
		}
		t.Logf("%s: %s (%v)", s.name, state(), err)
	}
	names, _ := d.ESP.ReadDir(systemdboot.EntriesDir)
	if strings.Join(names, " ") != "keel-a.conf keel-b.conf" && strings.Join(names, " ") != "keel-b.conf keel-a.conf" {
		t.Errorf("entries left: %q", names)
	}
	fsckESP(t, d.File, d.Layout, false)
}

// TestPaddedBundle: a bundle handed over as a block device comes padded to
// whole MiB; read as a device (Padded) it installs, and nothing after the
// initrd is read. The same bytes from a file are refused (image/bundle's
// rule), after slot b was written.
func TestPaddedBundle(t *testing.T) {
	f := getFixture(t)
	good := f.bundleBytes(t, f.key, nil)
	bb := append(bytes.Clone(good), make([]byte, 1<<20-len(good)%(1<<20))...)
	for _, padded := range []bool{true, false} {
		d := open(t, f.copyDisk(t))
		b, err := install.OpenBundle(bytes.NewReader(bb), []ed25519.PublicKey{f.pub})
		if err != nil {
			t.Fatal(err)
		}
		b.Padded = padded
		_, err = install.Install(context.Background(), d.Target, b, install.Options{})
		switch {
		case padded && err != nil:
			t.Fatalf("padded: %v", err)
		case !padded && (!errors.Is(err, bundle.ErrCorrupt) || install.IsRefused(err)):
			t.Fatalf("not padded: %v, want a failure with bundle.ErrCorrupt", err)
		}
	}
}
