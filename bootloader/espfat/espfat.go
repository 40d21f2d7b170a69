// Package espfat adapts keel's FAT32 editor (image/fat) to
// bootloader.DirESP, for ESPs inside disk image files.
package espfat

import (
	"keel/bootloader"
	"keel/image/fat"
)

// ESP is a *fat.FS with ReadDir listing names.
type ESP struct{ *fat.FS }

var _ bootloader.DirESP = ESP{}

// ReadDir lists the names in the directory at p.
func (e ESP) ReadDir(p string) ([]string, error) {
	ents, err := e.FS.ReadDir(p)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, d := range ents {
		names[i] = d.Name
	}
	return names, nil
}
