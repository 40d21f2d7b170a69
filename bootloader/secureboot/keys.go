package secureboot

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
)

// LoadKeyPair reads an unencrypted RSA private key (PKCS#1 or PKCS#8) and
// its X.509 certificate, both PEM, as sbsign takes them, and checks that
// they belong together.
func LoadKeyPair(keyPEMPath, certPEMPath string) (crypto.Signer, *x509.Certificate, error) {
	key, err := readKey(keyPEMPath)
	if err != nil {
		return nil, nil, err
	}
	cert, err := readCert(certPEMPath)
	if err != nil {
		return nil, nil, err
	}
	if err := checkSigner(key, cert); err != nil {
		return nil, nil, fmt.Errorf("%s and %s: %w", keyPEMPath, certPEMPath, err)
	}
	return key, cert, nil
}

func readKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, fmt.Errorf("%s: no PEM private key (want -----BEGIN PRIVATE KEY----- or RSA PRIVATE KEY)", path)
		}
		var key any
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			if block.Headers["Proc-Type"] != "" {
				return nil, fmt.Errorf("%s: the key is encrypted; decrypt it first (openssl pkey -in %s -out PLAIN.key)", path, path)
			}
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("%s: the key is encrypted; decrypt it first (openssl pkey -in %s -out PLAIN.key)", path, path)
		case "EC PRIVATE KEY", "OPENSSH PRIVATE KEY":
			return nil, fmt.Errorf("%s: %w", path, errNotRSA)
		case "CERTIFICATE":
			return nil, fmt.Errorf("%s is a certificate, not a private key", path)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		rk, ok := key.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%s: %w (a %T)", path, errNotRSA, key)
		}
		return rk, nil
	}
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading certificate: %w", err)
	}
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, fmt.Errorf("%s: no PEM certificate (want -----BEGIN CERTIFICATE-----)", path)
		}
		switch block.Type {
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return cert, nil
		case "PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "EC PRIVATE KEY":
			return nil, fmt.Errorf("%s is a private key, not a certificate", path)
		}
	}
}

// KeyNames are the Secure Boot keys GenerateKeys makes, in the order of
// their chain: PK signs itself and KEK, KEK signs db, db signs images.
var KeyNames = []string{"PK", "KEK", "db"}

// AuthFiles are the authenticated variables a loader enrolls from a keys
// directory, in the order it writes them (db and KEK while still in setup
// mode, PK last, which leaves setup mode).
var AuthFiles = []string{"db.auth", "KEK.auth", "PK.auth"}

// Files is every file GenerateKeys writes, in the order it writes them.
func Files() []string {
	var fs []string
	for _, k := range KeyNames {
		fs = append(fs, k+".key", k+".crt", k+".auth")
	}
	return fs
}

// keyBits is the RSA size of generated keys: 2048, the one size the UEFI
// specification requires firmware to support.
const keyBits = 2048

// certValidity is how long generated certificates are valid. Firmware
// does not check validity times (it has no trusted clock); tools that do
// should not start failing within a device's life.
const certValidity = 30

// GenerateKeys makes a Secure Boot key hierarchy in dir (created if
// missing): PK, KEK and db, each an RSA key (NAME.key, PEM PKCS#8, mode
// 0600), a self-signed certificate with common name "NAME PK" etc., valid
// from now (NAME.crt), and the authenticated variable that enrolls it
// (NAME.auth, timestamp now): PK.auth and KEK.auth signed by PK, db.auth
// by KEK, each holding one X.509 signature list owned by OwnerGUID(name).
// Firmware in setup mode takes them in any order (systemd-boot writes db,
// KEK, then PK). An existing file is never overwritten: the error then
// wraps fs.ErrExist and nothing is written.
func GenerateKeys(name, dir string, now time.Time) error {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return fmt.Errorf("key name %q: want printable text", name)
	}
	for _, f := range Files() {
		p := filepath.Join(dir, f)
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s: %w (refusing to overwrite a key)", p, fs.ErrExist)
		}
	}
	owner := OwnerGUID(name)
	files := map[string][]byte{}
	keys := map[string]*rsa.PrivateKey{}
	certs := map[string]*x509.Certificate{}
	for _, k := range KeyNames {
		key, cert, err := newKeyPair(name+" "+k, now)
		if err != nil {
			return fmt.Errorf("generating %s: %w", k, err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		keys[k], certs[k] = key, cert
		files[k+".key"] = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		files[k+".crt"] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	}
	signer := map[string]string{"PK": "PK", "KEK": "PK", "db": "KEK"}
	for _, k := range KeyNames {
		s := signer[k]
		auth, err := AuthenticatedVariable(k, SignatureList(owner, certs[k]), now, keys[s], certs[s])
		if err != nil {
			return err
		}
		files[k+".auth"] = auth
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var written []string
	for _, f := range Files() {
		p := filepath.Join(dir, f)
		mode := os.FileMode(0o644)
		if strings.HasSuffix(f, ".key") {
			mode = 0o600
		}
		if err := writeNew(p, files[f], mode); err != nil {
			for _, w := range written {
				os.Remove(w)
			}
			return err
		}
		written = append(written, p)
	}
	return nil
}

func newKeyPair(cn string, now time.Time) (*rsa.PrivateKey, *x509.Certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	notBefore := now.UTC().Truncate(time.Second)
	// As `openssl req -x509` makes them (and the snakeoil PK/KEK/db OVMF
	// ships): a CA certificate with no key usage restrictions.
	tmpl := &x509.Certificate{
		SerialNumber:          serial.Add(serial, big.NewInt(1)),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore,
		NotAfter:              notBefore.AddDate(certValidity, 0, 0),
		BasicConstraintsValid: true,
		IsCA:                  true,
		SignatureAlgorithm:    x509.SHA256WithRSA,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return key, cert, nil
}

// writeNew writes a file that must not exist yet, durably.
func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("writing key: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
