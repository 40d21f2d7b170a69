package main

import (
	"os"
	"path/filepath"
	"testing"
)

// buildDir prepares what a `keel build` test needs without a real kernel:
// a temporary directory holding a fake vmlinuz, and fake keel-init and
// keelctl binaries named by $KEEL_INIT and $KEEL_CTL. It skips when the
// host has no systemd-boot to install. write adds a file to the directory
// and returns its path.
func buildDir(t *testing.T) (dir string, write func(name string, b []byte) string) {
	t.Helper()
	if _, err := os.Stat("/usr/lib/systemd/boot/efi/systemd-bootx64.efi"); err != nil {
		t.Skip("systemd-boot not installed: apt-get install systemd-boot-efi")
	}
	dir = t.TempDir()
	write = func(name string, b []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("vmlinuz", []byte("not really a kernel"))
	t.Setenv("KEEL_INIT", write("keel-init", []byte("\x7fELF not really")))
	t.Setenv("KEEL_CTL", write("keelctl", []byte("\x7fELF not really either")))
	return dir, write
}
