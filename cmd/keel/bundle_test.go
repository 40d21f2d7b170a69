package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"keel/image/bundle"
	"keel/image/fat"
	"keel/image/inspect"
)

// keel runs the command line and returns its exit code and output.
func keel(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	t.Logf("keel %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	return code, stdout.String(), stderr.String()
}

func TestKeyGenerate(t *testing.T) {
	dir := t.TempDir()
	code, out, _ := keel(t, "key", "generate", "--dir", filepath.Join(dir, "keys"), "release")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	pub, err := bundle.ReadPublicKey(filepath.Join(dir, "keys", "release.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.ReadPrivateKey(filepath.Join(dir, "keys", "release.key")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "key id "+bundle.KeyID(pub)+"\n") {
		t.Errorf("output does not give the key id %s", bundle.KeyID(pub))
	}
	before, _ := os.ReadFile(filepath.Join(dir, "keys", "release.key"))
	if code, _, stderr := keel(t, "key", "generate", "--dir", filepath.Join(dir, "keys"), "release"); code != exitRefused || !strings.Contains(stderr, "refusing to overwrite") {
		t.Errorf("second generate: exit %d, %q", code, stderr)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "keys", "release.key")); !bytes.Equal(before, after) {
		t.Error("the private key changed")
	}
	if code, _, _ := keel(t, "key", "generate"); code != exitUsage {
		t.Errorf("no name: exit %d", code)
	}
}

// TestBuildBundle builds a small image with --sign-key and checks the
// bundle carries the bytes of slot A and of the ESP's kernel and initrd,
// that the image trusts the profile's key, and that inspect verifies it
// with that key and refuses it with another.
func TestBuildBundle(t *testing.T) {
	dir, writeBytes := buildDir(t)
	write := func(name, s string) string { return writeBytes(name, []byte(s)) }
	for _, name := range []string{"release", "other"} {
		if code, _, _ := keel(t, "key", "generate", "--dir", dir, name); code != exitOK {
			t.Fatalf("key generate %s: exit %d", name, code)
		}
	}
	profile := write("p.yaml", "name: t\nversion: 1.2.3\ncompatible: t-board\nkernel: {file: vmlinuz}\n"+
		"sources:\n  - {file: /etc/motd, content: \"hi\\n\"}\nupdate: {keys: [release.pub]}\n")
	disk := filepath.Join(dir, "out", "t.img")
	bundlePath := filepath.Join(dir, "out", "t-1.2.3.keel")

	// Without a key: no bundle, and a hint how to get one.
	code, out, _ := keel(t, "build", profile, "-o", disk)
	if code != exitOK {
		t.Fatalf("build: exit %d", code)
	}
	if _, err := os.Stat(bundlePath); err == nil || !strings.Contains(out, "--sign-key") {
		t.Errorf("unsigned build wrote a bundle or gave no hint: %v %q", err, out)
	}
	if code, _, stderr := keel(t, "build", profile, "-o", disk, "--sign-key", filepath.Join(dir, "nope.key")); code != exitUsage || !strings.Contains(stderr, "nope.key") {
		t.Errorf("missing key: exit %d %q", code, stderr)
	}

	code, out, _ = keel(t, "build", profile, "-o", disk, "--sign-key", filepath.Join(dir, "release.key"))
	if code != exitOK {
		t.Fatalf("build --sign-key: exit %d", code)
	}
	if !strings.Contains(out, "update bundle "+bundlePath) {
		t.Errorf("summary does not name the bundle:\n%s", out)
	}
	pub, _ := bundle.ReadPublicKey(filepath.Join(dir, "release.pub"))
	got := readBundle(t, bundlePath, pub)
	m := got.manifest
	if m.Name != "t" || m.Version != "1.2.3" || m.Compatible != "t-board" || m.Arch != "x86_64" || m.BuildID != bundle.BuildID(m.Artifacts) || len(m.BuildID) != 32 {
		t.Errorf("manifest %+v", m)
	}
	if !regexp.MustCompile(`build id ` + m.BuildID).MatchString(out) {
		t.Errorf("summary does not give the build id %s", m.BuildID)
	}

	// The artifacts are the disk's bytes.
	img, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := inspect.File(disk)
	if err != nil {
		t.Fatal(err)
	}
	part := func(label string) []byte {
		for _, p := range rep.Partitions {
			if p.Label == label {
				return img[p.Start : p.Start+p.Size]
			}
		}
		t.Fatalf("no partition %s", label)
		return nil
	}
	slotA := part("root-a")
	if root := got.artifacts[bundle.Rootfs]; len(root) == 0 || !bytes.Equal(root, slotA[:len(root)]) || string(root[:4]) != "hsqs" {
		t.Errorf("rootfs artifact (%d bytes) is not slot A's squashfs", len(root))
	}
	esp, err := fat.Open(readOnlyMem{bytes.NewReader(part("esp"))}, int64(len(part("esp"))), fat.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, file := range map[string]string{bundle.Kernel: "/keel/a/vmlinuz", bundle.Initrd: "/keel/a/initrd"} {
		b, err := esp.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.artifacts[name], b) {
			t.Errorf("%s artifact (%d bytes) is not the ESP's %s (%d bytes)", name, len(got.artifacts[name]), file, len(b))
		}
	}

	// The image trusts the profile's key, at the path the installer reads.
	if _, err := exec.LookPath("unsquashfs"); err == nil {
		sq := filepath.Join(dir, "root.squashfs")
		os.WriteFile(sq, got.artifacts[bundle.Rootfs], 0o644)
		b, err := exec.Command("unsquashfs", "-cat", sq, "etc/keel/keys/release.pub").Output()
		if k, perr := bundle.ParsePublicKey(b); err != nil || perr != nil || !k.Equal(pub) {
			t.Errorf("/etc/keel/keys/release.pub in the image: %v %v", err, perr)
		}
	} else {
		t.Log("unsquashfs not installed: the baked-in key is not checked")
	}

	// Same inputs, same bundle.
	first, _ := os.ReadFile(bundlePath)
	if code, _, _ := keel(t, "build", profile, "-o", disk, "--sign-key", filepath.Join(dir, "release.key")); code != exitOK {
		t.Fatal("second build failed")
	}
	if second, _ := os.ReadFile(bundlePath); !bytes.Equal(first, second) {
		t.Error("two builds of the same inputs give different bundles")
	}

	// Tampered copies: a byte of the manifest, the last byte of the bundle (initrd).
	tamper := func(name string, off func(b []byte) int) string {
		b := bytes.Clone(first)
		b[off(b)] ^= 1
		return write(name, string(b))
	}
	badManifest := tamper("bad-manifest.keel", func(b []byte) int { return bytes.Index(b, []byte(`"t-board"`)) + 1 })
	badInitrd := tamper("bad-initrd.keel", func(b []byte) int { return len(b) - 1 })

	t.Run("inspect", func(t *testing.T) {
		tests := []struct {
			name string
			args []string
			code int
			want string
		}{
			{"no key", []string{bundlePath}, exitOK, "signature not checked"},
			{"good key", []string{bundlePath, "--key", filepath.Join(dir, "release.pub")}, exitOK, `signature\s+verified with key ` + bundle.KeyID(pub)},
			{"good among others", []string{bundlePath, "--key", filepath.Join(dir, "other.pub"), "--key", filepath.Join(dir, "release.pub"), "--check"}, exitOK, `artifacts\s+verified`},
			{"wrong key", []string{bundlePath, "--key", filepath.Join(dir, "other.pub")}, exitFailure, `signature does not verify with the given key\(s\): signed by an untrusted key`},
			{"flipped bit in manifest", []string{badManifest, "--key", filepath.Join(dir, "release.pub")}, exitFailure, `bad signature: manifest does not verify`},
			{"flipped bit in initrd", []string{badInitrd, "--key", filepath.Join(dir, "release.pub"), "--check"}, exitFailure, `hash mismatch: artifact initrd`},
			{"private key given", []string{bundlePath, "--key", filepath.Join(dir, "release.key")}, exitUsage, "this is a private key"},
			{"not a bundle", []string{profile}, exitFailure, "not a keel bundle"},
			{"missing", []string{filepath.Join(dir, "nope.keel")}, exitFailure, "no such file"},
			{"no file", nil, exitUsage, "accepts 1 arg"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				code, out, stderr := keel(t, append([]string{"bundle", "inspect"}, tt.args...)...)
				if code != tt.code {
					t.Errorf("exit %d, want %d", code, tt.code)
				}
				if !regexp.MustCompile(tt.want).MatchString(out + stderr) {
					t.Errorf("output does not say %q", tt.want)
				}
				if tt.code != exitUsage && tt.name != "not a bundle" && tt.name != "missing" && !strings.Contains(out, "1.2.3") {
					t.Error("manifest not shown")
				}
			})
		}
		code, out, _ := keel(t, "bundle", "inspect", "--json", bundlePath, "--key", filepath.Join(dir, "release.pub"))
		var rep bundleReport
		if err := json.Unmarshal([]byte(out), &rep); code != exitOK || err != nil || !rep.Verified || rep.Manifest.BuildID != m.BuildID {
			t.Errorf("--json: exit %d, %v, %+v", code, err, rep)
		}
	})
}

type bundleContent struct {
	manifest  bundle.Manifest
	artifacts map[string][]byte
}

func readBundle(t *testing.T, path string, pub ed25519.PublicKey) bundleContent {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br, err := bundle.Open(f, []ed25519.PublicKey{pub})
	if err != nil {
		t.Fatal(err)
	}
	c := bundleContent{manifest: br.Manifest, artifacts: map[string][]byte{}}
	for {
		a, r, err := br.Next()
		if err == io.EOF {
			return c
		}
		if err != nil {
			t.Fatal(err)
		}
		if c.artifacts[a.Name], err = io.ReadAll(r); err != nil {
			t.Fatal(err)
		}
	}
}

type readOnlyMem struct{ *bytes.Reader }

func (readOnlyMem) WriteAt([]byte, int64) (int, error) { return 0, fmt.Errorf("read-only") }

// TestBundleInspectSets: keel bundle inspect names the artifact set a
// bundle carries, and shows the verity root hash when the manifest has
// one; --json has both.
func TestBundleInspectSets(t *testing.T) {
	dir := t.TempDir()
	pub, key, err := bundle.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := bundle.WriteKeyPair(dir, "release", pub, key); err != nil {
		t.Fatal(err)
	}
	root := bytes.Repeat([]byte("squashfs, then its hash tree "), 1000)
	hash := strings.Repeat("0123456789abcdef", 4)
	verity := &bundle.Verity{RootHash: hash, Salt: "5a5a", DataBlocks: 4, HashOffset: 4 * 4096}
	tests := []struct {
		name   string
		arts   []string
		verity *bundle.Verity
		set    string
		want   map[string]string // label → value, "" for no such line
	}{
		{"unified kernel image with verity", bundle.UKIOrder, verity, "uki", map[string]string{
			"boots":            "a unified kernel image (rootfs, uki)",
			"verity root hash": hash,
			"verity":           "4 data blocks, hash tree at byte 16384, salt 5a5a",
			"uki":              "6 " + sha(t, "MZ uki"),
			"kernel":           "",
		}},
		{"kernel and initrd", bundle.InstallOrder, nil, "kernel+initrd", map[string]string{
			"boots":            "a kernel and an initrd (rootfs, kernel, initrd)",
			"verity root hash": "",
			"verity":           "",
			"initrd":           "9 " + sha(t, "MZ initrd"),
			"uki":              "",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var srcs []bundle.Source
			for _, n := range tt.arts {
				b := []byte("MZ " + n)
				if n == bundle.Rootfs {
					b = root
				}
				srcs = append(srcs, bundle.Source{Name: n, Size: int64(len(b)), Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }})
			}
			file := filepath.Join(dir, tt.set+".keel")
			m := bundle.Manifest{Name: "t", Version: "1.0.0", Compatible: "t", Arch: "x86_64", Verity: tt.verity}
			if err := bundle.WriteFile(context.Background(), file, m, key, srcs); err != nil {
				t.Fatal(err)
			}
			code, out, _ := keel(t, "bundle", "inspect", file, "--key", filepath.Join(dir, "release.pub"), "--check")
			if code != exitOK {
				t.Fatalf("exit %d", code)
			}
			for label, want := range tt.want {
				if got := lineValue(out, label); got != want {
					t.Errorf("%s: %q, want %q", label, got, want)
				}
			}
			code, out, _ = keel(t, "bundle", "inspect", file, "--json")
			var rep bundleReport
			if code != exitOK || json.Unmarshal([]byte(out), &rep) != nil {
				t.Fatalf("--json: exit %d", code)
			}
			if rep.Set != tt.set || (tt.verity == nil) != (rep.Manifest.Verity == nil) || tt.verity != nil && *rep.Manifest.Verity != *tt.verity {
				t.Errorf("--json: set %q, verity %+v; want %q, %+v", rep.Set, rep.Manifest.Verity, tt.set, tt.verity)
			}
		})
	}
}

// lineValue is what follows label in a tabwriter line of out, with its
// columns one space apart ("" if no line has that label).
func lineValue(out, label string) string {
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, label+"  "); ok {
			return strings.Join(strings.Fields(rest), " ")
		}
	}
	return ""
}

func sha(t *testing.T, s string) string {
	t.Helper()
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
