package build

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keel/profiles"
)

// TestSecureBootAarch64Refused: --sb-key turns a unified kernel image
// on, which keel assembles for x86_64 only, so an aarch64 build with it
// stops before anything is fetched or written.
func TestSecureBootAarch64Refused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("MZ"), 0o644); err != nil {
		t.Fatal(err)
	}
	yaml := "name: t\nversion: \"1\"\narch: aarch64\nkernel: {file: vmlinuz}\n"
	p, err := profiles.Parse(filepath.Join(dir, "p.yaml"), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "disk.img")
	_, err = Build(context.Background(), p, Options{Output: out, SecureBoot: &SecureBoot{}})
	if err == nil || !strings.Contains(err.Error(), "arch: Secure Boot signs a unified kernel image, not supported for aarch64 yet") {
		t.Fatalf("err = %v, want the arch refused", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("%s exists after a refused build (%v)", out, err)
	}
}
