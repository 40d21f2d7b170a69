// Package grub is keel's GRUB backend (DESIGN §4): one disk that boots by
// UEFI (Debian's monolithic grubx64.efi at the removable-media path) and
// by BIOS (core.img, assembled by keel in the BIOS boot partition, and
// boot.img in the MBR). Both read the same fixed grub.cfg, which picks the
// slot from the slots' entry files and the try counters in grubenv
// (Entries).
package grub

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"keel/bootloader"
	"keel/bootloader/grub/pcimage"
	"keel/bootloader/internal/counted"
)

// Name is the name this loader registers under.
const Name = "grub"

// Where the loader's files are in Debian's packages.
const (
	efiPackage = "grub-efi-amd64-bin"
	pcPackage  = "grub-pc-bin"
	efiImage   = "usr/lib/grub/x86_64-efi/monolithic/grubx64.efi"
	pcDir      = "usr/lib/grub/i386-pc"
)

// efiPrefix is where the monolithic image looks for grub.cfg on the
// device it was started from: it was built for Debian's own ESP layout.
const efiPrefix = "/EFI/debian"

// pcPrefix is where core.img finds grub.cfg: /grub on the boot drive's
// first GPT partition, the ESP.
const pcPrefix = "(,gpt1)" + Dir

// pcModules are built into core.img: what grub.cfg uses, and the disk,
// partition table and filesystem to read it from. No module is loaded
// later, so /grub holds no modules.
var pcModules = []string{
	"biosdisk", "part_gpt", "fat", "normal", "configfile", "echo", "test",
	"loadenv", "linux", "serial", "terminal", "halt", "reboot", "sleep",
}

func init() {
	bootloader.Register(Name, bootloader.Backend{
		New: FromSource,
		Packages: func(arch string) []string {
			if arch == "amd64" {
				return []string{efiPackage, pcPackage}
			}
			return nil
		},
		Manager: Entries,
	})
}

// Loader installs GRUB for UEFI and BIOS.
type Loader struct {
	counted.Manager
	efi []byte
	pc  fs.FS // the i386-pc directory
}

// FromSource takes GRUB's files from src.
func FromSource(src bootloader.Source) (bootloader.Bootloader, error) {
	if src.Arch != "" && src.Arch != "x86_64" {
		return nil, fmt.Errorf("grub: keel installs GRUB for x86_64 only, not %s", src.Arch)
	}
	if src.EFI != "" {
		return nil, fmt.Errorf("grub: boot.efi is systemd-boot's binary")
	}
	efi, err := fs.ReadFile(src.Files, efiImage)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("GRUB's EFI image is not at /%s: install the %s package, or build with Debian packages", efiImage, efiPackage)
	}
	if err != nil {
		return nil, fmt.Errorf("read GRUB's EFI image: %w", err)
	}
	if len(efi) < 2 || efi[0] != 'M' || efi[1] != 'Z' {
		return nil, fmt.Errorf("/%s is not an EFI (PE) binary", efiImage)
	}
	pc, err := fs.Sub(src.Files, pcDir)
	if err != nil {
		return nil, err
	}
	if _, err := fs.Stat(pc, "boot.img"); err != nil {
		return nil, fmt.Errorf("GRUB's BIOS files are not in /%s: install the %s package, or build with Debian packages", pcDir, pcPackage)
	}
	return &Loader{Manager: Entries, efi: efi, pc: pc}, nil
}

// Install writes the EFI image, both configurations and an initial
// grubenv with no slot bootable (the build's first WriteEntry blesses
// slot a).
func (l *Loader) Install(esp bootloader.ESP) error {
	for _, d := range []string{"/EFI", "/EFI/BOOT", efiPrefix, Dir} {
		if err := esp.Mkdir(d); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("install GRUB: mkdir %s: %w", d, err)
		}
	}
	env, err := FormatEnv(counted.InitialState())
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path string
		data []byte
	}{
		{"/EFI/BOOT/BOOTX64.EFI", l.efi},
		// The monolithic image reads $prefix/grub.cfg, on the ESP.
		{efiPrefix + "/grub.cfg", []byte("source " + Dir + "/grub.cfg\n")},
		{Dir + "/grub.cfg", []byte(Config())},
		{EnvPath, env},
	} {
		if err := esp.WriteFile(f.path, bytes.NewReader(f.data), int64(len(f.data))); err != nil {
			return fmt.Errorf("install GRUB: %w", err)
		}
	}
	return nil
}

// InstallBIOS assembles core.img and embeds it in the BIOS boot partition
// (start, sectors), with boot.img in the MBR pointing at it.
func (l *Loader) InstallBIOS(disk interface {
	io.ReaderAt
	io.WriterAt
}, start, sectors uint64) error {
	core, err := pcimage.CoreImage(l.pc, pcModules, pcPrefix, nil)
	if err != nil {
		return fmt.Errorf("GRUB core.img: %w", err)
	}
	if err := pcimage.Embed(disk, l.pc, core, start, sectors); err != nil {
		return fmt.Errorf("GRUB core.img: %w", err)
	}
	return nil
}
