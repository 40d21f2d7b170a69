package install

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"keel/bootloader"
)

// Image says what a slot holds. It is stored beside the slot's kernel (or
// unified kernel image), at /keel/<slot>/image.json on the ESP, by keel
// build and by Install, so that the running image's identity can be read
// without mounting its squashfs, on a device and on a build host alike.
type Image struct {
	Name       string `json:"name"`
	Version    string `json:"version"`
	Compatible string `json:"compatible"`
	Arch       string `json:"arch"`
	BuildID    string `json:"build_id,omitempty"`
	// Tries is the profile's update.tries: the trial boots an update
	// installed from this image gets (0: DefaultTries).
	Tries int `json:"tries,omitempty"`
	// RootHash is the dm-verity root hash of the slot's root filesystem
	// (lowercase hex), when it has a verity tree: from the bundle's
	// manifest at install, from the build for a new disk. It is shown by
	// keelctl status and keel inspect; what the kernel checks the root
	// against is the copy in the signed UKI's command line.
	RootHash string `json:"root_hash,omitempty"`
	// RootBytes is the size of the slot's rootfs artifact (the squashfs
	// and its verity tree): the bytes of the partition a delta install
	// chunks when the slot has no index (IndexPath). 0 when unknown.
	RootBytes int64 `json:"root_bytes,omitempty"`
}

// ImagePath is where a slot's Image is stored on the ESP.
func ImagePath(slot string) string { return path.Join("/keel", slot, "image.json") }

// Marshal is the file's content: indented JSON, fields in a fixed order.
func (im Image) Marshal() []byte {
	b, _ := json.MarshalIndent(im, "", "  ")
	return append(b, '\n')
}

// WriteImage writes slot's image.json through a temporary name.
func WriteImage(esp bootloader.ESP, slot string, im Image) error {
	b := im.Marshal()
	p := ImagePath(slot)
	if err := esp.WriteFile(p+".tmp", bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := esp.Rename(p+".tmp", p); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// ReadImage reads slot's image.json. An image built before image.json
// existed has none: then the name and version come from the entry's title
// ("busybox 1.0.0 (slot a)"), compatible defaults to the name, as in a
// profile, and the architecture to x86_64, the only one keel builds.
func ReadImage(esp bootloader.ESP, slot string, e bootloader.EntryState) (Image, error) {
	b, err := esp.ReadFile(ImagePath(slot))
	if errors.Is(err, fs.ErrNotExist) {
		f := strings.Fields(strings.TrimSuffix(e.Title, fmt.Sprintf(" (slot %s)", slot)))
		if len(f) != 2 {
			return Image{}, fmt.Errorf("slot %s: no %s and the entry title %q is not \"NAME VERSION\"", slot, ImagePath(slot), e.Title)
		}
		return Image{Name: f[0], Version: f[1], Compatible: f[0], Arch: "x86_64"}, nil
	}
	if err != nil {
		return Image{}, fmt.Errorf("read %s: %w", ImagePath(slot), err)
	}
	var im Image
	if err := json.Unmarshal(b, &im); err != nil {
		return Image{}, fmt.Errorf("read %s: %w", ImagePath(slot), err)
	}
	return im, nil
}
