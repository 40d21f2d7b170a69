// Package systemdboot installs systemd-boot and writes Boot Loader
// Specification Type #1 entries with boot counting (DESIGN §4): one entry per
// slot, named keel-<slot>[+<tries>].conf, whose "version" is the generation.
// An entry boots the slot's kernel and initrd (linux, initrd, options) or
// its unified kernel image (efi).
package systemdboot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"keel/bootloader"
)

// Name is the name this loader registers under.
const Name = "systemd-boot"

// DefaultEFI is where Debian's systemd-boot-efi package puts the loader.
const DefaultEFI = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"

// Package is the Debian package that holds the loader and its UKI stub.
const Package = "systemd-boot-efi"

// efiNames are the loader's file name in Package, and the removable-media
// path firmware boots, by architecture.
var efiNames = map[string][2]string{
	"x86_64":  {"systemd-bootx64.efi", "BOOTX64.EFI"},
	"aarch64": {"systemd-bootaa64.efi", "BOOTAA64.EFI"},
}

// FromSource takes the loader from src: the profile's EFI binary, else
// the package's (or build host's) for src.Arch.
func FromSource(src bootloader.Source) (bootloader.Bootloader, error) {
	arch := src.Arch
	if arch == "" {
		arch = "x86_64"
	}
	names, ok := efiNames[arch]
	if !ok {
		return nil, fmt.Errorf("systemd-boot: no loader for architecture %s", arch)
	}
	if src.EFI != "" {
		l, err := New(src.EFI)
		if err != nil {
			return nil, err
		}
		l.removable, l.own = "/EFI/BOOT/"+names[1], "/EFI/systemd/"+names[0]
		return l, nil
	}
	p := "usr/lib/systemd/boot/efi/" + names[0]
	b, err := fs.ReadFile(src.Files, p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("systemd-boot not found at /%s: install the %s package or set boot.efi in the profile", p, Package)
	}
	if err != nil {
		return nil, fmt.Errorf("read systemd-boot: %w", err)
	}
	l, err := FromBytes(Package+":/"+p, b)
	if err != nil {
		return nil, err
	}
	l.removable = "/EFI/BOOT/" + names[1]
	l.own = "/EFI/systemd/" + names[0]
	return l, nil
}

func init() {
	bootloader.Register(Name, bootloader.Backend{
		New: FromSource,
		Packages: func(string) []string {
			return []string{Package}
		},
		Manager: Entries{},
	})
}

// Loader is systemd-boot.
type Loader struct {
	Entries // managing entries needs no EFI binary
	efi     []byte
	// where Install puts the loader: the removable-media path, and
	// systemd's own.
	removable, own string
	// keys to enroll for Secure Boot, by file name (EnrollKeys).
	keys map[string][]byte
}

// New reads the systemd-boot EFI binary at efiPath (DefaultEFI if empty).
func New(efiPath string) (*Loader, error) {
	if efiPath == "" {
		efiPath = DefaultEFI
	}
	b, err := os.ReadFile(efiPath)
	if errors.Is(err, fs.ErrNotExist) && efiPath == DefaultEFI {
		return nil, fmt.Errorf("systemd-boot not found at %s: install the systemd-boot-efi package or set boot.loader in the profile", efiPath)
	}
	if err != nil {
		return nil, fmt.Errorf("read systemd-boot: %w", err)
	}
	return FromBytes(efiPath, b)
}

// FromBytes is New for an EFI binary already read (from a package); name
// says where it came from, in errors.
func FromBytes(name string, b []byte) (*Loader, error) {
	if len(b) < 2 || b[0] != 'M' || b[1] != 'Z' {
		return nil, fmt.Errorf("%s is not an EFI (PE) binary", name)
	}
	return &Loader{efi: b, removable: "/EFI/BOOT/BOOTX64.EFI", own: "/EFI/systemd/systemd-bootx64.efi"}, nil
}

// LoaderConf is loader/loader.conf. "default keel-*" lets the newest good
// entry of either slot win; a default naming one slot would keep booting it
// even with no tries left (DESIGN §4).
const LoaderConf = "timeout 0\ndefault keel-*\neditor no\n"

// Install writes the loader to the removable-media path (what firmware
// boots with no boot variables, as on a new disk) and to systemd's own path,
// and writes loader.conf.
func (l *Loader) Install(esp bootloader.ESP) error {
	for _, d := range []string{"/EFI", "/EFI/BOOT", "/EFI/systemd", "/loader", "/loader/entries"} {
		if err := esp.Mkdir(d); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("install systemd-boot: mkdir %s: %w", d, err)
		}
	}
	files := []struct {
		path string
		data []byte
	}{
		{l.removable, l.efi},
		{l.own, l.efi},
		{"/loader/loader.conf", []byte(l.conf())},
	}
	for _, f := range files {
		if err := bootloader.WriteAtomic(esp, f.path, f.data); err != nil {
			return fmt.Errorf("install systemd-boot: %w", err)
		}
	}
	if err := l.installKeys(esp, func(p string, b []byte) error { return bootloader.WriteAtomic(esp, p, b) }); err != nil {
		return fmt.Errorf("install systemd-boot: %w", err)
	}
	return nil
}

// EntryName is the file name of a slot's entry with tries left (0: blessed).
func EntryName(slot string, tries int) string {
	if tries > 0 {
		return fmt.Sprintf("keel-%s+%d.conf", slot, tries)
	}
	return "keel-" + slot + ".conf"
}

// FormatEntry renders e as a Type #1 entry. With e.EFI set it boots that
// EFI image (a unified kernel image) with an "efi" line and has no linux,
// initrd or options line: the image carries its own initrd and its signed
// command line, and an options line would be passed to it as load options,
// which systemd-stub takes over its own command line when Secure Boot is
// off. The entry stays Type #1, not a Type #2 image found by itself, so the
// generation (version) and the boot counter (the file name) stay in this
// unsigned file, which a rollback rewrites while the signed image stays as
// it is.
func FormatEntry(e bootloader.Entry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "title %s\n", e.Title)
	fmt.Fprintf(&b, "sort-key keel\n")
	fmt.Fprintf(&b, "version %d\n", e.Generation)
	if e.EFI != "" {
		fmt.Fprintf(&b, "efi %s\n", e.EFI)
		return b.String()
	}
	fmt.Fprintf(&b, "linux %s\n", e.Kernel)
	fmt.Fprintf(&b, "initrd %s\n", e.Initrd)
	fmt.Fprintf(&b, "options %s\n", e.Options)
	return b.String()
}

// WriteEntry writes the entry for e.Slot through a temporary name that
// systemd-boot ignores (it reads only *.conf), then renames it into place.
func (Entries) WriteEntry(esp bootloader.ESP, e bootloader.Entry) error {
	if e.Slot != "a" && e.Slot != "b" {
		return fmt.Errorf("write entry: unknown slot %q", e.Slot)
	}
	if e.Tries < 0 {
		return fmt.Errorf("write entry: negative tries %d", e.Tries)
	}
	if e.EFI != "" && e.Kernel != "" {
		return fmt.Errorf("write entry for slot %s: both an EFI image (%s) and a kernel (%s)", e.Slot, e.EFI, e.Kernel)
	}
	p := path.Join("/loader/entries", EntryName(e.Slot, e.Tries))
	if err := bootloader.WriteAtomic(esp, p, []byte(FormatEntry(e))); err != nil {
		return fmt.Errorf("write entry for slot %s: %w", e.Slot, err)
	}
	return nil
}

// Temporaries is the temporary name WriteEntry writes slot's entry under.
func (Entries) Temporaries(slot string, tries int) []string {
	return []string{path.Join(EntriesDir, EntryName(slot, tries)) + ".tmp"}
}
