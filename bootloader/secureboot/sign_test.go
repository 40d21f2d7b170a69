package secureboot_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"keel/bootloader/internal/pecoff"
	"keel/bootloader/secureboot"
	"keel/bootloader/uki"
)

const (
	stubPath   = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
	loaderPath = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
	// The snakeoil PK/KEK/db of OVMF_VARS_4M.snakeoil.fd (Debian's ovmf);
	// the key is encrypted with the passphrase "snakeoil".
	snakeoilKey  = "/usr/share/ovmf/PkKek-1-snakeoil.key"
	snakeoilCert = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
)

var testTime = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s (%s): not installed", name, pkg)
	}
	return p
}

func readFile(t *testing.T, path, pkg string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s (%s): not installed", path, pkg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// keys generates a key hierarchy named name into a new directory.
func keys(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := secureboot.GenerateKeys(name, dir, testTime); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sbverify runs sbverify (sbsigntool) and reports whether it accepted.
func sbverify(t *testing.T, args ...string) (bool, string) {
	t.Helper()
	out, err := exec.Command(needTool(t, "sbverify", "sbsigntool"), args...).CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("sbverify: %v", err)
	}
	return err == nil, string(out)
}

// TestSign signs the stub, a UKI and systemd-boot with a generated db key
// and has sbverify and osslsigncode check the results.
func TestSign(t *testing.T) {
	stub := readFile(t, stubPath, "systemd-boot-efi")
	u, err := uki.Build(stub, uki.Sections{
		Linux:   bytes.Repeat([]byte("kernel"), 500001),
		Initrd:  bytes.Repeat([]byte("initrd"), 100003),
		Cmdline: []byte("console=ttyS0"),
		OSRel:   []byte("ID=keel\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := keys(t, "keel test")
	other := keys(t, "other")
	key, cert, err := secureboot.LoadKeyPair(filepath.Join(dir, "db.key"), filepath.Join(dir, "db.crt"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pe   []byte
	}{
		{"stub", stub},
		{"uki", u},
		{"systemd-boot", readFile(t, loaderPath, "systemd-boot-efi")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signed, err := secureboot.Sign(tt.pe, key, cert)
			if err != nil {
				t.Fatal(err)
			}
			again, err := secureboot.Sign(tt.pe, key, cert)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(signed, again) {
				t.Error("signing twice gives different bytes")
			}
			// Only the padding, the certificate table, its directory entry
			// and the checksum are new.
			f, err := pecoff.Parse(signed)
			if err != nil {
				t.Fatal(err)
			}
			if int(f.CertOffset)%8 != 0 || int(f.CertOffset+f.CertSize) != len(signed) || f.CertOffset < uint32(len(tt.pe)) {
				t.Errorf("certificate table at %#x, %#x bytes, in a %#x-byte file from %#x", f.CertOffset, f.CertSize, len(signed), len(tt.pe))
			}
			unsigned := bytes.Clone(signed[:len(tt.pe)])
			copy(unsigned[f.ChecksumOffset():], tt.pe[f.ChecksumOffset():f.ChecksumOffset()+4])
			d := f.DataDirOffset(pecoff.DirSecurity)
			copy(unsigned[d:], tt.pe[d:d+8])
			if !bytes.Equal(unsigned, tt.pe) {
				t.Error("signing changed the image beyond its certificate table and checksum")
			}

			path := writeFile(t, filepath.Join(t.TempDir(), tt.name+".signed.efi"), signed)
			if ok, out := sbverify(t, "--cert", filepath.Join(dir, "db.crt"), path); !ok {
				t.Errorf("sbverify --cert db.crt refuses:\n%s", out)
			}
			if ok, out := sbverify(t, "--cert", filepath.Join(other, "db.crt"), path); ok {
				t.Errorf("sbverify accepts another db certificate:\n%s", out)
			}
			if ok, out := sbverify(t, "--cert", filepath.Join(dir, "KEK.crt"), path); ok {
				t.Errorf("sbverify accepts the KEK certificate:\n%s", out)
			}
			ok, out := sbverify(t, "--list", path)
			if n := len(regexp.MustCompile(`(?m)^signature \d+$`).FindAllString(out, -1)); !ok || n != 1 || !strings.Contains(out, "/CN=keel test db") {
				t.Errorf("sbverify --list: %d signatures, want one by CN=keel test db:\n%s", n, out)
			}
			// A changed byte in the last section is noticed.
			last := f.Sections[len(f.Sections)-1]
			tampered := bytes.Clone(signed)
			tampered[last.PointerToRawData] ^= 1
			if ok, _ := sbverify(t, "--cert", filepath.Join(dir, "db.crt"), writeFile(t, path+".tampered", tampered)); ok {
				t.Error("sbverify accepts a tampered image: the check proves nothing")
			}
			osslsigncodeVerify(t, path, filepath.Join(dir, "db.crt"))

			if _, err := secureboot.Sign(signed, key, cert); !errors.Is(err, secureboot.ErrSigned) {
				t.Errorf("signing a signed image: %v, want ErrSigned", err)
			}
		})
	}
}

// osslsigncodeVerify has a second, independent Authenticode verifier
// check the signature, the digest and the PE checksum.
func osslsigncodeVerify(t *testing.T, path, ca string) {
	t.Helper()
	out, err := exec.Command(needTool(t, "osslsigncode", "osslsigncode"), "verify", "-CAfile", ca, "-in", path).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("Signature verification: ok")) || bytes.Contains(out, []byte("invalid PE checksum")) || bytes.Contains(out, []byte("MISMATCH")) {
		t.Errorf("osslsigncode verify: %v\n%s", err, out)
	}
}

// TestSignSnakeoil signs with the key OVMF_VARS_4M.snakeoil.fd trusts as
// PK, KEK and db: what boots under OVMF's Secure Boot with no enrollment.
func TestSignSnakeoil(t *testing.T) {
	stub := readFile(t, stubPath, "systemd-boot-efi")
	readFile(t, snakeoilKey, "ovmf")
	// The key is encrypted: LoadKeyPair says so, and how to decrypt it.
	if _, _, err := secureboot.LoadKeyPair(snakeoilKey, snakeoilCert); err == nil || !strings.Contains(err.Error(), "encrypted") || !strings.Contains(err.Error(), "openssl pkey") {
		t.Errorf("encrypted key: %v", err)
	}
	plain := filepath.Join(t.TempDir(), "snakeoil.key")
	if out, err := exec.Command(needTool(t, "openssl", "openssl"), "pkey", "-in", snakeoilKey, "-passin", "pass:snakeoil", "-out", plain).CombinedOutput(); err != nil {
		t.Fatalf("openssl pkey: %v\n%s", err, out)
	}
	key, cert, err := secureboot.LoadKeyPair(plain, snakeoilCert)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := secureboot.Sign(stub, key, cert)
	if err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, filepath.Join(t.TempDir(), "stub.signed.efi"), signed)
	if ok, out := sbverify(t, "--cert", snakeoilCert, path); !ok {
		t.Errorf("sbverify --cert %s refuses:\n%s", snakeoilCert, out)
	}
	osslsigncodeVerify(t, path, snakeoilCert)
}

func TestLoadKeyPairErrors(t *testing.T) {
	dir := keys(t, "keel test")
	tmp := t.TempDir()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallDER, _ := x509.MarshalPKCS8PrivateKey(small)
	pemFile := func(name, typ string, der []byte) string {
		return writeFile(t, filepath.Join(tmp, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	dbKey, dbCrt, kekCrt := filepath.Join(dir, "db.key"), filepath.Join(dir, "db.crt"), filepath.Join(dir, "KEK.crt")
	tests := []struct {
		name, key, cert, want string
	}{
		{"missing key", filepath.Join(tmp, "nope.key"), dbCrt, "nope.key"},
		{"missing certificate", dbKey, filepath.Join(tmp, "nope.crt"), "nope.crt"},
		{"certificate as key", dbCrt, dbCrt, "is a certificate, not a private key"},
		{"key as certificate", dbKey, dbKey, "is a private key, not a certificate"},
		{"not PEM", writeFile(t, filepath.Join(tmp, "garbage"), []byte("hello")), dbCrt, "no PEM private key"},
		{"EC key", pemFile("ec.key", "PRIVATE KEY", ecDER), dbCrt, "not an RSA key"},
		{"1024-bit key", pemFile("small.key", "PRIVATE KEY", smallDER), dbCrt, "at least 2048"},
		{"pair mismatch", dbKey, kekCrt, "does not belong to the certificate"},
		{"encrypted", pemFile("enc.key", "ENCRYPTED PRIVATE KEY", []byte{1}), dbCrt, "encrypted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := secureboot.LoadKeyPair(tt.key, tt.cert)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one that says %q", err, tt.want)
			}
		})
	}
}

func TestSignErrors(t *testing.T) {
	stub := readFile(t, stubPath, "systemd-boot-efi")
	dir := keys(t, "keel test")
	key, cert, err := secureboot.LoadKeyPair(filepath.Join(dir, "db.key"), filepath.Join(dir, "db.crt"))
	if err != nil {
		t.Fatal(err)
	}
	_, kekCert, err := secureboot.LoadKeyPair(filepath.Join(dir, "KEK.key"), filepath.Join(dir, "KEK.crt"))
	if err != nil {
		t.Fatal(err)
	}
	// A gap between two sections: sections' raw data moved up by 0x200.
	f, err := pecoff.Parse(stub)
	if err != nil {
		t.Fatal(err)
	}
	gap := bytes.Clone(stub)
	last := f.Sections[len(f.Sections)-1]
	h := f.SectionTable + (len(f.Sections)-1)*pecoff.SectionHeaderSize
	last.PointerToRawData += 0x200
	hb, _ := last.Header()
	copy(gap[h:], hb)
	gap = append(gap, make([]byte, 0x200)...)

	tests := []struct {
		name string
		pe   []byte
		cert *x509.Certificate
		want string
	}{
		{"not a PE", []byte("plain text"), cert, "not a PE"},
		{"gap between sections", gap, cert, "unsupported layout"},
		{"key and certificate do not match", stub, kekCert, "does not belong"},
		{"no certificate", stub, nil, "no key or certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := secureboot.Sign(tt.pe, key, tt.cert); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one that says %q", err, tt.want)
			}
		})
	}
}

// FuzzSign: Sign never panics on a malformed image, and what it signs
// parses back with its certificate table at the end.
func FuzzSign(f *testing.F) {
	if stub, err := os.ReadFile(stubPath); err == nil {
		f.Add(stub[:0x400])
		f.Add(stub)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fuzz"}, NotBefore: testTime, NotAfter: testTime.AddDate(1, 0, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		f.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		signed, err := secureboot.Sign(b, key, cert)
		if err != nil {
			return
		}
		p, err := pecoff.Parse(signed)
		if err != nil {
			t.Fatalf("signed image does not parse: %v", err)
		}
		if int(p.CertOffset+p.CertSize) != len(signed) || int(p.CertOffset) < len(b) {
			t.Errorf("certificate table at %#x+%#x in %d bytes from %d", p.CertOffset, p.CertSize, len(signed), len(b))
		}
	})
}
