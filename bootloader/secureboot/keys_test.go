package secureboot_test

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"keel/bootloader/secureboot"
)

// authFile is a parsed EFI_VARIABLE_AUTHENTICATION_2 followed by the data
// it authenticates. The test parses by the UEFI specification's layout on
// its own, so a mistake in the writer is not mirrored here.
type authFile struct {
	timestamp []byte // EFI_TIME, 16 bytes
	header    []byte // the WIN_CERTIFICATE_UEFI_GUID up to CertData
	pkcs7     []byte // CertData
	data      []byte // the EFI_SIGNATURE_LISTs
}

func parseAuth(t *testing.T, b []byte) authFile {
	t.Helper()
	if len(b) < 40 {
		t.Fatalf("auth file of %d bytes", len(b))
	}
	le := binary.LittleEndian
	dwLength := le.Uint32(b[16:])
	if le.Uint16(b[20:]) != 0x0200 || le.Uint16(b[22:]) != 0x0EF1 {
		t.Fatalf("WIN_CERTIFICATE revision %#x type %#x, want 0x200 0xef1", le.Uint16(b[20:]), le.Uint16(b[22:]))
	}
	// EFI_CERT_TYPE_PKCS7_GUID 4aafd29d-68df-49ee-8aa9-347d375665a7.
	if want := []byte{0x9d, 0xd2, 0xaf, 0x4a, 0xdf, 0x68, 0xee, 0x49, 0x8a, 0xa9, 0x34, 0x7d, 0x37, 0x56, 0x65, 0xa7}; !bytes.Equal(b[24:40], want) {
		t.Fatalf("CertType %x, want EFI_CERT_TYPE_PKCS7_GUID", b[24:40])
	}
	if dwLength < 24 || int(16+dwLength) > len(b) {
		t.Fatalf("dwLength %d in a %d-byte file", dwLength, len(b))
	}
	return authFile{timestamp: b[:16], header: b[16:40], pkcs7: b[40 : 16+dwLength], data: b[16+dwLength:]}
}

// parseESL checks that b is exactly one X.509 EFI_SIGNATURE_LIST with one
// signature and returns its owner and certificate.
func parseESL(t *testing.T, b []byte) (owner []byte, cert []byte) {
	t.Helper()
	le := binary.LittleEndian
	// EFI_CERT_X509_GUID a5c059a1-94e4-4aa7-87b5-ab155c2bf072.
	x509GUID := []byte{0xa1, 0x59, 0xc0, 0xa5, 0xe4, 0x94, 0xa7, 0x4a, 0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72}
	if len(b) < 44 || !bytes.Equal(b[:16], x509GUID) {
		t.Fatalf("signature list type %x, want EFI_CERT_X509_GUID", b[:min(16, len(b))])
	}
	listSize, hdrSize, sigSize := le.Uint32(b[16:]), le.Uint32(b[20:]), le.Uint32(b[24:])
	if int(listSize) != len(b) || hdrSize != 0 || 28+sigSize != listSize {
		t.Fatalf("signature list sizes %d/%d/%d in %d bytes", listSize, hdrSize, sigSize, len(b))
	}
	return b[28:44], b[44:]
}

// verifyPKCS7 has openssl check the detached SignedData against payload,
// with signerCert as the only certificate it may use and trust.
func verifyPKCS7(t *testing.T, signedData, payload []byte, signerCert string) bool {
	t.Helper()
	// openssl wants a ContentInfo around the bare SignedData.
	ci, err := asn1.Marshal(struct {
		Type    asn1.ObjectIdentifier
		Content asn1.RawValue
	}{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: signedData}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p7 := writeFile(t, filepath.Join(dir, "sig.p7"), ci)
	content := writeFile(t, filepath.Join(dir, "payload"), payload)
	cmd := exec.Command(needTool(t, "openssl", "openssl"), "smime", "-verify", "-binary", "-inform", "DER", "-in", p7, "-content", content,
		"-nointern", "-certfile", signerCert, "-CAfile", signerCert, "-purpose", "any", "-out", os.DevNull)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("openssl smime: %v\n%s", err, out)
	}
	return err == nil
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGenerateKeys checks what GenerateKeys writes: the files and their
// modes, the certificates, and each .auth by its specified layout; has
// openssl verify each signature with the right certificate (and not with
// the wrong one); and compares each .auth with what efitools'
// cert-to-efi-sig-list and sign-efi-sig-list make of the same key,
// certificate and time: the same bytes.
func TestGenerateKeys(t *testing.T) {
	const name = "keel test"
	dir := keys(t, name)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		info, _ := e.Info()
		want := fs.FileMode(0o644)
		if strings.HasSuffix(e.Name(), ".key") {
			want = 0o600
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", e.Name(), info.Mode().Perm(), want)
		}
	}
	if got, want := strings.Join(names, " "), "KEK.auth KEK.crt KEK.key PK.auth PK.crt PK.key db.auth db.crt db.key"; got != want {
		t.Errorf("files %s, want %s", got, want)
	}

	owner := secureboot.OwnerGUID(name)
	if owner != secureboot.OwnerGUID(name) || owner == secureboot.OwnerGUID("other") {
		t.Error("the owner GUID is not a function of the name")
	}
	signer := map[string]string{"PK": "PK", "KEK": "PK", "db": "KEK"}
	vendor := map[string][]byte{
		// EFI_GLOBAL_VARIABLE 8be4df61-93ca-11d2-aa0d-00e098032b8c
		"PK":  {0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c},
		"KEK": {0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c},
		// EFI_IMAGE_SECURITY_DATABASE_GUID d719b2cb-3d3a-4596-a3bc-dad00e67656f
		"db": {0xcb, 0xb2, 0x19, 0xd7, 0x3a, 0x3d, 0x96, 0x45, 0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f},
	}
	// 2026-03-04 05:06:07 as EFI_TIME; every other field zero.
	wantTime := []byte{0xea, 0x07, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	for _, k := range secureboot.KeyNames {
		t.Run(k, func(t *testing.T) {
			cert := readCert(t, filepath.Join(dir, k+".crt"))
			if cert.Subject.CommonName != name+" "+k || cert.Issuer.CommonName != name+" "+k {
				t.Errorf("certificate subject %q issuer %q, want CN %q", cert.Subject, cert.Issuer, name+" "+k)
			}
			if err := cert.CheckSignatureFrom(cert); err != nil {
				t.Errorf("certificate is not self-signed: %v", err)
			}
			if !cert.NotBefore.Equal(testTime) {
				t.Errorf("certificate valid from %s, want %s", cert.NotBefore, testTime)
			}
			if _, _, err := secureboot.LoadKeyPair(filepath.Join(dir, k+".key"), filepath.Join(dir, k+".crt")); err != nil {
				t.Error(err)
			}

			b, err := os.ReadFile(filepath.Join(dir, k+".auth"))
			if err != nil {
				t.Fatal(err)
			}
			a := parseAuth(t, b)
			if !bytes.Equal(a.timestamp, wantTime) {
				t.Errorf("EFI_TIME %x, want %x", a.timestamp, wantTime)
			}
			o, c := parseESL(t, a.data)
			if !bytes.Equal(o, owner[:]) || !bytes.Equal(c, cert.Raw) {
				t.Errorf("signature list: owner %x, want %x; the certificate is %s", o, owner[:], map[bool]string{true: "right", false: "wrong"}[bytes.Equal(c, cert.Raw)])
			}
			// What is signed: name (UCS-2, no NUL), vendor GUID,
			// attributes (NV|BS|RT|time-based authenticated write), time,
			// data.
			var payload []byte
			for _, u := range utf16.Encode([]rune(k)) {
				payload = binary.LittleEndian.AppendUint16(payload, u)
			}
			payload = append(payload, vendor[k]...)
			payload = binary.LittleEndian.AppendUint32(payload, 0x27)
			payload = append(payload, a.timestamp...)
			payload = append(payload, a.data...)
			if !verifyPKCS7(t, a.pkcs7, payload, filepath.Join(dir, signer[k]+".crt")) {
				t.Errorf("openssl: the signature does not verify with %s.crt", signer[k])
			}
			wrong := "db"
			if signer[k] == "PK" {
				wrong = "KEK"
			}
			if verifyPKCS7(t, a.pkcs7, payload, filepath.Join(dir, wrong+".crt")) {
				t.Errorf("openssl: the signature verifies with %s.crt too: the check proves nothing", wrong)
			}

			ref := efitools(t, dir, k, signer[k], owner.String(), testTime)
			r := parseAuth(t, ref)
			if !bytes.Equal(a.timestamp, r.timestamp) || !bytes.Equal(a.header, r.header) || !bytes.Equal(a.data, r.data) {
				t.Errorf("differs from sign-efi-sig-list before the PKCS#7:\n ours   %x %x\n theirs %x %x", a.timestamp, a.header, r.timestamp, r.header)
			}
			if !bytes.Equal(b, ref) {
				t.Error("differs from sign-efi-sig-list's output")
			}
		})
	}
}

// efitools makes k.auth with cert-to-efi-sig-list and sign-efi-sig-list.
func efitools(t *testing.T, dir, k, signer, owner string, ts time.Time) []byte {
	t.Helper()
	tmp := t.TempDir()
	esl := filepath.Join(tmp, k+".esl")
	auth := filepath.Join(tmp, k+".auth")
	for _, args := range [][]string{
		{needTool(t, "cert-to-efi-sig-list", "efitools"), "-g", owner, filepath.Join(dir, k+".crt"), esl},
		{needTool(t, "sign-efi-sig-list", "efitools"), "-t", ts.UTC().Format("2006-01-02 15:04:05"), "-g", owner,
			"-k", filepath.Join(dir, signer+".key"), "-c", filepath.Join(dir, signer+".crt"), k, esl, auth},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	b, err := os.ReadFile(auth)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGenerateKeysRefuses: one existing file is enough to write nothing.
func TestGenerateKeysRefuses(t *testing.T) {
	for _, existing := range secureboot.Files() {
		t.Run(existing, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, existing), []byte("mine"))
			err := secureboot.GenerateKeys("keel test", dir, testTime)
			if !errors.Is(err, fs.ErrExist) {
				t.Fatalf("error %v, want fs.ErrExist", err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("%d files in the directory after a refusal", len(entries))
			}
			if b, _ := os.ReadFile(filepath.Join(dir, existing)); string(b) != "mine" {
				t.Errorf("%s overwritten", existing)
			}
		})
	}
	if err := secureboot.GenerateKeys("", t.TempDir(), testTime); err == nil {
		t.Error("an empty name is taken")
	}
}

func TestAuthenticatedVariableErrors(t *testing.T) {
	dir := keys(t, "keel test")
	key, cert, err := secureboot.LoadKeyPair(filepath.Join(dir, "PK.key"), filepath.Join(dir, "PK.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := secureboot.AuthenticatedVariable("MokList", nil, testTime, key, cert); err == nil {
		t.Error("an unknown variable is signed")
	}
	if _, err := secureboot.AuthenticatedVariable("db", nil, time.Date(1800, 1, 1, 0, 0, 0, 0, time.UTC), key, cert); err == nil {
		t.Error("a year EFI_TIME cannot hold is taken")
	}
}

func TestParseGUID(t *testing.T) {
	for _, s := range []string{"8be4df61-93ca-11d2-aa0d-00e098032b8c", "D719B2CB-3D3A-4596-A3BC-DAD00E67656F"} {
		g, err := secureboot.ParseGUID(s)
		if err != nil || g.String() != strings.ToLower(s) {
			t.Errorf("ParseGUID(%q) = %v, %v", s, g, err)
		}
	}
	for _, s := range []string{"", "8be4df61-93ca-11d2-aa0d-00e098032b8", "8be4df61x93ca-11d2-aa0d-00e098032b8c", "zbe4df61-93ca-11d2-aa0d-00e098032b8c"} {
		if _, err := secureboot.ParseGUID(s); err == nil {
			t.Errorf("ParseGUID(%q) takes it", s)
		}
	}
}
