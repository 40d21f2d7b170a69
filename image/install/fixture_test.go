package install_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"keel/bootloader"
	"keel/bootloader/systemdboot"
	"keel/image/build"
	"keel/image/bundle"
	"keel/image/disk"
	"keel/image/install"
	"keel/profiles"
)

// fixture is built once per test binary: a v1 disk image (slot a) and the
// artifacts of a v2 build of the same profile, from keel's own pipeline with
// a fake kernel and keel-init (nothing here boots).
type fixture struct {
	dir     string
	disk    string // v1 image, never modified: tests copy it
	key     ed25519.PrivateKey
	pub     ed25519.PublicKey
	other   ed25519.PrivateKey // a key the image does not trust
	otherPb ed25519.PublicKey
	arts    [3][]byte // v2's rootfs, kernel, initrd
	v1, v2  bundle.Manifest
	// uki is v2 as the second artifact set: its rootfs with a stand-in
	// hash tree after it, and a unified kernel image. The image's bytes
	// stand in for one (nothing here boots; bootcheck matches files by
	// hash), as the kernel's do.
	uki [2][]byte
}

// ukiVerity is what a UKI bundle of the fixture says of its rootfs's
// verity tree: informational (Install copies the root hash to
// image.json), so a stand-in: the tree's superblock at the last 4096-byte
// boundary inside the rootfs, the data before it, and the rootfs's sha256
// as its root hash.
func ukiVerity(rootfs []byte) *bundle.Verity {
	h := sha256.Sum256(rootfs)
	off := int64(len(rootfs)-1) / 4096 * 4096
	return &bundle.Verity{RootHash: hex.EncodeToString(h[:]), Salt: "5a5a", DataBlocks: uint64(off / 4096), HashOffset: off}
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

const profileYAML = `name: t
version: %s
kernel: {file: vmlinuz}
sources:
  - {file: /etc/motd, content: "%s\n", mode: "0644"}
disk: {esp: 34MiB, slot: 4MiB, data: 16MiB}
`

func getFixture(t testing.TB) *fixture {
	t.Helper()
	if _, err := os.Stat(systemdboot.DefaultEFI); err != nil {
		t.Skip("systemd-boot not installed: apt-get install systemd-boot-efi")
	}
	fixOnce.Do(func() {
		fix, fixErr = makeFixture(profileYAML, func(dir, version string) error {
			if version != "1.0.0" {
				return nil
			}
			return os.WriteFile(filepath.Join(dir, "vmlinuz"), bytes.Repeat([]byte("not a kernel "), 3000), 0o644)
		})
	})
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fix
}

// loaderFixtures are the fixture built for other boot loaders, by the
// profile lines that choose them.
var loaderFixtures struct {
	sync.Mutex
	m map[string]*fixture
}

// getLoaderFixture is the fixture with the profile lines extra (another
// boot loader), built once per test binary.
func getLoaderFixture(t testing.TB, extra string) *fixture {
	t.Helper()
	loaderFixtures.Lock()
	defer loaderFixtures.Unlock()
	if f, ok := loaderFixtures.m[extra]; ok {
		return f
	}
	f, err := makeFixture(profileYAML+extra, func(dir, version string) error {
		if version != "1.0.0" {
			return nil
		}
		return os.WriteFile(filepath.Join(dir, "vmlinuz"), bytes.Repeat([]byte("not a kernel "), 3000), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if loaderFixtures.m == nil {
		loaderFixtures.m = map[string]*fixture{}
	}
	loaderFixtures.m[extra] = f
	return f
}

// getGrubFixture is the fixture with boot.loader grub, from the build
// host's GRUB files.
func getGrubFixture(t testing.TB) *fixture {
	t.Helper()
	for _, p := range []string{"/usr/lib/grub/x86_64-efi/monolithic/grubx64.efi", "/usr/lib/grub/i386-pc/boot.img"} {
		if _, err := os.Stat(p); err != nil {
			t.Skip("GRUB not installed: apt-get install grub-efi-amd64-bin grub-pc-bin")
		}
	}
	return getLoaderFixture(t, "boot: {loader: grub}\n")
}

// getUBootFixture is the fixture for aarch64 with boot.loader u-boot (a
// script keel compiles: nothing from the host).
func getUBootFixture(t testing.TB) *fixture {
	t.Helper()
	return getLoaderFixture(t, "arch: aarch64\nboot: {loader: u-boot}\n")
}

// makeFixture builds v1 and v2 of profile (a format string of the version
// and the content of /etc/motd) in a directory that prepare fills before
// each build.
func makeFixture(profile string, prepare func(dir, version string) error) (*fixture, error) {
	dir, err := os.MkdirTemp("", "keel-install-test-*")
	if err != nil {
		return nil, err
	}
	f := &fixture{dir: dir}
	if f.pub, f.key, err = bundle.GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	if f.otherPb, f.other, err = bundle.GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	ctx := context.Background()
	for _, v := range []string{"1.0.0", "2.0.0"} {
		if err := prepare(dir, v); err != nil {
			return nil, err
		}
		prof := filepath.Join(dir, "p-"+v+".yaml")
		if err := os.WriteFile(prof, []byte(fmt.Sprintf(profile, v, "hello from "+v)), 0o644); err != nil {
			return nil, err
		}
		p, err := profiles.Load(prof)
		if err != nil {
			return nil, err
		}
		out := filepath.Join(dir, "t-"+v+".img")
		res, err := build.Build(ctx, p, build.Options{Output: out, KeelInit: []byte("\x7fELF fake keel-init " + v), SignKey: f.key})
		if err != nil {
			return nil, err
		}
		bf, err := os.Open(res.Bundle)
		if err != nil {
			return nil, err
		}
		defer bf.Close()
		b, err := bundle.Open(bf, []ed25519.PublicKey{f.pub})
		if err != nil {
			return nil, err
		}
		if v == "1.0.0" {
			f.disk, f.v1 = out, b.Manifest
			continue
		}
		f.v2 = b.Manifest
		// The kernel set's artifacts by name: a build may put an index
		// first.
		for i, name := range bundle.InstallOrder {
			for {
				a, r, err := b.Next()
				if err != nil {
					return nil, err
				}
				if a.Name == name {
					if f.arts[i], err = io.ReadAll(r); err != nil {
						return nil, err
					}
					break
				}
			}
		}
	}
	// A verity build's rootfs is the squashfs, then the hash tree's
	// superblock and levels: here stand-in bytes.
	f.uki = [2][]byte{append(bytes.Clone(f.arts[0]), bytes.Repeat([]byte("hash tree "), 1000)...), append([]byte("MZ unified kernel image of 2.0.0 "), f.arts[1]...)}
	return f, nil
}

// bundleBytes writes a bundle of v2's artifacts with manifest fields changed
// by edit, signed with key.
func (f *fixture) bundleBytes(t *testing.T, key ed25519.PrivateKey, edit func(m *bundle.Manifest)) []byte {
	t.Helper()
	return f.bundleWith(t, key, edit, f.arts)
}

// bundleWith writes a bundle of the given artifacts.
func (f *fixture) bundleWith(t *testing.T, key ed25519.PrivateKey, edit func(m *bundle.Manifest), arts [3][]byte) []byte {
	t.Helper()
	return f.bundleOf(t, key, edit, bundle.InstallOrder, arts[:])
}

// ukiBundle writes a bundle of v2's rootfs and unified kernel image, with
// a verity description, manifest fields changed by edit.
func (f *fixture) ukiBundle(t *testing.T, key ed25519.PrivateKey, edit func(m *bundle.Manifest)) []byte {
	t.Helper()
	return f.ukiBundleWith(t, key, edit, f.uki)
}

// ukiBundleWith writes a bundle of the second artifact set.
func (f *fixture) ukiBundleWith(t *testing.T, key ed25519.PrivateKey, edit func(m *bundle.Manifest), arts [2][]byte) []byte {
	t.Helper()
	return f.bundleOf(t, key, func(m *bundle.Manifest) {
		m.Verity = ukiVerity(arts[0])
		if edit != nil {
			edit(m)
		}
	}, bundle.UKIOrder, arts[:])
}

// bundleOf writes a bundle of arts, named by order.
func (f *fixture) bundleOf(t *testing.T, key ed25519.PrivateKey, edit func(m *bundle.Manifest), order []string, arts [][]byte) []byte {
	t.Helper()
	m := bundle.Manifest{Name: f.v2.Name, Version: f.v2.Version, Compatible: f.v2.Compatible, Arch: f.v2.Arch}
	if edit != nil {
		edit(&m)
	}
	var srcs []bundle.Source
	for i, name := range order {
		b := arts[i]
		srcs = append(srcs, bundle.Source{Name: name, Size: int64(len(b)), Open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(b)), nil
		}})
	}
	var buf bytes.Buffer
	if err := bundle.Write(context.Background(), &buf, m, key, srcs); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// copyDisk gives a test its own copy of the v1 image.
func (f *fixture) copyDisk(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(f.disk)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// bootedState is everything of the booted slot that an install must not
// change: its partition, its files on the ESP and its entry, by sha256.
type bootedState map[string]string

func snapshot(t *testing.T, tg *install.Target, slot string) bootedState {
	t.Helper()
	s := bootedState{}
	p, _ := tg.Layout.Slot(slot)
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(tg.Disk, p.Start, p.Size)); err != nil {
		t.Fatal(err)
	}
	s["partition root-"+slot] = hex.EncodeToString(h.Sum(nil))
	for _, n := range []string{"vmlinuz", "initrd", "keel.efi", "image.json"} {
		s["/keel/"+slot+"/"+n] = hashFile(t, tg.ESP, "/keel/"+slot+"/"+n)
	}
	es, err := tg.Loader.Entries(tg.ESP)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Slot != slot {
			continue
		}
		// What the loader reads of the entry, its state included; and
		// for systemd-boot the file's bytes too.
		s["entry "+e.File] = fmt.Sprintf("%+v", e)
		if strings.HasSuffix(e.File, ".conf") {
			s["entry file "+e.File] = hashFile(t, tg.ESP, "/loader/entries/"+e.File)
		}
	}
	return s
}

func hashFile(t *testing.T, esp bootloader.ESP, p string) string {
	t.Helper()
	b, err := esp.ReadFile(p)
	if err != nil {
		return "missing: " + err.Error()
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (s bootedState) diff(t *testing.T, after bootedState) {
	t.Helper()
	for k, v := range s {
		if after[k] != v {
			t.Errorf("%s changed: %s -> %s", k, v, after[k])
		}
	}
	for k := range after {
		if _, ok := s[k]; !ok {
			t.Errorf("%s appeared", k)
		}
	}
}

var epoch = time.Unix(1700000000, 0).UTC()

func TestReadLayout(t *testing.T) {
	f := getFixture(t)
	d := open(t, f.copyDisk(t))
	want := []string{"esp", "root-a", "root-b", "data"}
	if len(d.Layout.Partitions) != len(want) {
		t.Fatalf("partitions %+v", d.Layout.Partitions)
	}
	for i, p := range d.Layout.Partitions {
		if p.Label != want[i] || p.Number != i+1 || p.GUID != disk.GUID([]byte("keel\x00t"), "partition "+want[i]) || p.Start%(1<<20) != 0 {
			t.Errorf("partition %d: %+v", i+1, p)
		}
	}
	if a, _ := d.Layout.Slot("a"); a.Size != 4<<20 || a.Type != disk.TypeRootX8664 {
		t.Errorf("slot a: %+v", a)
	}
}
