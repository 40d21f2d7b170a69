package bundle

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/fuzz/FuzzOpen seeds")

// smallBundle is a valid bundle signed with testKey(t, 1) whose artifacts
// are a few bytes, so the fuzzer's mutations reach every part of it.
func smallBundle(t testing.TB) []byte {
	_, priv := testKey(t, 1)
	var srcs []Source
	for _, name := range InstallOrder {
		b := []byte(name + " bytes")
		srcs = append(srcs, Source{Name: name, Size: int64(len(b)), Open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(b)), nil
		}})
	}
	var w bytes.Buffer
	if err := Write(context.Background(), &w, testManifest, priv, srcs); err != nil {
		t.Fatal(err)
	}
	return w.Bytes()
}

// TestFuzzSeeds keeps the checked-in seeds in step with the format:
// go test ./image/bundle -run TestFuzzSeeds -update rewrites them.
func TestFuzzSeeds(t *testing.T) {
	good := smallBundle(t)
	seeds := map[string][]byte{
		"good":            good,
		"truncated-head":  good[:headerSize-3],
		"truncated-body":  good[:len(good)-5],
		"unsigned-header": append(append([]byte(Magic), 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0), "{}"...),
		"flipped-rootfs":  flipAt(good, len(good)-len("kernel bytesinitrd bytes")-1),
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	for name, b := range seeds {
		want := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b)
		p := filepath.Join(dir, name)
		if *update {
			if err := os.WriteFile(p, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is stale or missing (%v): run go test -run TestFuzzSeeds -update", p, err)
		}
	}
}

func flipAt(b []byte, off int) []byte {
	b = bytes.Clone(b)
	b[off] ^= 1
	return b
}

// FuzzOpen feeds arbitrary bytes to Open and the artifact readers: they
// must refuse with one of the package's errors, never panic or hang, and
// never hand out more bytes than the manifest declares.
func FuzzOpen(f *testing.F) {
	pub, _ := testKey(f, 1)
	f.Fuzz(func(t *testing.T, b []byte) {
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
