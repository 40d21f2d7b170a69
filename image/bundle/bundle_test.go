package bundle

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// testKey is fixed so bundles (and the fuzz seeds) are the same every run.
func testKey(t testing.TB, seed byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return priv.Public().(ed25519.PublicKey), priv
}

// testArtifacts are real files: an odd-sized rootfs larger than the copy
// buffer, a small kernel, an empty initrd (sizes of 0 must work).
func testArtifacts(t testing.TB) (map[string][]byte, []Source) {
	t.Helper()
	dir := t.TempDir()
	content := map[string][]byte{
		Rootfs: bytes.Repeat([]byte("squashfs block "), 100_003),
		Kernel: []byte("MZ not really a kernel"),
		Initrd: {},
	}
	var srcs []Source
	for _, name := range InstallOrder {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content[name], 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := FileSource(name, p)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, s)
	}
	return content, srcs
}

var testManifest = Manifest{Name: "busybox", Version: "1.2.0", Compatible: "busybox", Arch: "x86_64", BuildID: "00112233445566778899aabbccddeeff"}

func writeBundle(t testing.TB, key ed25519.PrivateKey) ([]byte, map[string][]byte) {
	t.Helper()
	content, srcs := testArtifacts(t)
	var b bytes.Buffer
	if err := Write(context.Background(), &b, testManifest, key, srcs); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), content
}

// readAll reads every artifact and returns their bytes, or the first error.
func readAll(br *Reader) (map[string][]byte, error) {
	got := map[string][]byte{}
	for {
		a, r, err := br.Next()
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		b, err := io.ReadAll(r)
		got[a.Name] = b
		if err != nil {
			return got, err
		}
	}
}

func TestRoundTrip(t *testing.T) {
	pub, priv := testKey(t, 1)
	other, _ := testKey(t, 2)
	b, content := writeBundle(t, priv)
	for _, tt := range []struct {
		name string
		r    func() io.Reader
	}{
		{"file", func() io.Reader {
			p := filepath.Join(t.TempDir(), "b.keel")
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			return f
		}},
		// A pipe cannot seek and hands out small, uneven reads.
		{"pipe", func() io.Reader {
			pr, pw := io.Pipe()
			go func() {
				for rest := b; len(rest) > 0; {
					n := min(len(rest), 4093)
					pw.Write(rest[:n])
					rest = rest[n:]
				}
				pw.Close()
			}()
			t.Cleanup(func() { pr.Close() })
			return struct{ io.Reader }{pr} // hide any other method
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			br, err := Open(tt.r(), []ed25519.PublicKey{other, pub})
			if err != nil {
				t.Fatal(err)
			}
			if br.KeyID != KeyID(pub) || br.Signer != br.KeyID {
				t.Errorf("KeyID %q Signer %q, want %q", br.KeyID, br.Signer, KeyID(pub))
			}
			m := br.Manifest
			if m.Format != Format || m.Name != "busybox" || m.Version != "1.2.0" || m.Compatible != "busybox" || m.Arch != "x86_64" || m.BuildID != testManifest.BuildID {
				t.Errorf("manifest %+v", m)
			}
			if !bytes.Contains(b, br.Raw) || !strings.Contains(string(br.Raw), `"build_id"`) {
				t.Errorf("Raw is not the manifest's bytes: %s", br.Raw)
			}
			got, err := readAll(br)
			if err != nil {
				t.Fatal(err)
			}
			for i, a := range m.Artifacts {
				if a.Name != InstallOrder[i] {
					t.Errorf("artifact %d is %s", i, a.Name)
				}
				sum := sha256.Sum256(content[a.Name])
				if a.Size != int64(len(content[a.Name])) || a.SHA256 != hex.EncodeToString(sum[:]) {
					t.Errorf("%s: manifest says %d %s", a.Name, a.Size, a.SHA256)
				}
				if !bytes.Equal(got[a.Name], content[a.Name]) {
					t.Errorf("%s: read %d bytes, not what was written", a.Name, len(got[a.Name]))
				}
			}
		})
	}
}

func TestBuildID(t *testing.T) {
	_, priv := testKey(t, 1)
	content, srcs := testArtifacts(t)
	m := testManifest
	m.BuildID = ""
	var b bytes.Buffer
	if err := Write(context.Background(), &b, m, priv, srcs); err != nil {
		t.Fatal(err)
	}
	br, err := OpenUnverified(&b)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for _, name := range InstallOrder {
		s := sha256.Sum256(content[name])
		h.Write(s[:])
	}
	if want := hex.EncodeToString(h.Sum(nil)[:16]); br.Manifest.BuildID != want {
		t.Errorf("build id %s, want %s", br.Manifest.BuildID, want)
	}
}

func TestDeterministic(t *testing.T) {
	_, priv := testKey(t, 1)
	a, _ := writeBundle(t, priv)
	b, _ := writeBundle(t, priv)
	if !bytes.Equal(a, b) {
		t.Fatal("two bundles of the same inputs differ")
	}
	// WriteFile gives the same bytes as Write, and leaves no temporary file.
	_, srcs := testArtifacts(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "x-1.keel")
	if err := WriteFile(context.Background(), p, testManifest, priv, srcs); err != nil {
		t.Fatal(err)
	}
	c, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, c) {
		t.Error("WriteFile and Write differ")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %v", ents)
	}
}

// TestRefusals checks that each kind of bad bundle is refused with its
// sentinel and a message saying what is wrong, at Open or, for the
// artifacts, at the end of the artifact that is bad.
func TestRefusals(t *testing.T) {
	pub, priv := testKey(t, 1)
	other, _ := testKey(t, 2)
	good, content := writeBundle(t, priv)
	mlen := int(binary.BigEndian.Uint32(good[12:]))
	manifestAt := headerSize
	artifactsAt := headerSize + mlen + sigSize
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	flip := func(off int) []byte { return edit(func(b []byte) []byte { b[off] ^= 0x10; return b }) }

	type tc struct {
		name    string
		bundle  []byte
		trusted []ed25519.PublicKey
		want    error
		msg     string // the error must contain this
		bad     string // artifact whose reader fails; "" for Open
	}
	tests := []tc{
		{"wrong key", good, []ed25519.PublicKey{other}, ErrUnknownKey, KeyID(pub), ""},
		{"no trusted keys", good, nil, ErrUnknownKey, "not among the 0 trusted", ""},
		{"no signature", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[16:], 0)
			return append(b[:artifactsAt-sigSize], b[artifactsAt:]...)
		}), nil, ErrNoSignature, "not signed", ""},
		{"flipped bit in manifest", flip(manifestAt + mlen/2), nil, ErrBadSignature, "does not verify", ""},
		{"flipped bit in signature", flip(artifactsAt - 1), nil, ErrBadSignature, "does not verify", ""},
		{"flipped bit in key id", flip(artifactsAt - sigSize), nil, ErrUnknownKey, "not among", ""},
		{"bad magic", flip(0), nil, ErrCorrupt, "not a keel bundle", ""},
		{"not a bundle", []byte("hello, world\n"), nil, ErrCorrupt, "not a keel bundle", ""},
		{"empty", nil, nil, ErrTruncated, "header", ""},
		{"unknown version", edit(func(b []byte) []byte { b[11] = 9; return b }), nil, ErrCorrupt, "format version 9", ""},
		{"huge manifest length", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[12:], 0xffffffff); return b }), nil, ErrCorrupt, "manifest length 4294967295", ""},
		{"manifest just over the cap", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[12:], MaxManifest+1); return b }), nil, ErrCorrupt, "at most", ""},
		{"zero manifest length", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[12:], 0); return b }), nil, ErrCorrupt, "manifest length 0", ""},
		{"odd signature length", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[16:], 64); return b }), nil, ErrCorrupt, "signature length 64", ""},
		{"trailing data", append(bytes.Clone(good), 0), nil, ErrCorrupt, "after the last artifact", ""},
	}
	// A flipped bit at the start, middle and end of each artifact.
	off := artifactsAt
	for _, name := range InstallOrder {
		size := len(content[name])
		for _, at := range []int{0, size / 2, size - 1} {
			if size == 0 {
				break
			}
			tests = append(tests, tc{"flipped bit in " + name, flip(off + at), nil, ErrHashMismatch, "artifact " + name + ": sha256", name})
		}
		off += size
	}
	// Truncated anywhere: in the header, manifest, signature, each artifact.
	for _, n := range []int{4, 8, 15, headerSize, manifestAt + 1, manifestAt + mlen, artifactsAt - 1, artifactsAt, artifactsAt + 1, artifactsAt + len(content[Rootfs]) - 1, len(good) - 1} {
		b := good[:n]
		want, bad := ErrTruncated, ""
		switch {
		case n >= artifactsAt+len(content[Rootfs]):
			bad = Kernel
		case n >= artifactsAt:
			bad = Rootfs
		}
		tests = append(tests, tc{"truncated at " + strconv.Itoa(n), b, nil, want, "truncated", bad})
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trusted := tt.trusted
			if trusted == nil && tt.name != "no trusted keys" {
				trusted = []ed25519.PublicKey{pub}
			}
			br, err := Open(bytes.NewReader(tt.bundle), trusted)
			if tt.bad != "" {
				if err != nil {
					t.Fatalf("Open: %v; the bundle's head is good", err)
				}
				var got map[string][]byte
				got, err = readAll(br)
				// Every artifact before the bad one reads back whole.
				for _, name := range InstallOrder {
					if name == tt.bad {
						break
					}
					if !bytes.Equal(got[name], content[name]) {
						t.Errorf("artifact %s before the bad one did not read back", name)
					}
				}
				// The error comes only once the bad artifact's reader reached
				// the artifact's end (or the stream's).
				if tt.want == ErrHashMismatch && len(got[tt.bad]) != len(content[tt.bad]) {
					t.Errorf("error after %d of %d bytes", len(got[tt.bad]), len(content[tt.bad]))
				}
				if !strings.Contains(errString(err), tt.bad) {
					t.Errorf("error %q does not name artifact %s", err, tt.bad)
				}
			} else if err == nil {
				_, err = readAll(br)
			}
			t.Log(err)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
		})
	}
}

// TestBadManifests signs manifests that are not sane, so it is the check
// after the signature that refuses them.
func TestBadManifests(t *testing.T) {
	pub, priv := testKey(t, 1)
	sha := strings.Repeat("ab", 32)
	three := func(f func(a []Artifact)) []Artifact {
		a := []Artifact{{Rootfs, 1, sha}, {Kernel, 1, sha}, {Initrd, 1, sha}}
		f(a)
		return a
	}
	base := testManifest
	base.Format = Format
	tests := []struct {
		name string
		edit func(m *Manifest)
		msg  string
	}{
		{"unknown format", func(m *Manifest) { m.Format = 2 }, "manifest format 2"},
		{"no compatible", func(m *Manifest) { m.Compatible = "" }, "no compatible"},
		{"no arch", func(m *Manifest) { m.Arch = "" }, "no arch"},
		{"missing artifact", func(m *Manifest) { m.Artifacts = m.Artifacts[:2] }, "2 artifacts"},
		{"wrong order", func(m *Manifest) { m.Artifacts = three(func(a []Artifact) { a[0], a[1] = a[1], a[0] }) }, `artifact 0 is "kernel"`},
		{"duplicate", func(m *Manifest) { m.Artifacts = three(func(a []Artifact) { a[2].Name = Kernel }) }, `artifact 2 is "kernel"`},
		{"unknown name", func(m *Manifest) { m.Artifacts = three(func(a []Artifact) { a[1].Name = "dtb" }) }, `"dtb"`},
		{"negative size", func(m *Manifest) { m.Artifacts = three(func(a []Artifact) { a[1].Size = -1 }) }, "size -1"},
		{"short hash", func(m *Manifest) { m.Artifacts = three(func(a []Artifact) { a[1].SHA256 = "abcd" }) }, "not 64 lowercase hex"},
		{"upper-case hash", func(m *Manifest) { m.Artifacts = three(func(a []Artifact) { a[1].SHA256 = strings.ToUpper(sha) }) }, "not 64 lowercase hex"},
		{"uki and initrd", func(m *Manifest) { m.Artifacts = three(func(a []Artifact) { a[1].Name = UKI }) }, "3 artifacts"},
		{"uki without rootfs", func(m *Manifest) { m.Artifacts = []Artifact{{UKI, 1, sha}, {Rootfs, 1, sha}} }, `artifact 0 is "uki"`},
		{"uki twice", func(m *Manifest) { m.Artifacts = []Artifact{{Rootfs, 1, sha}, {UKI, 1, sha}, {UKI, 1, sha}} }, "3 artifacts"},
		{"kernel without initrd", func(m *Manifest) { m.Artifacts = []Artifact{{Rootfs, 1, sha}, {Kernel, 1, sha}} }, "2 artifacts"},
		{"uki with a short hash", func(m *Manifest) { m.Artifacts = []Artifact{{Rootfs, 1, sha}, {UKI, 1, "ab"}} }, "not 64 lowercase hex"},
		{"verity: short root hash", func(m *Manifest) { m.Verity = verity(func(v *Verity) { v.RootHash = "abcd" }) }, "verity: root hash"},
		{"verity: upper-case root hash", func(m *Manifest) { m.Verity = verity(func(v *Verity) { v.RootHash = strings.ToUpper(sha) }) }, "verity: root hash"},
		{"verity: salt not hex", func(m *Manifest) { m.Verity = verity(func(v *Verity) { v.Salt = "xyz" }) }, "verity: salt"},
		{"verity: salt too long", func(m *Manifest) { m.Verity = verity(func(v *Verity) { v.Salt = strings.Repeat("00", 257) }) }, "verity: salt"},
		{"verity: no data blocks", func(m *Manifest) { m.Verity = verity(func(v *Verity) { v.DataBlocks = 0 }) }, "verity: no data blocks"},
		{"verity: hash offset past the rootfs", func(m *Manifest) { m.Verity = verity(func(v *Verity) { v.HashOffset = 1 << 20 }) }, "verity: hash offset"},
		{"verity: hash offset zero", func(m *Manifest) { m.Verity = verity(func(v *Verity) { v.HashOffset = 0 }) }, "verity: hash offset"},
		{"verity: data past the hash offset", func(m *Manifest) { m.Verity = verity(func(v *Verity) { v.DataBlocks = 3 }) }, "run past the hash offset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base
			m.Artifacts = three(func(a []Artifact) { a[0].Size = 3 << 12 })
			tt.edit(&m)
			raw := []byte(mustJSON(t, m))
			b := rawBundle(raw, priv)
			_, err := Open(bytes.NewReader(b), []ed25519.PublicKey{pub})
			t.Log(err)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %v, want ErrCorrupt saying %q", err, tt.msg)
			}
		})
	}
	// Write refuses to make such a bundle in the first place.
	_, srcs := testArtifacts(t)
	var buf bytes.Buffer
	if err := Write(context.Background(), &buf, testManifest, priv, srcs[:2]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Write of two artifacts: %v", err)
	}
	noArch := testManifest
	noArch.Arch = ""
	if err := Write(context.Background(), &buf, noArch, priv, srcs); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Write without arch: %v", err)
	}
	srcs[1].Size++
	if err := Write(context.Background(), &buf, testManifest, priv, srcs); err == nil || !strings.Contains(err.Error(), "shorter than its size") {
		t.Errorf("Write of a source shorter than its size: %v", err)
	}
}

// verity is a well-formed Verity for a rootfs of 3 × 4096 bytes (two data
// blocks, the tree after them), changed by edit.
func verity(edit func(v *Verity)) *Verity {
	v := &Verity{RootHash: strings.Repeat("cd", 32), Salt: strings.Repeat("5a", 32), DataBlocks: 2, HashOffset: 2 << 12}
	edit(v)
	return v
}

// TestUKI writes and reads a bundle of the second artifact set, a rootfs
// and a unified kernel image, with a verity description; the first set
// stays what it was.
func TestUKI(t *testing.T) {
	pub, priv := testKey(t, 1)
	content := map[string][]byte{
		Rootfs: bytes.Repeat([]byte("squashfs and its hash tree "), 10_000),
		UKI:    []byte("MZ a signed unified kernel image"),
	}
	var srcs []Source
	for _, name := range UKIOrder {
		b := content[name]
		srcs = append(srcs, Source{Name: name, Size: int64(len(b)), Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }})
	}
	m := testManifest
	m.Verity = &Verity{RootHash: strings.Repeat("0f", 32), Salt: strings.Repeat("a5", 32), DataBlocks: 60, HashOffset: 61 * 4096}
	var buf bytes.Buffer
	if err := Write(context.Background(), &buf, m, priv, srcs); err != nil {
		t.Fatal(err)
	}
	br, err := Open(bytes.NewReader(buf.Bytes()), []ed25519.PublicKey{pub})
	if err != nil {
		t.Fatal(err)
	}
	if !br.Manifest.UsesUKI() || strings.Join(br.Manifest.Order(), " ") != "rootfs uki" {
		t.Errorf("manifest %+v: UsesUKI %v, Order %v", br.Manifest, br.Manifest.UsesUKI(), br.Manifest.Order())
	}
	if v := br.Manifest.Verity; v == nil || *v != *m.Verity {
		t.Errorf("verity read back as %+v, want %+v", v, m.Verity)
	}
	want := `"verity":{"root_hash":"` + strings.Repeat("0f", 32) + `","salt":"` + strings.Repeat("a5", 32) + `","data_blocks":60,"hash_offset":249856}`
	if !strings.Contains(string(br.Raw), want) {
		t.Errorf("manifest %s does not contain %s", br.Raw, want)
	}
	got, err := readAll(br)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range content {
		if !bytes.Equal(got[name], b) {
			t.Errorf("%s: read %d bytes, wrote %d", name, len(got[name]), len(b))
		}
	}
	// The first set: no verity in the JSON, and it is not a UKI bundle.
	plain, _ := writeBundle(t, priv)
	br, err = Open(bytes.NewReader(plain), []ed25519.PublicKey{pub})
	if err != nil {
		t.Fatal(err)
	}
	if br.Manifest.UsesUKI() || strings.Join(br.Manifest.Order(), " ") != "rootfs kernel initrd" || br.Manifest.Verity != nil || strings.Contains(string(br.Raw), "verity") {
		t.Errorf("kernel bundle: UsesUKI %v, Order %v, manifest %s", br.Manifest.UsesUKI(), br.Manifest.Order(), br.Raw)
	}
	// A field the reader does not know, in the verity object, is refused
	// like one anywhere else in the manifest.
	um := testManifest
	um.Format = Format
	um.Artifacts = []Artifact{{Rootfs, 3 << 12, strings.Repeat("ab", 32)}, {UKI, 1, strings.Repeat("ab", 32)}}
	um.Verity = verity(func(*Verity) {})
	if _, err := Open(bytes.NewReader(rawBundle([]byte(mustJSON(t, um)), priv)), []ed25519.PublicKey{pub}); err != nil {
		t.Fatalf("a well-formed manifest: %v", err)
	}
	unknown := strings.Replace(mustJSON(t, um), `"data_blocks"`, `"hash_algorithm":"sha1","data_blocks"`, 1)
	if _, err := Open(bytes.NewReader(rawBundle([]byte(unknown), priv)), []ed25519.PublicKey{pub}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "hash_algorithm") {
		t.Errorf("verity with an unknown field: %v, want ErrCorrupt naming it", err)
	}
}

// TestNextSkips checks that Next reads past an artifact the caller did not
// finish, still checking its hash.
func TestNextSkips(t *testing.T) {
	pub, priv := testKey(t, 1)
	b, content := writeBundle(t, priv)
	br, err := Open(bytes.NewReader(b), []ed25519.PublicKey{pub})
	if err != nil {
		t.Fatal(err)
	}
	if _, r, err := br.Next(); err != nil {
		t.Fatal(err)
	} else if _, err := r.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	a, r, err := br.Next()
	if err != nil || a.Name != Kernel {
		t.Fatalf("second Next: %v %v", a, err)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, content[Kernel]) {
		t.Fatalf("kernel: %v", err)
	}
	if _, _, err := br.Next(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := br.Next(); err != io.EOF {
		t.Fatalf("after the last artifact: %v, want io.EOF", err)
	}
}

func TestOpenUnverified(t *testing.T) {
	pub, priv := testKey(t, 1)
	b, _ := writeBundle(t, priv)
	br, err := OpenUnverified(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if br.KeyID != "" || br.Signer != KeyID(pub) || br.Manifest.Name != "busybox" {
		t.Errorf("KeyID %q Signer %q manifest %+v", br.KeyID, br.Signer, br.Manifest)
	}
}

func rawBundle(raw []byte, priv ed25519.PrivateKey) []byte {
	b := []byte(Magic)
	b = binary.BigEndian.AppendUint32(b, Format)
	b = binary.BigEndian.AppendUint32(b, uint32(len(raw)))
	b = binary.BigEndian.AppendUint32(b, sigSize)
	b = append(b, raw...)
	id, _ := hex.DecodeString(KeyID(priv.Public().(ed25519.PublicKey)))
	b = append(b, id...)
	return append(b, ed25519.Sign(priv, raw)...)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func mustJSON(t *testing.T, m Manifest) string {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTrailing: a bundle ends with its last artifact. Anything after it,
// zero padding included, makes it corrupt, except on a stream marked
// Padded (a block device), which is read to the bundle's end and no
// further.
func TestTrailing(t *testing.T) {
	pub, priv := testKey(t, 1)
	good, _ := writeBundle(t, priv)
	tests := []struct {
		name   string
		tail   []byte
		padded bool
		want   error // from Next after the last artifact; nil: io.EOF
	}{
		{"nothing after", nil, false, nil},
		{"junk appended", []byte("junk"), false, ErrCorrupt},
		{"one zero byte", []byte{0}, false, ErrCorrupt},
		{"zeros to a whole MiB", make([]byte, 1<<20-len(good)%(1<<20)), false, ErrCorrupt},
		{"device: zeros to a whole MiB", make([]byte, 1<<20-len(good)%(1<<20)), true, nil},
		{"device: old data after the bundle", bytes.Repeat([]byte("old"), 1000), true, nil},
		{"device: nothing after", nil, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &countingReader{r: bytes.NewReader(append(bytes.Clone(good), tt.tail...))}
			br, err := Open(r, []ed25519.PublicKey{pub})
			if err != nil {
				t.Fatal(err)
			}
			br.Padded = tt.padded
			_, err = readAll(br)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("reading to the end: %v, want %v", err, tt.want)
			}
			if tt.padded && r.n != int64(len(good)) {
				t.Errorf("read %d bytes of a padded stream, want exactly the bundle's %d", r.n, len(good))
			}
		})
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
