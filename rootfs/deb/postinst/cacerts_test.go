package postinst

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keel/rootfs"
)

// testCert makes a self-signed certificate whose subject is raw (DER)
// when given, else name.
func testCert(t *testing.T, name pkix.Name, raw []byte) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), zeroReader{})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: name, RawSubject: raw,
		NotBefore: time.Unix(1700000000, 0), NotAfter: time.Unix(1900000000, 0),
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(zeroReader{}, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// zeroReader makes key generation deterministic; these keys protect nothing.
type zeroReader struct{}

func (zeroReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = 1
	}
	return len(b), nil
}

// rawName encodes a name with the string types given, which pkix.Name
// cannot choose.
func rawName(t *testing.T, avas ...any) []byte {
	t.Helper()
	var rdns []asn1.RawValue
	for i := 0; i < len(avas); i += 3 {
		oid, tag, s := avas[i].(asn1.ObjectIdentifier), avas[i+1].(int), avas[i+2].(string)
		val, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: tag, Bytes: []byte(s)})
		oidEnc, _ := asn1.Marshal(oid)
		ava, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: append(oidEnc, val...)})
		set, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: ava})
		rdns = append(rdns, asn1.RawValue{FullBytes: set})
	}
	var body []byte
	for _, r := range rdns {
		body = append(body, r.FullBytes...)
	}
	out, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var (
	oidCN = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidO  = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidC  = asn1.ObjectIdentifier{2, 5, 4, 6}
)

func subjectCases(t *testing.T) map[string][]byte {
	return map[string][]byte{
		"plain":       testCert(t, pkix.Name{CommonName: "Test Root CA", Organization: []string{"Example"}, Country: []string{"DE"}}, nil),
		"case-spaces": testCert(t, pkix.Name{}, rawName(t, oidC, asn1.TagPrintableString, "DE", oidO, asn1.TagUTF8String, "  Example   Trust\tServices  ", oidCN, asn1.TagPrintableString, "ROOT CA 1")),
		"ia5-t61":     testCert(t, pkix.Name{}, rawName(t, oidO, asn1.TagIA5String, "Mixed Case", oidCN, asn1.TagT61String, "Caf\xe9 CA")),
	}
}

// TestSubjectHashMatchesOpenSSL checks keel's subject hash against
// `openssl x509 -subject_hash`.
func TestSubjectHashMatchesOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl: not installed")
	}
	for name, certPEM := range subjectCases(t) {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "c.pem")
			if err := os.WriteFile(f, certPEM, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(openssl, "x509", "-subject_hash", "-noout", "-in", f).CombinedOutput()
			if err != nil {
				t.Fatalf("openssl: %v\n%s", err, out)
			}
			block, _ := pem.Decode(certPEM)
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			h, err := subjectHash(cert.RawSubject)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := fmt.Sprintf("%08x", h), strings.TrimSpace(string(out)); got != want {
				t.Errorf("hash %s, openssl says %s", got, want)
			}
		})
	}
}

// TestSubjectHashOfHostCertificates checks the hash links that the build
// host's own update-ca-certificates made, when it has them.
func TestSubjectHashOfHostCertificates(t *testing.T) {
	links, _ := filepath.Glob("/etc/ssl/certs/????????.0")
	if len(links) == 0 {
		t.Skip("no hash links in /etc/ssl/certs")
	}
	checked := 0
	for _, l := range links {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		block, _ := pem.Decode(b)
		if block == nil {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			continue
		}
		h, err := subjectHash(cert.RawSubject)
		if err != nil {
			t.Errorf("%s: %v", l, err)
			continue
		}
		if want := strings.TrimSuffix(filepath.Base(l), ".0"); fmt.Sprintf("%08x", h) != want {
			t.Errorf("%s: hash %08x", l, h)
		}
		checked++
	}
	t.Logf("%d certificates checked", checked)
}

func TestCACertificates(t *testing.T) {
	tr := mergedUsrTree(t)
	certs := subjectCases(t)
	addFile(t, tr, "/usr/share/ca-certificates/mozilla/Plain_Root.crt", 0o644, string(certs["plain"]))
	// No final newline: the bundle adds one.
	addFile(t, tr, "/usr/share/ca-certificates/mozilla/Trust (2), Inc.crt", 0o644, strings.TrimSuffix(string(certs["case-spaces"]), "\n"))
	addFile(t, tr, "/usr/local/share/ca-certificates/local.crt", 0o644, string(certs["ia5-t61"]))
	tr.MkdirAllTime("/etc/ssl/certs", 0o755, 0)
	rep := configure(t, tr, pkg("ca-certificates", "update-ca-certificates --hooksdir \"\"\n"))
	conf := fileString(t, tr, "/etc/ca-certificates.conf")
	if !strings.HasPrefix(conf, caConfHeader) || !strings.HasSuffix(conf, "\nmozilla/Plain_Root.crt\nmozilla/Trust (2), Inc.crt\n") {
		t.Errorf("ca-certificates.conf:\n%s", conf)
	}
	bundle := fileString(t, tr, caBundle)
	if want := string(certs["plain"]) + string(certs["case-spaces"]) + string(certs["ia5-t61"]); bundle != want {
		t.Errorf("bundle:\n%s\nwant\n%s", bundle, want)
	}
	for link, want := range map[string]string{
		"/etc/ssl/certs/Plain_Root.pem":     "/usr/share/ca-certificates/mozilla/Plain_Root.crt",
		"/etc/ssl/certs/Trust_=2=__Inc.pem": "/usr/share/ca-certificates/mozilla/Trust (2), Inc.crt",
		"/etc/ssl/certs/local.pem":          "/usr/local/share/ca-certificates/local.crt",
	} {
		if e, ok := tr.Get(link); !ok || e.Type != rootfs.TypeSymlink || e.Target != want {
			t.Errorf("%s: %+v, want a link to %s", link, e, want)
		}
	}
	hashes := 0
	for _, n := range tr.Children("/etc/ssl/certs") {
		if strings.HasSuffix(n, ".0") {
			hashes++
			e, _ := tr.Get("/etc/ssl/certs/" + n)
			if !strings.HasSuffix(e.Target, ".pem") || strings.Contains(e.Target, "/") {
				t.Errorf("%s → %s", n, e.Target)
			}
		}
	}
	if hashes != 3 {
		t.Errorf("%d hash links, want 3", hashes)
	}
	for _, w := range rep.Warnings {
		if strings.Contains(w, "ca-certificates") {
			t.Errorf("warning: %s", w)
		}
	}
}
