package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"keel/bootloader/secureboot"
)

func TestSecureBootKeys(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)

	// Default directory: ./NAME-secureboot.
	code, out, _ := keel(t, "secureboot", "keys", "acme")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, f := range secureboot.Files() {
		if _, err := os.Stat(filepath.Join(dir, "acme-secureboot", f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	for _, want := range []string{"into acme-secureboot", "PK.auth KEK.auth db.auth", "--sb-keys acme-secureboot", "--sb-key acme-secureboot/db.key --sb-cert acme-secureboot/db.crt", secureboot.OwnerGUID("acme").String()} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not say %q", want)
		}
	}
	// What it wrote is a usable key pair: it signs, and sbverify agrees.
	key, cert, err := secureboot.LoadKeyPair(filepath.Join(dir, "acme-secureboot", "db.key"), filepath.Join(dir, "acme-secureboot", "db.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "acme db" {
		t.Errorf("db certificate CN %q", cert.Subject.CommonName)
	}
	if stub, err := os.ReadFile("/usr/lib/systemd/boot/efi/linuxx64.efi.stub"); err != nil {
		t.Log("systemd-boot-efi not installed: the key is not tried")
	} else if sbverify, err := exec.LookPath("sbverify"); err != nil {
		t.Log("sbverify (sbsigntool) not installed: the key is not tried")
	} else {
		signed, err := secureboot.Sign(stub, key, cert)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "stub.signed")
		if err := os.WriteFile(p, signed, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(sbverify, "--cert", filepath.Join(dir, "acme-secureboot", "db.crt"), p).CombinedOutput(); err != nil {
			t.Errorf("sbverify: %v\n%s", err, out)
		}
	}

	// Again: refused, exit 3, nothing changed.
	before, _ := os.ReadFile(filepath.Join(dir, "acme-secureboot", "PK.key"))
	code, _, stderr := keel(t, "secureboot", "keys", "acme")
	if code != exitRefused || !strings.Contains(stderr, "refusing to overwrite") {
		t.Errorf("second run: exit %d, %q; want %d and a refusal", code, stderr, exitRefused)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "acme-secureboot", "PK.key")); !bytes.Equal(before, after) {
		t.Error("PK.key changed")
	}

	// -o, into a directory that holds other files but none of the nine.
	other := filepath.Join(dir, "keys")
	if err := os.MkdirAll(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "README"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := keel(t, "secureboot", "keys", "-o", other, "acme"); code != exitOK {
		t.Errorf("-o %s: exit %d", other, code)
	}
	// One of the nine present: refused, nothing else written.
	partial := filepath.Join(dir, "partial")
	if err := os.MkdirAll(partial, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(partial, "db.auth"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := keel(t, "secureboot", "keys", "-o", partial, "acme"); code != exitRefused {
		t.Errorf("one file present: exit %d, want %d", code, exitRefused)
	}
	if ents, _ := os.ReadDir(partial); len(ents) != 1 {
		t.Errorf("%d files after a refusal, want 1", len(ents))
	}

	for _, args := range [][]string{
		{"secureboot", "keys"},
		{"secureboot", "keys", "a", "b"},
		{"secureboot", "keys", "../acme"},
		{"secureboot", "keys", "--nope", "acme"},
	} {
		if code, _, _ := keel(t, args...); code != exitUsage {
			t.Errorf("keel %s: exit %d, want %d", strings.Join(args, " "), code, exitUsage)
		}
	}
}
