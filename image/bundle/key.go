package bundle

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Key files are PEM. keel writes its own block types, whose body is the raw
// key: the 32-byte seed for a private key, the 32-byte point for a public
// one. Reading also accepts the standard blocks OpenSSL writes
// ("PRIVATE KEY" PKCS #8, "PUBLIC KEY" PKIX; `openssl genpkey -algorithm
// ed25519`), so keys can be made and kept with other tools.
const (
	PrivateKeyType = "KEEL ED25519 PRIVATE KEY"
	PublicKeyType  = "KEEL ED25519 PUBLIC KEY"
)

// GenerateKey makes a signing key pair from rand (crypto/rand.Reader when nil).
func GenerateKey(rand io.Reader) (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(rand)
}

// KeyID names a public key: hex of the first 8 bytes of its sha256. It is
// what a bundle's signature carries and what commands print.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:keyIDSize])
}

// MarshalPublicKey encodes pub as a keel public key file.
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: PublicKeyType, Bytes: pub})
}

// MarshalPrivateKey encodes priv as a keel private key file.
func MarshalPrivateKey(priv ed25519.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: PrivateKeyType, Bytes: priv.Seed()})
}

// ParsePublicKey decodes a public key file's contents.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	blk, err := onePEM(b)
	if err != nil {
		return nil, err
	}
	switch blk.Type {
	case PublicKeyType:
		if len(blk.Bytes) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%s: %d bytes, want %d", blk.Type, len(blk.Bytes), ed25519.PublicKeySize)
		}
		return ed25519.PublicKey(blk.Bytes), nil
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, err
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("a %T public key, not ed25519", k)
		}
		return pub, nil
	case PrivateKeyType, "PRIVATE KEY":
		// Trusting a private key file would spread the secret into images.
		return nil, errors.New("this is a private key: give the .pub file")
	}
	return nil, fmt.Errorf("PEM block %q is not an ed25519 public key", blk.Type)
}

// ParsePrivateKey decodes a private key file's contents.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	blk, err := onePEM(b)
	if err != nil {
		return nil, err
	}
	switch blk.Type {
	case PrivateKeyType:
		if len(blk.Bytes) != ed25519.SeedSize {
			return nil, fmt.Errorf("%s: %d bytes, want %d", blk.Type, len(blk.Bytes), ed25519.SeedSize)
		}
		return ed25519.NewKeyFromSeed(blk.Bytes), nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, err
		}
		priv, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("a %T private key, not ed25519", k)
		}
		return priv, nil
	}
	return nil, fmt.Errorf("PEM block %q is not an ed25519 private key", blk.Type)
}

func onePEM(b []byte) (*pem.Block, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block (want -----BEGIN " + PublicKeyType + "----- or similar)")
	}
	return blk, nil
}

// ReadPublicKey reads a public key file.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading public key: %w", err)
	}
	k, err := ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return k, nil
}

// ReadPrivateKey reads a private key file.
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading private key: %w", err)
	}
	k, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	return k, nil
}

// WriteKeyPair writes dir/name.pub (0644) and dir/name.key (0600). It
// refuses to overwrite either: losing a signing key strands every device
// that trusts it.
func WriteKeyPair(dir, name string, pub ed25519.PublicKey, priv ed25519.PrivateKey) error {
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
		return fmt.Errorf("key name %q: want a plain file name", name)
	}
	keyPath := filepath.Join(dir, name+".key")
	pubPath := filepath.Join(dir, name+".pub")
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s: %w (refusing to overwrite a key)", p, os.ErrExist)
		}
	}
	// O_EXCL closes the window between the check above and the write.
	if err := writeNew(keyPath, MarshalPrivateKey(priv), 0o600); err != nil {
		return err
	}
	if err := writeNew(pubPath, MarshalPublicKey(pub), 0o644); err != nil {
		os.Remove(keyPath)
		return err
	}
	return nil
}

func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("writing key: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("writing key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("writing key %s: %w", path, err)
	}
	return f.Close()
}

// ReadKeyDir reads every *.pub in dir, in name order: the trusted keys of
// an image (assemble bakes a profile's update.keys into /etc/keel/keys). A
// file that does not parse is an error, not skipped, so a broken key is
// noticed rather than silently distrusted.
func ReadKeyDir(dir string) ([]ed25519.PublicKey, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.pub"))
	if err != nil {
		return nil, err
	}
	var keys []ed25519.PublicKey
	for _, n := range names { // Glob sorts
		k, err := ReadPublicKey(n)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}
