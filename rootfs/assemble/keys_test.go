package assemble

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keel/image/bundle"
	"keel/profiles"
)

// TestKeys checks update.keys end up in KeysDir in keel's format, whatever
// encoding the file had, and that a file that is no public key fails the
// build naming its field.
func TestKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	keel := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	openssl := ed25519.NewKeyFromSeed([]byte(strings.Repeat("k", 32))).Public().(ed25519.PublicKey)
	pkix, _ := x509.MarshalPKIXPublicKey(openssl)
	write("release.pub", bundle.MarshalPublicKey(keel))
	write("ops.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}))
	write("secret.key", bundle.MarshalPrivateKey(ed25519.NewKeyFromSeed(make([]byte, 32))))
	write("vmlinuz", []byte("kernel"))
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	write("sub/release.pub", bundle.MarshalPublicKey(openssl))
	head := "name: k\nversion: \"1\"\nkernel: {file: vmlinuz}\n"

	build := func(keys string) (*profiles.Profile, error) {
		write("p.yaml", []byte(head+"update: {keys: ["+keys+"]}\n"))
		p, err := profiles.Load(filepath.Join(dir, "p.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		tree, err := Tree(context.Background(), p, Options{KeelInit: []byte("\x7fELF fake"), Epoch: 1000})
		if err != nil {
			return nil, err
		}
		for name, want := range map[string]ed25519.PublicKey{"release.pub": keel, "ops.pem.pub": openssl} {
			got, err := bundle.ParsePublicKey([]byte(read(t, tree, KeysDir+"/"+name)))
			if err != nil || !got.Equal(want) {
				t.Errorf("%s: %v", name, err)
			}
			if e, _ := tree.Get(KeysDir + "/" + name); e.Mode != 0o644 || e.UID != 0 || e.Mtime != 1000 {
				t.Errorf("%s: mode %#o uid %d mtime %d", name, e.Mode, e.UID, e.Mtime)
			}
		}
		return p, nil
	}
	if _, err := build("release.pub, ops.pem"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ keys, msg string }{
		{"release.pub, secret.key", "this is a private key"},
		{"release.pub, vmlinuz", "no PEM block"},
		{"release.pub, release.pub", "listed twice"},
		{"release.pub, sub/release.pub", "both be /etc/keel/keys/release.pub"},
	} {
		_, err := build(tt.keys)
		t.Log(err)
		if err == nil || !strings.Contains(err.Error(), "update.keys[1]: ") || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("keys %s: error %v, want update.keys[1]: ...%s", tt.keys, err, tt.msg)
		}
	}
}
