package bundle

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	pub, priv, err := GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyPair(dir, "release", pub, priv); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]fs.FileMode{"release.key": 0o600, "release.pub": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		// The umask may take bits away, never add them.
		if fi.Mode().Perm()&^mode != 0 {
			t.Errorf("%s: mode %v, want at most %v", name, fi.Mode().Perm(), mode)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "release.pub"))
	if !strings.HasPrefix(string(b), "-----BEGIN "+PublicKeyType+"-----\n") {
		t.Errorf("public key file:\n%s", b)
	}
	gotPub, err := ReadPublicKey(filepath.Join(dir, "release.pub"))
	if err != nil || !gotPub.Equal(pub) {
		t.Fatalf("ReadPublicKey: %v", err)
	}
	gotPriv, err := ReadPrivateKey(filepath.Join(dir, "release.key"))
	if err != nil || !gotPriv.Equal(priv) {
		t.Fatalf("ReadPrivateKey: %v", err)
	}

	// Never overwrite: not the pair, not either half, and leave both as they were.
	other, otherPriv, _ := GenerateKey(rand.Reader)
	if err := WriteKeyPair(dir, "release", other, otherPriv); !errors.Is(err, fs.ErrExist) {
		t.Errorf("overwriting a key pair: %v", err)
	}
	os.Remove(filepath.Join(dir, "release.pub"))
	if err := WriteKeyPair(dir, "release", other, otherPriv); !errors.Is(err, fs.ErrExist) {
		t.Errorf("overwriting a private key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "release.pub")); err == nil {
		t.Error("wrote a public key beside a private key it does not belong to")
	}
	if k, _ := ReadPrivateKey(filepath.Join(dir, "release.key")); !k.Equal(priv) {
		t.Error("private key changed")
	}
	for _, name := range []string{"", "a/b", "..", "."} {
		if err := WriteKeyPair(dir, name, pub, priv); err == nil {
			t.Errorf("key name %q accepted", name)
		}
	}
}

// TestForeignKeys checks the OpenSSL encodings are read, and that each kind
// of wrong file is refused with a message saying why.
func TestForeignKeys(t *testing.T) {
	pub, priv := testKey(t, 3)
	pkix, _ := x509.MarshalPKIXPublicKey(pub)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(priv)
	enc := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }

	if k, err := ParsePublicKey(enc("PUBLIC KEY", pkix)); err != nil || !k.Equal(pub) {
		t.Errorf("PKIX public key: %v", err)
	}
	if k, err := ParsePrivateKey(enc("PRIVATE KEY", pkcs8)); err != nil || !k.Equal(priv) {
		t.Errorf("PKCS #8 private key: %v", err)
	}
	for _, tt := range []struct {
		name string
		b    []byte
		priv bool
		msg  string
	}{
		{"private key as public", MarshalPrivateKey(priv), false, "this is a private key"},
		{"public key as private", MarshalPublicKey(pub), true, "not an ed25519 private key"},
		{"not PEM", []byte("ssh-ed25519 AAAA me@host\n"), false, "no PEM block"},
		{"short body", enc(PublicKeyType, pub[:31]), false, "31 bytes"},
		{"RSA-ish block", enc("RSA PUBLIC KEY", []byte{1}), false, "not an ed25519 public key"},
	} {
		var err error
		if tt.priv {
			_, err = ParsePrivateKey(tt.b)
		} else {
			_, err = ParsePublicKey(tt.b)
		}
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.msg)
		}
	}
	if id := KeyID(pub); len(id) != 16 || bytes.ContainsAny([]byte(id), "ABCDEF") {
		t.Errorf("KeyID %q", id)
	}
}

func TestReadKeyDir(t *testing.T) {
	dir := t.TempDir()
	a, _ := testKey(t, 1)
	b, _ := testKey(t, 2)
	os.WriteFile(filepath.Join(dir, "b.pub"), MarshalPublicKey(b), 0o644)
	os.WriteFile(filepath.Join(dir, "a.pub"), MarshalPublicKey(a), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644)
	keys, err := ReadKeyDir(dir)
	if err != nil || len(keys) != 2 || !keys[0].Equal(a) || !keys[1].Equal(b) {
		t.Fatalf("ReadKeyDir: %d keys, %v", len(keys), err)
	}
	os.WriteFile(filepath.Join(dir, "c.pub"), []byte("junk"), 0o644)
	if _, err := ReadKeyDir(dir); err == nil || !strings.Contains(err.Error(), "c.pub") {
		t.Errorf("junk key: %v", err)
	}
	if keys, err := ReadKeyDir(filepath.Join(dir, "none")); err != nil || len(keys) != 0 {
		t.Errorf("missing dir: %v %v", keys, err)
	}
}
