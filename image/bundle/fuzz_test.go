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
	"strings"
	"testing"
)

// smallBundle is a valid bundle signed with testKey(t, 1) whose artifacts
// are a few bytes, so the fuzzer's mutations reach every part of it.
func smallBundle(t testing.TB) []byte {
	return smallBundleOf(t, InstallOrder, nil)
}

// smallUKIBundle is smallBundle of the second artifact set, with a verity
// description (its rootfs is 3 × 4096 bytes so that the description fits).
func smallUKIBundle(t testing.TB) []byte {
	v := &Verity{RootHash: strings.Repeat("cd", 32), Salt: "5a5a", DataBlocks: 2, HashOffset: 2 << 12}
	return smallBundleOf(t, UKIOrder, v)
}

func smallBundleOf(t testing.TB, order []string, v *Verity) []byte {
	_, priv := testKey(t, 1)
	var srcs []Source
	for _, name := range order {
		b := []byte(name + " bytes")
		if name == Rootfs && v != nil {
			b = bytes.Repeat([]byte("r"), 3<<12)
		}
		srcs = append(srcs, Source{Name: name, Size: int64(len(b)), Open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(b)), nil
		}})
	}
	m := testManifest
	m.Verity = v
	var w bytes.Buffer
	if err := Write(context.Background(), &w, m, priv, srcs); err != nil {
		t.Fatal(err)
	}
	return w.Bytes()
}

// edit is how both targets take their input: a seed, two patches written
// over it (at offsets modulo its length), a cut of its end and bytes
// appended. The fuzzer minimises every input that finds new coverage; on
// whole bundles of a few hundred bytes that took 5 to 13 s each (a fresh
// 3 s run made 12 executions), on patches it takes milliseconds.
func edit(seed []byte, off1 uint16, p1 []byte, off2 uint16, p2 []byte, cut uint16, tail []byte) []byte {
	b := bytes.Clone(seed)
	if len(b) > 0 {
		copy(b[int(off1)%len(b):], p1)
		copy(b[int(off2)%len(b):], p2)
		b = b[:len(b)-int(cut)%(len(b)+1)]
	}
	return append(b, tail...)
}

// FuzzOpen feeds damaged bundles to Open and the artifact readers: they
// must refuse with one of the package's errors, never panic or hang, and
// never hand out more bytes than the manifest declares. The seeds are a
// good bundle and an unsigned header (see edit).
func FuzzOpen(f *testing.F) {
	pub, _ := testKey(f, 1)
	good := smallBundle(f)
	seeds := [][]byte{good, append(append([]byte(Magic), 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0), "{}"...), smallUKIBundle(f)}
	none := []byte{}
	f.Add(uint8(2), uint16(0), none, uint16(0), none, uint16(0), none)
	f.Add(uint8(2), uint16(0), none, uint16(0), none, uint16(4), []byte("junk")) // the uki cut, then junk
	f.Add(uint8(0), uint16(0), none, uint16(0), none, uint16(0), none)
	f.Add(uint8(1), uint16(0), none, uint16(0), none, uint16(0), none)
	f.Add(uint8(0), uint16(0), none, uint16(0), none, uint16(len(good)-headerSize+3), none)                             // the header cut
	f.Add(uint8(0), uint16(0), none, uint16(0), none, uint16(5), none)                                                  // the initrd cut
	f.Add(uint8(0), uint16(len(good)-len("kernel bytesinitrd bytes")-1), []byte("X"), uint16(0), none, uint16(0), none) // the rootfs changed
	f.Add(uint8(0), uint16(12), []byte{0, 0, 0, 3}, uint16(16), []byte{0, 0, 0, 0}, uint16(0), []byte("junk"))          // lengths, trailing bytes
	f.Fuzz(func(t *testing.T, seed uint8, off1 uint16, p1 []byte, off2 uint16, p2 []byte, cut uint16, tail []byte) {
		b := edit(seeds[int(seed)%len(seeds)], off1, p1, off2, p2, cut, tail)
		for _, open := range []func(io.Reader) (*Reader, error){
			func(r io.Reader) (*Reader, error) { return Open(r, []ed25519.PublicKey{pub}) },
			OpenUnverified,
		} {
			br, err := open(bytes.NewReader(b))
			if err != nil {
				if !known(err) {
					t.Fatalf("Open: unexpected error %v", err)
				}
				continue
			}
			var total int64
			for {
				a, r, err := br.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					if !known(err) {
						t.Fatalf("Next: unexpected error %v", err)
					}
					break
				}
				n, err := io.Copy(io.Discard, r)
				total += n
				if n > a.Size {
					t.Fatalf("artifact %s: read %d bytes of %d", a.Name, n, a.Size)
				}
				if err != nil {
					if !known(err) {
						t.Fatalf("artifact %s: unexpected error %v", a.Name, err)
					}
					break
				}
			}
			if total > int64(len(b)) {
				t.Fatalf("read %d artifact bytes from %d", total, len(b))
			}
		}
	})
}

func known(err error) bool {
	for _, e := range []error{ErrBadSignature, ErrUnknownKey, ErrNoSignature, ErrHashMismatch, ErrTruncated, ErrCorrupt} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// signedBundle is a bundle of the given manifest bytes, signed with key,
// followed by stream: what Write makes, for any manifest.
func signedBundle(raw []byte, key ed25519.PrivateKey, stream []byte) []byte {
	b := []byte(Magic)
	b = binary.BigEndian.AppendUint32(b, Format)
	b = binary.BigEndian.AppendUint32(b, uint32(len(raw)))
	b = binary.BigEndian.AppendUint32(b, sigSize)
	b = append(b, raw...)
	id := sha256.Sum256(key.Public().(ed25519.PublicKey))
	b = append(b, id[:keyIDSize]...)
	b = append(b, ed25519.Sign(key, raw)...)
	return append(b, stream...)
}

// FuzzManifest signs whatever manifest the fuzzer makes, so that Open's
// verified path reaches the manifest parser and the artifact stream, which
// FuzzOpen's changes to a signed bundle almost never do (they break the
// signature). The manifest and the artifact stream are each a seed edited
// (see edit); with fix set, the artifacts' hashes are then rewritten to
// those of the stream's bytes at their sizes, so that whole bundles
// verify too. A bundle Open accepts has a manifest that Check passes; an
// artifact read to its end without error has exactly its size and hash;
// after the last one, Next ends the stream (io.EOF) only when nothing
// follows or the stream is Padded; every error is one of the package's.
func FuzzManifest(f *testing.F) {
	pub, priv := testKey(f, 1)
	good := smallBundle(f)
	br, err := OpenUnverified(bytes.NewReader(good))
	if err != nil {
		f.Fatal(err)
	}
	uki := smallUKIBundle(f)
	ubr, err := OpenUnverified(bytes.NewReader(uki))
	if err != nil {
		f.Fatal(err)
	}
	manifests := [][]byte{br.Raw,
		[]byte(`{"format":1,"name":"n","version":"1","compatible":"n","arch":"x86_64","artifacts":[{"name":"rootfs","size":3},{"name":"kernel","size":0},{"name":"initrd","size":2}]}`),
		ubr.Raw,
		[]byte(`{"format":1,"name":"n","version":"1","compatible":"n","arch":"x86_64","artifacts":[{"name":"rootfs","size":4097},{"name":"uki","size":2}],"verity":{"root_hash":"","salt":"","data_blocks":1,"hash_offset":4096}}`)}
	streams := [][]byte{good[headerSize+len(br.Raw)+sigSize:], []byte("abcde"), uki[headerSize+len(ubr.Raw)+sigSize:]}
	none := []byte{}
	f.Add(uint8(0), uint16(0), none, uint16(0), uint8(0), uint16(0), none, uint16(0), none, false, false)
	f.Add(uint8(0), uint16(0), none, uint16(0), uint8(0), uint16(0), none, uint16(0), []byte("junk"), false, false)
	f.Add(uint8(0), uint16(0), none, uint16(0), uint8(0), uint16(0), none, uint16(0), []byte("junk"), false, true)
	f.Add(uint8(0), uint16(0), none, uint16(0), uint8(0), uint16(0), none, uint16(1), none, false, false)
	f.Add(uint8(1), uint16(0), none, uint16(0), uint8(1), uint16(0), none, uint16(0), none, true, false)
	f.Add(uint8(1), uint16(0), none, uint16(0), uint8(1), uint16(1), []byte("X"), uint16(0), none, true, true)
	f.Add(uint8(1), uint16(0), none, uint16(0), uint8(1), uint16(0), none, uint16(0), none, false, false)
	f.Add(uint8(2), uint16(0), none, uint16(0), uint8(2), uint16(0), none, uint16(0), none, false, false)
	f.Add(uint8(2), uint16(0), none, uint16(0), uint8(2), uint16(0), none, uint16(0), []byte("junk"), false, true)
	f.Add(uint8(3), uint16(0), none, uint16(0), uint8(1), uint16(0), none, uint16(0), none, true, false)
	f.Fuzz(func(t *testing.T, mi uint8, mOff uint16, mPatch []byte, mCut uint16, si uint8, sOff uint16, sPatch []byte, sCut uint16, tail []byte, fix, padded bool) {
		raw := edit(manifests[int(mi)%len(manifests)], mOff, mPatch, 0, nil, mCut, nil)
		stream := edit(streams[int(si)%len(streams)], sOff, sPatch, 0, nil, sCut, tail)
		if fix {
			raw = fixHashes(raw, stream)
		}
		b := signedBundle(raw, priv, stream)
		br, err := Open(bytes.NewReader(b), []ed25519.PublicKey{pub})
		if err != nil {
			if !known(err) || errors.Is(err, ErrBadSignature) || errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrNoSignature) {
				t.Fatalf("Open of a well-signed bundle: %v", err)
			}
			return
		}
		if err := br.Manifest.Check(); err != nil || br.KeyID != KeyID(pub) {
			t.Fatalf("opened with key %q a manifest Check refuses: %v", br.KeyID, err)
		}
		br.Padded = padded
		var read int64
		for {
			a, r, err := br.Next()
			if err == io.EOF {
				if rest := int64(len(stream)) - read; rest > 0 && !padded {
					t.Fatalf("end of the bundle with %d bytes after the last artifact", rest)
				}
				return
			}
			if err != nil {
				if !known(err) {
					t.Fatalf("Next: unexpected error %v", err)
				}
				if errors.Is(err, ErrCorrupt) && (padded || read == int64(len(stream))) {
					t.Fatalf("Next: %v, with nothing after the last artifact or a padded stream", err)
				}
				return
			}
			got, err := io.ReadAll(r)
			read += int64(len(got))
			if err != nil {
				if !known(err) {
					t.Fatalf("artifact %s: unexpected error %v", a.Name, err)
				}
				return
			}
			if sum := sha256.Sum256(got); int64(len(got)) != a.Size || hex.EncodeToString(sum[:]) != a.SHA256 {
				t.Fatalf("artifact %s: read %d bytes with sha256 %x; manifest: %d bytes, %s", a.Name, len(got), sum, a.Size, a.SHA256)
			}
		}
	})
}

// fixHashes rewrites the artifacts' hashes in a manifest to those of
// consecutive slices of stream at the artifacts' sizes, as far as the
// stream goes. A manifest that does not decode is returned as it is.
func fixHashes(raw, stream []byte) []byte {
	var m Manifest
	if json.Unmarshal(raw, &m) != nil {
		return raw
	}
	for i, a := range m.Artifacts {
		if a.Size < 0 || a.Size > int64(len(stream)) {
			break
		}
		sum := sha256.Sum256(stream[:a.Size])
		m.Artifacts[i].SHA256 = hex.EncodeToString(sum[:])
		stream = stream[a.Size:]
	}
	b, err := json.Marshal(m)
	if err != nil {
		return raw
	}
	return b
}
