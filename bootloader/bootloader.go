// Package bootloader is the small interface every keel boot loader
// implements, and the registry that picks one by name. Slot switching is
// done only through boot entries, so a loader needs to do little: install
// itself, write the entry for a slot, and read and change the entries'
// state (DESIGN §4).
package bootloader

import (
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
)

// ESP is the part of a FAT filesystem a boot loader uses. *fat.FS
// implements it for disk images; a mounted ESP on a device implements it
// over the os package.
type ESP interface {
	Mkdir(path string) error
	WriteFile(path string, r io.Reader, size int64) error
	ReadFile(path string) ([]byte, error)
	Rename(oldPath, newPath string) error
	Remove(path string) error
}

// DirESP is an ESP that can also list a directory and make what was
// written durable: what updating and blessing need beyond building.
// bootloader/espfat adapts a *fat.FS, bootloader/espdir a mounted ESP.
type DirESP interface {
	ESP
	// ReadDir lists the names in the directory at path (not "." and "..").
	ReadDir(path string) ([]string, error)
	// Sync makes everything written so far durable.
	Sync() error
}

// Entry is what boots one slot.
type Entry struct {
	Slot       string // "a" or "b"
	Title      string // shown in menus, e.g. "busybox 1.0.0 (slot a)"
	Generation int    // only grows; the newest good generation boots
	Kernel     string // ESP path of the kernel, e.g. /keel/a/vmlinuz
	Initrd     string // ESP path of the initrd
	Options    string // kernel command line
	// EFI is the ESP path of an EFI image booted instead of Kernel, Initrd
	// and Options: a unified kernel image (/keel/a/keel.efi), which carries
	// its own initrd and signed command line. An entry has EFI or Kernel,
	// never both.
	EFI string
	// Tries is the number of trial boots left before the loader falls back;
	// 0 means a blessed entry that is not counted.
	Tries int
}

// Bootloader installs a boot loader on an ESP and writes its entries.
type Bootloader interface {
	// Install writes the loader's binaries and configuration.
	Install(esp ESP) error
	// WriteEntry writes e durably: through a temporary name and a rename.
	WriteEntry(esp ESP, e Entry) error
}

// EntryState is an entry found on the ESP, with its boot counter.
type EntryState struct {
	Entry
	File      string // file name, e.g. keel-b+2-1.conf
	TriesDone int    // trial boots already made (the counter's -M)
	// Counted means the name carries a counter: a trial (Tries > 0) or,
	// with no tries left, a bad entry.
	Counted bool
}

// State is "good" (blessed), "trial" (tries left) or "bad" (none left).
func (s EntryState) State() string {
	switch {
	case !s.Counted:
		return "good"
	case s.Tries > 0:
		return "trial"
	}
	return "bad"
}

// Manager reads and changes the entries on an ESP: what installing an
// update, blessing a boot and rolling back need.
type Manager interface {
	// WriteEntry writes e durably: through a temporary name and a rename.
	WriteEntry(esp ESP, e Entry) error
	// Entries lists the slots' entries, newest generation first.
	Entries(esp DirESP) ([]EntryState, error)
	// RemoveEntry makes every entry of slot unbootable and deletes it.
	RemoveEntry(esp DirESP, slot string) error
	// MarkGood blesses slot's entry: no counter, it boots for good.
	MarkGood(esp DirESP, slot string) error
	// MarkBad leaves slot's entry no tries, so the loader falls back.
	MarkBad(esp DirESP, slot string) error
	// Cleanup removes what an interrupted change left behind and says
	// what it did, one line per file.
	Cleanup(esp DirESP) ([]string, error)
	// Temporaries lists what a WriteEntry of slot with tries that failed
	// halfway may have left (temporary names), for an installer to
	// remove.
	Temporaries(slot string, tries int) []string
	// Booted says what the loader told the running system: the slot it
	// booted and, on a trial boot, the entry that counted it.
	Booted(env BootEnv) (Boot, error)
}

// Backend is one boot loader: how a build installs it, and how a device
// reads and changes its entries.
type Backend struct {
	// New makes the Bootloader a build installs, from the loader's files.
	New func(src Source) (Bootloader, error)
	// Packages are the Debian packages holding the loader's files for a
	// Debian architecture (amd64, arm64); none when the loader is not on
	// the disk (U-Boot is the board's firmware).
	Packages func(debianArch string) []string
	// Manager changes entries; it needs no binaries, so keelctl and
	// keel-init use it alone.
	Manager Manager
}

var backends = map[string]Backend{}

// Register makes a boot loader available by name. It is called from the
// backends' init functions and panics on a duplicate name (a programming
// error, not an input error).
func Register(name string, b Backend) {
	if _, dup := backends[name]; dup {
		panic("bootloader: duplicate registration of " + name)
	}
	backends[name] = b
}

// Names lists the registered boot loaders, sorted.
func Names() []string {
	names := make([]string, 0, len(backends))
	for n := range backends {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Lookup returns the named boot loader.
func Lookup(name string) (Backend, error) {
	b, ok := backends[name]
	if !ok {
		return Backend{}, fmt.Errorf("unsupported boot loader %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return b, nil
}

// Source is where a build takes a loader's files from.
type Source struct {
	// Files holds the loader's packages' files at their installed paths
	// ("usr/lib/grub/i386-pc/boot.img"): the packages unpacked, or the
	// build host's root.
	Files fs.FS
	// EFI is a local EFI binary the profile names instead (boot.efi).
	EFI string
	// Arch is the target architecture (x86_64, aarch64).
	Arch string
}

// New returns the named boot loader, for a build.
func New(name string, src Source) (Bootloader, error) {
	b, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	return b.New(src)
}

// ManagerFor returns the named boot loader's entry manager.
func ManagerFor(name string) (Manager, error) {
	b, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	return b.Manager, nil
}
