// Package bootloader is the small interface every keel boot loader
// implements, and the registry that picks one by name. Slot switching is
// done only through boot entries, so a loader needs to do little: install
// itself, write the entry for a slot, and read and change the entries'
// state (DESIGN §4).
package bootloader

import (
	"fmt"
	"io"
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
}

// Factory makes a Bootloader from loader-specific options (e.g. the path of
// the EFI binary to install).
type Factory func(opts map[string]string) (Bootloader, error)

var factories = map[string]Factory{}

// Register makes a boot loader available by name. It is called from the
// backends' init functions and panics on a duplicate name (a programming
// error, not an input error).
func Register(name string, f Factory) {
	if _, dup := factories[name]; dup {
		panic("bootloader: duplicate registration of " + name)
	}
	factories[name] = f
}

// Names lists the registered boot loaders, sorted.
func Names() []string {
	names := make([]string, 0, len(factories))
	for n := range factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// New returns the named boot loader.
func New(name string, opts map[string]string) (Bootloader, error) {
	f, ok := factories[name]
	if !ok {
		return nil, fmt.Errorf("unsupported bootloader %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return f(opts)
}
