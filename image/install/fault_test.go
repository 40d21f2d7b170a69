package install_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"testing"

	"keel/image/bundle"
	"keel/image/install"
)

// cowDisk is a disk image in memory: a shared base and the pages this
// run wrote, so each cut starts from the same bytes cheaply. After limit
// writes, every further write fails: the process "stops" there.
type cowDisk struct {
	base   []byte
	pages  map[int64][]byte
	writes int
	limit  int // 0: no limit
}

var errCut = errors.New("cut: the power went")

const page = 4096

func newCOW(base []byte) *cowDisk { return &cowDisk{base: base, pages: map[int64][]byte{}} }

func (c *cowDisk) ReadAt(p []byte, off int64) (int, error) {
	for n := 0; n < len(p); {
		pg, in := (off+int64(n))/page, int((off+int64(n))%page)
		src, ok := c.pages[pg]
		if !ok {
			src = c.base[pg*page : (pg+1)*page]
		}
		n += copy(p[n:], src[in:])
	}
	return len(p), nil
}

func (c *cowDisk) WriteAt(p []byte, off int64) (int, error) {
	if c.limit > 0 && c.writes >= c.limit {
		return 0, errCut
	}
	c.writes++
	for n := 0; n < len(p); {
		pg, in := (off+int64(n))/page, int((off+int64(n))%page)
		dst, ok := c.pages[pg]
		if !ok {
			dst = bytes.Clone(c.base[pg*page : (pg+1)*page])
			c.pages[pg] = dst
		}
		n += copy(dst[in:], p[n:])
	}
	return len(p), nil
}

// TestCutEveryWrite stops an install after each possible number of writes
// (slot and ESP alike, they go through the same disk) and checks what a
// reboot would find: the booted slot byte for byte as before, an ESP that
// fsck.fat finds clean but for lost clusters, any entry for slot b pointing
// at complete v2 files, and that Cleanup and a second install succeed. It
// does so for a bundle of each artifact set: a kernel and an initrd, and a
// unified kernel image.
func TestCutEveryWrite(t *testing.T) {
	f := getFixture(t)
	for _, k := range []struct {
		name   string
		bundle []byte
	}{{"kernel", f.bundleBytes(t, f.key, nil)}, {"uki", f.ukiBundle(t, f.key, nil)}} {
		t.Run(k.name, func(t *testing.T) { cutEveryWrite(t, f, k.bundle) })
	}
	// GRUB: the counters of both slots share grubenv, replaced whole at
	// each step; the booted slot's entry and state must survive every cut.
	t.Run("grub", func(t *testing.T) {
		g := getGrubFixture(t)
		cutEveryWrite(t, g, g.bundleBytes(t, g.key, nil))
	})
	t.Run("u-boot", func(t *testing.T) {
		u := getUBootFixture(t)
		cutEveryWrite(t, u, u.bundleBytes(t, u.key, nil))
	})
}

func cutEveryWrite(t *testing.T, f *fixture, bb []byte) {
	base, err := os.ReadFile(f.disk)
	if err != nil {
		t.Fatal(err)
	}
	openBundle := func() *bundle.Reader {
		b, err := bundle.Open(bytes.NewReader(bb), []ed25519.PublicKey{f.pub})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ref, err := install.OpenDisk(newCOW(base), int64(len(base)), epoch)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, ref, "a")
	cuts := 0
	for n := 1; ; n++ {
		d := newCOW(base)
		d.limit = n
		tg, err := install.OpenDisk(d, int64(len(base)), epoch)
		if err != nil {
			t.Fatal(err)
		}
		_, err = install.Install(context.Background(), *tg, openBundle(), install.Options{})
		if err == nil {
			t.Logf("the install makes %d writes; cut after each of 1..%d", d.writes, cuts)
			break
		}
		if !errors.Is(err, errCut) {
			t.Fatalf("cut after %d writes: %v", n, err)
		}
		cuts++
		t.Run(fmt.Sprintf("cut after %d writes", n), func(t *testing.T) {
			d.limit = 0
			tg, err := install.OpenDisk(d, int64(len(base)), epoch)
			if err != nil {
				t.Fatalf("the disk does not open after the cut: %v", err)
			}
			if tg.Booted != "a" {
				t.Errorf("the newest good entry is slot %s's", tg.Booted)
			}
			snapshot(t, tg, "a").diff(t, before)
			fsckESP(t, d, tg.Layout, true)
			checkSlotB(t, f, tg)

			done, err := tg.Loader.Cleanup(tg.ESP)
			if err != nil {
				t.Fatalf("cleanup: %v", err)
			}
			if len(done) > 0 {
				t.Logf("cleanup: %q", done)
			}
			snapshot(t, tg, "a").diff(t, before)
			if _, err := install.Install(context.Background(), *tg, openBundle(), install.Options{}); err != nil {
				t.Fatalf("installing again after the cut: %v", err)
			}
			es, _ := tg.Loader.Entries(tg.ESP)
			// 3 if the cut came after the first install's entry was written.
			if len(es) != 2 || es[0].Slot != "b" || es[0].State() != "trial" || es[0].Tries != 3 || es[0].Generation < 2 || es[0].Generation > 3 {
				t.Errorf("entries after installing again: %+v", es)
			}
			checkSlotB(t, f, tg)
			snapshot(t, tg, "a").diff(t, before)
			fsckESP(t, d, tg.Layout, true)
		})
	}
	if cuts < 10 {
		t.Errorf("only %d cuts: the install writes too little to test anything", cuts)
	}
}

// checkSlotB fails if slot b has an entry whose files are not v2's: its
// kernel and initrd, or its unified kernel image.
func checkSlotB(t *testing.T, f *fixture, tg *install.Target) {
	t.Helper()
	es, err := tg.Loader.Entries(tg.ESP)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Slot != "b" {
			continue
		}
		p, _ := tg.Layout.Slot("b")
		root := make([]byte, len(f.arts[0]))
		tg.Disk.ReadAt(root, p.Start)
		if e.EFI != "" {
			root := make([]byte, len(f.uki[0]))
			tg.Disk.ReadAt(root, p.Start)
			u, _ := tg.ESP.ReadFile(e.EFI)
			if !bytes.Equal(root, f.uki[0]) || !bytes.Equal(u, f.uki[1]) || e.Kernel != "" {
				t.Errorf("entry %s exists but slot b is not complete", e.File)
			}
			continue
		}
		k, _ := tg.ESP.ReadFile(e.Kernel)
		i, _ := tg.ESP.ReadFile(e.Initrd)
		if !bytes.Equal(root, f.arts[0]) || !bytes.Equal(k, f.arts[1]) || !bytes.Equal(i, f.arts[2]) {
			t.Errorf("entry %s exists but slot b is not complete", e.File)
		}
	}
}

// TestCutStateChanges cuts bless, mark bad, rollback and cleanup after each
// possible number of writes, on a disk where v2 is installed in slot b, and
// checks that slot a's entry (the fallback) is intact and good each time,
// the ESP fsck-clean but for lost clusters, and that the change completes
// when run again after Cleanup.
func TestCutStateChanges(t *testing.T) {
	t.Run("systemd-boot", func(t *testing.T) { cutStateChanges(t, getFixture(t)) })
	t.Run("grub", func(t *testing.T) { cutStateChanges(t, getGrubFixture(t)) })
	t.Run("u-boot", func(t *testing.T) { cutStateChanges(t, getUBootFixture(t)) })
}

func cutStateChanges(t *testing.T, f *fixture) {
	orig, err := os.ReadFile(f.disk)
	if err != nil {
		t.Fatal(err)
	}
	// v2 in slot b, as a trial.
	d0 := newCOW(orig)
	tg, err := install.OpenDisk(d0, int64(len(orig)), epoch)
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
	base := bytes.Clone(orig)
	for pg, p := range d0.pages {
		copy(base[pg*page:], p)
	}
	ops := []struct {
		name string
		do   func(tg *install.Target) error
		want string // slot b's state after
	}{
		// A rename to a longer name (keel-b+3.conf → keel-b+0-0.conf)
		// writes the new name before it gives up the old one
		// (image/fat's doc): no cut loses slot b's entry.
		{"bless b", func(tg *install.Target) error { return tg.Loader.MarkGood(tg.ESP, "b") }, "good"},
		{"mark b bad", func(tg *install.Target) error { return tg.Loader.MarkBad(tg.ESP, "b") }, "bad"},
		{"remove b", func(tg *install.Target) error { return tg.Loader.RemoveEntry(tg.ESP, "b") }, "none"},
		{"roll back to a from b", func(tg *install.Target) error {
			if err := tg.Loader.MarkGood(tg.ESP, "b"); err != nil {
				return err
			}
			_, err := install.Rollback(tg.ESP, tg.Loader, "b")
			return err
		}, "good"},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			for n := 1; ; n++ {
				d := newCOW(base)
				d.limit = n
				tg, err := install.OpenDisk(d, int64(len(base)), epoch)
				if err != nil {
					t.Fatal(err)
				}
				a := snapshot(t, tg, "a")
				err = op.do(tg)
				if err == nil {
					t.Logf("%d writes", d.writes)
					break
				}
				if !errors.Is(err, errCut) {
					t.Fatalf("cut after %d writes: %v", n, err)
				}
				d.limit = 0
				tg, err = install.OpenDisk(d, int64(len(base)), epoch)
				if err != nil {
					t.Fatalf("cut after %d writes: the disk does not open: %v", n, err)
				}
				fsckESP(t, d, tg.Layout, true)
				if _, err := tg.Loader.Cleanup(tg.ESP); err != nil {
					t.Fatalf("cut after %d writes: cleanup: %v", n, err)
				}
				after := snapshot(t, tg, "a")
				if op.name != "roll back to a from b" {
					a.diff(t, after)
				}
				st, err := install.Status(tg.ESP, tg.Loader, "a")
				if err != nil || st[0].State != "good" {
					t.Fatalf("cut after %d writes: slot a is %+v (%v)", n, st, err)
				}
				if st[1].State == "none" && op.want != "none" {
					t.Errorf("cut after %d writes: slot b's entry is lost", n)
					continue
				}
				if err := op.do(tg); err != nil {
					t.Fatalf("cut after %d writes: again: %v", n, err)
				}
				if st, _ := install.Status(tg.ESP, tg.Loader, "a"); st[1].State != op.want {
					t.Errorf("cut after %d writes: slot b is %s after running again, want %s", n, st[1].State, op.want)
				}
				fsckESP(t, d, tg.Layout, true)
			}
		})
	}
}
