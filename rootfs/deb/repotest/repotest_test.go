package repotest

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"keel/rootfs/deb/debtest"
)

// TestRealVerifier checks what this package builds with the tools Debian
// uses: gpgv accepts the InRelease with the keyring (two signatures, as
// Debian's), and rejects it altered.
func TestRealVerifier(t *testing.T) {
	gpgv, err := exec.LookPath("gpgv")
	if err != nil {
		t.Skip("gpgv not installed: apt-get install gpgv")
	}
	other := NewKey(t, "second archive key")
	r := New(t, Options{
		Debs: []debtest.Deb{{Control: [][2]string{{"Package", "hello"}, {"Version", "1.0"}}}},
	})
	if err := r.WriteRelease(r.ReleaseText(), r.Key, other); err != nil {
		t.Fatal(err)
	}
	// gpgv fails on a signature whose key it lacks (apt reads its status
	// lines instead), so it gets both keys; WriteKeyring's binary format
	// is what it reads.
	both := filepath.Join(t.TempDir(), "both.gpg")
	WriteKeyring(t, both, r.Key, other)
	in := filepath.Join(r.Dir, r.Dists("InRelease"))
	out, err := exec.Command(gpgv, "--keyring", both, in).CombinedOutput()
	if err != nil {
		t.Fatalf("gpgv --keyring %s %s: %v\n%s", both, in, err, out)
	}
	if n := strings.Count(string(out), "Good signature"); n != 2 {
		t.Errorf("%d good signatures, want 2; gpgv says:\n%s", n, out)
	}
	r.Tamper(t, r.Dists("InRelease"), func(b []byte) []byte {
		return []byte(strings.Replace(string(b), "Origin: keel-test", "Origin: keel-tesT", 1))
	})
	if out, err := exec.Command(gpgv, "--keyring", both, in).CombinedOutput(); err == nil {
		t.Errorf("gpgv accepted an altered InRelease:\n%s", out)
	}
}

// TestIndexes checks the Release against the files it lists, and the xz
// index with xz itself.
func TestIndexes(t *testing.T) {
	r := New(t, Options{
		Debs:         []debtest.Deb{{Control: [][2]string{{"Package", "hello"}, {"Version", "1:1.0~rc1"}}}},
		Compressions: []string{"xz", "gz"},
		ByHash:       true,
	})
	for name, s := range r.sums {
		if name == "main/binary-amd64/Packages" {
			continue // listed, not published, as on Debian's mirrors
		}
		b := r.Read(t, r.Dists(name))
		if len(b) != s.size || hexSum(b) != s.sha256 {
			t.Errorf("%s: %d bytes %s, the Release says %d %s", name, len(b), hexSum(b), s.size, s.sha256)
		}
		r.Read(t, r.Dists("main/binary-amd64/by-hash/SHA256/"+s.sha256))
	}
	if !strings.Contains(r.ReleaseText(), "Acquire-By-Hash: yes") {
		t.Error("no Acquire-By-Hash")
	}
	if p := r.Package("hello"); p == nil || p.Filename != "pool/main/h/hello/hello_1.0~rc1_amd64.deb" || hexSum(r.Read(t, p.Filename)) != p.SHA256 {
		t.Errorf("hello: %+v", p)
	}
	xz, err := exec.LookPath("xz")
	if err != nil {
		t.Skip("xz not installed: apt-get install xz-utils")
	}
	if out, err := exec.Command(xz, "-t", filepath.Join(r.Dir, r.Dists("main/binary-amd64/Packages.xz"))).CombinedOutput(); err != nil {
		t.Errorf("xz -t: %v\n%s", err, out)
	}
}
