package systemdboot_test

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"keel/bootloader"
	"keel/bootloader/espdir"
	"keel/bootloader/systemdboot"
)

// TestInstallByArch: the loader goes to the removable-media path firmware
// of the target architecture boots, whether it comes from the package's
// files or from the profile's boot.efi.
func TestInstallByArch(t *testing.T) {
	efi := []byte("MZ loader")
	own := filepath.Join(t.TempDir(), "own.efi")
	if err := os.WriteFile(own, efi, 0o644); err != nil {
		t.Fatal(err)
	}
	pkg := fstest.MapFS{
		"usr/lib/systemd/boot/efi/systemd-bootx64.efi":  {Data: efi},
		"usr/lib/systemd/boot/efi/systemd-bootaa64.efi": {Data: efi},
	}
	for _, c := range []struct {
		name           string
		src            bootloader.Source
		removable, own string
	}{
		{"package, x86_64", bootloader.Source{Files: pkg, Arch: "x86_64"}, "BOOT/BOOTX64.EFI", "systemd/systemd-bootx64.efi"},
		{"package, default arch", bootloader.Source{Files: pkg}, "BOOT/BOOTX64.EFI", "systemd/systemd-bootx64.efi"},
		{"package, aarch64", bootloader.Source{Files: pkg, Arch: "aarch64"}, "BOOT/BOOTAA64.EFI", "systemd/systemd-bootaa64.efi"},
		{"boot.efi, x86_64", bootloader.Source{EFI: own, Arch: "x86_64"}, "BOOT/BOOTX64.EFI", "systemd/systemd-bootx64.efi"},
		{"boot.efi, aarch64", bootloader.Source{EFI: own, Arch: "aarch64"}, "BOOT/BOOTAA64.EFI", "systemd/systemd-bootaa64.efi"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, err := systemdboot.FromSource(c.src)
			if err != nil {
				t.Fatal(err)
			}
			root := t.TempDir()
			if err := l.Install(espdir.Dir{Root: root}); err != nil {
				t.Fatal(err)
			}
			for _, d := range []string{"BOOT", "systemd"} {
				names, err := os.ReadDir(filepath.Join(root, "EFI", d))
				if err != nil {
					t.Fatal(err)
				}
				want := map[string]string{"BOOT": c.removable, "systemd": c.own}[d]
				if len(names) != 1 || filepath.Join(d, names[0].Name()) != want {
					t.Errorf("EFI/%s holds %v, want only %s", d, names, want)
				}
			}
		})
	}
}
