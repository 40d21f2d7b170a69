// Package script compiles a U-Boot script into the file U-Boot's `source`
// command and its distro boot (boot.scr) run: a legacy uImage of type
// script, byte for byte what
//
//	mkimage -A ARCH -O linux -T script -C none -n NAME -d FILE boot.scr
//
// writes with SOURCE_DATE_EPOCH=mtime (tools/mkimage.c, default_image.c).
package script

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"math"
	"slices"
	"strings"
)

// Values from include/image.h.
const (
	ihMagic    = 0x27051956
	ihNameLen  = 32
	ihOSLinux  = 5
	ihTypeScr  = 6
	ihCompNone = 0
	headerSize = 64
)

// archs maps mkimage's -A names (boot/image.c uimage_arch) to IH_ARCH_*.
var archs = map[string]byte{
	"alpha":      1,
	"arm":        2,
	"x86":        3,
	"ia64":       4,
	"mips":       5,
	"mips64":     6,
	"powerpc":    7,
	"ppc":        7,
	"s390":       8,
	"sh":         9,
	"sparc":      10,
	"sparc64":    11,
	"m68k":       12,
	"microblaze": 14,
	"nios2":      15,
	"blackfin":   16,
	"avr32":      17,
	"sandbox":    19,
	"nds32":      20,
	"or1k":       21,
	"arm64":      22,
	"arc":        23,
	"x86_64":     24,
	"xtensa":     25,
	"riscv":      26,
}

// Archs lists the architecture names Compile knows, sorted.
func Archs() []string {
	return slices.Sorted(maps.Keys(archs))
}

// Compile wraps src in a script uImage for arch (a mkimage -A name such as
// "arm64", "arm" or "x86_64") named name (at most 32 bytes, the header's
// field; mkimage would cut it silently), with mtime as its creation time.
//
// The data is mkimage's multi-file layout with one file: its length and a
// zero terminator, both big-endian 32-bit, then the script unpadded.
// Load address and entry point are 0, as mkimage leaves them without -a/-e.
func Compile(src []byte, name string, arch string, mtime int64) ([]byte, error) {
	a, ok := archs[arch]
	if !ok {
		return nil, fmt.Errorf("compiling script: unknown architecture %q (known: %s)", arch, strings.Join(Archs(), ", "))
	}
	if len(name) > ihNameLen {
		return nil, fmt.Errorf("compiling script: name %q is %d bytes, the uImage header holds %d", name, len(name), ihNameLen)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return nil, errors.New("compiling script: name contains NUL")
	}
	if len(src) == 0 {
		return nil, errors.New("compiling script: empty script") // mkimage refuses it too
	}
	if mtime < 0 || mtime > math.MaxUint32 {
		return nil, fmt.Errorf("compiling script: time %d does not fit the header's 32 bits", mtime)
	}
	// ih_size is 32 bits and holds the 8 bytes of the length list too.
	if uint64(len(src)) > math.MaxUint32-8 {
		return nil, fmt.Errorf("compiling script: %d bytes is too big for a uImage", len(src))
	}
	be := binary.BigEndian
	img := make([]byte, headerSize+8, headerSize+8+len(src))
	be.PutUint32(img[headerSize:], uint32(len(src)))
	// img[headerSize+4:headerSize+8] is the list's zero terminator.
	img = append(img, src...)

	h := img[:headerSize]
	be.PutUint32(h[0:], ihMagic)
	// h[4:8], ih_hcrc, is zero while the header's CRC is computed.
	be.PutUint32(h[8:], uint32(mtime))
	be.PutUint32(h[12:], uint32(len(img)-headerSize))
	// ih_load and ih_ep (h[16:24]) stay 0.
	be.PutUint32(h[24:], crc32.ChecksumIEEE(img[headerSize:]))
	h[28], h[29], h[30], h[31] = ihOSLinux, a, ihTypeScr, ihCompNone
	copy(h[32:], name)
	be.PutUint32(h[4:], crc32.ChecksumIEEE(h))
	return img, nil
}
