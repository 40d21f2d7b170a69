package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"keel/bootloader/systemdboot"
	"keel/image/bundle"
	"keel/image/install"
)

// efivars is a fake efivarfs directory holding vars (name → value, each
// written after the 4 attribute bytes efivarfs shows).
func efivars(t *testing.T, vars map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, v := range vars {
		b := append(binary.LittleEndian.AppendUint32(nil, 7), v...)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// ucs2 is s as systemd-boot stores a string variable: UTF-16LE, NUL-ended.
func ucs2(s string) []byte {
	var b []byte
	for _, c := range utf16.Encode([]rune(s + "\x00")) {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return b
}

func TestBootedSlot(t *testing.T) {
	tests := []struct {
		name    string
		cmdline string
		vars    map[string][]byte
		slot    string // "": an error
	}{
		{"keel.slot on the command line", "root=PARTUUID=x keel.slot=b console=ttyS0", nil, "b"},
		{"the command line wins", "keel.slot=a", map[string][]byte{systemdboot.LoaderEntrySelectedVar: ucs2("keel-b+2-1.conf")}, "a"},
		{"a UKI's command line: the entry systemd-boot booted", "roothash=ab console=ttyS0", map[string][]byte{systemdboot.LoaderEntrySelectedVar: ucs2("keel-b+2-1.conf")}, "b"},
		{"a blessed entry", "console=ttyS0", map[string][]byte{systemdboot.LoaderEntrySelectedVar: ucs2("keel-a.conf")}, "a"},
		{"neither", "console=ttyS0", nil, ""},
		{"another loader's entry", "console=ttyS0", map[string][]byte{systemdboot.LoaderEntrySelectedVar: ucs2("debian-6.1.conf")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			boot, err := bootedSlot(systemdboot.Entries{}, tt.cmdline, efivars(t, tt.vars))
			slot := boot.Slot
			t.Logf("%q, %v", slot, err)
			if slot != tt.slot || (err != nil) != (tt.slot == "") {
				t.Errorf("bootedSlot = %q, %v; want %q", slot, err, tt.slot)
			}
		})
	}
}

func TestSecureBoot(t *testing.T) {
	tests := []struct {
		name string
		vars map[string][]byte
		want string
	}{
		{"enforced", map[string][]byte{secureBootVar: {1}}, "on"},
		{"not enforced", map[string][]byte{secureBootVar: {0}}, "off"},
		{"no variable", nil, "unknown"},
		{"no value", map[string][]byte{secureBootVar: {}}, "unknown"},
		{"not a boolean", map[string][]byte{secureBootVar: {2}}, "unknown"},
		{"too long", map[string][]byte{secureBootVar: {0, 1}}, "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := secureBoot(efivars(t, tt.vars)); got != tt.want {
				t.Errorf("secureBoot = %q, want %q", got, tt.want)
			}
		})
	}
	if got := secureBoot(filepath.Join(t.TempDir(), "not mounted")); got != "unknown" {
		t.Errorf("no efivarfs: %q", got)
	}
}

// TestWriteStatus: the lines a device's status adds: Secure Boot's state,
// and a slot's root hash when its image.json has one.
func TestWriteStatus(t *testing.T) {
	hash := strings.Repeat("3f", 32)
	slots := []install.SlotStatus{
		{Slot: "a", Booted: true, Name: "t", Version: "1.0.0", Generation: 1, State: "good", Entry: "keel-a.conf"},
		{Slot: "b", Name: "t", Version: "2.0.0", Generation: 2, State: "trial", TriesLeft: 2, Entry: "keel-b+2.conf", EFI: "/keel/b/keel.efi", RootHash: hash},
	}
	tests := []struct {
		name       string
		secureBoot string
		want, not  []string
	}{
		{"device", "on", []string{"booted: slot a\nsecure boot: on\nslot", "slot b root hash: " + hash + "\n"}, []string{"slot a root hash"}},
		{"device, state unknown", "unknown", []string{"secure boot: unknown\n"}, nil},
		{"disk image", "", []string{"slot b root hash: " + hash}, []string{"secure boot"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeStatus(&b, statusJSON{Booted: "a", SecureBoot: tt.secureBoot, Slots: slots}, []string{"a note"}); err != nil {
				t.Fatal(err)
			}
			t.Logf("\n%s", b.String())
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output does not contain %q", w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(b.String(), n) {
					t.Errorf("output contains %q", n)
				}
			}
			if !strings.HasSuffix(b.String(), "a note\n") {
				t.Errorf("the notes do not come last")
			}
		})
	}
}

// ukiBundle writes a bundle of v2's rootfs and a stand-in unified kernel
// image (nothing boots here), with a verity description, signed with the
// key beside v2.
func ukiBundle(t *testing.T, v2 string) (string, string) {
	t.Helper()
	f, err := os.Open(v2)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := bundle.OpenUnverified(f)
	if err != nil {
		t.Fatal(err)
	}
	_, r, err := b.Next()
	if err != nil {
		t.Fatal(err)
	}
	root, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	// A verity build's rootfs goes on with the hash tree: stand-in bytes.
	root = append(root, bytes.Repeat([]byte("hash tree "), 1000)...)
	sum := sha256.Sum256(root)
	m := b.Manifest
	m.BuildID = ""
	// A stand-in for the tree's description (informational: keelctl
	// shows the root hash): the superblock at the last 4096-byte boundary
	// inside the rootfs.
	off := int64(len(root)-1) / 4096 * 4096
	m.Verity = &bundle.Verity{RootHash: hex.EncodeToString(sum[:]), Salt: "00ff", DataBlocks: uint64(off / 4096), HashOffset: off}
	uki := []byte("MZ a unified kernel image of t 2.0.0")
	var srcs []bundle.Source
	for i, a := range [][]byte{root, uki} {
		srcs = append(srcs, bundle.Source{Name: bundle.UKIOrder[i], Size: int64(len(a)), Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(a)), nil }})
	}
	key, err := bundle.ReadPrivateKey(filepath.Join(filepath.Dir(v2), "release.key"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "t-2.0.0-uki.keel")
	if err := bundle.WriteFile(context.Background(), out, m, key, srcs); err != nil {
		t.Fatal(err)
	}
	return out, m.Verity.RootHash
}

// TestInstallUKI installs a bundle of a unified kernel image with keelctl
// and reads it back with status: an efi entry, and the root hash.
func TestInstallUKI(t *testing.T) {
	disk, v2, pub, _ := images(t)
	uki, hash := ukiBundle(t, v2)
	if code, out := keelctl(t, "--disk", disk, "install", uki, "--key", pub); code != 0 || !strings.Contains(out, "installed t 2.0.0 into slot b") {
		t.Fatalf("install: exit %d\n%s", code, out)
	}
	code, out := keelctl(t, "--disk", disk, "status")
	if code != 0 || !strings.Contains(out, "slot b root hash: "+hash+"\n") || strings.Contains(out, "slot a root hash") || strings.Contains(out, "secure boot") {
		t.Errorf("status: exit %d, want slot b's root hash %s and no Secure Boot line (a disk image)", code, hash)
	}
	s := status(t, disk)
	if brief(s) != "a a:good:1:0:1.0.0 b:trial:2:2:2.0.0" || s.Slots[1].RootHash != hash || s.Slots[1].EFI != "/keel/b/keel.efi" || s.Slots[0].EFI != "" || s.SecureBoot != "" {
		t.Errorf("status --json: %+v", s)
	}
	_, raw := keelctl(t, "--disk", disk, "status", "--json")
	var generic map[string]any
	if err := json.Unmarshal([]byte(raw), &generic); err != nil || generic["secure_boot"] != nil {
		t.Errorf("status --json of a disk image has secure_boot %v (%v)", generic["secure_boot"], err)
	}
	// b's image, blessed, then a rollback to a and back: the efi entry
	// gets a new generation and stays an efi entry.
	for _, args := range [][]string{{"mark-good", "b"}, {"rollback"}, {"rollback"}} {
		if code, out := keelctl(t, append([]string{"--disk", disk}, args...)...); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, out)
		}
	}
	if s := status(t, disk); brief(s) != "b a:good:3:0:1.0.0 b:good:4:0:2.0.0" || s.Slots[1].EFI != "/keel/b/keel.efi" || s.Slots[1].RootHash != hash {
		t.Errorf("after the rollbacks: %s %+v", brief(s), s)
	}
}
