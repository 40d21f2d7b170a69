package fat

import (
	"fmt"
	"hash/fnv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

const (
	maxLongName  = 255 // UTF-16 code units
	lfnChars     = 13  // UTF-16 code units per long-name entry
	lfnLastFlag  = 0x40
	lfnOrderMask = 0x1F
)

// shortChar reports whether c may appear in an 8.3 name as keel writes it:
// upper-case letters, digits and the punctuation DOS allows. Bytes >= 0x80
// would depend on a code page, so they never appear in names keel makes.
func shortChar(c byte) bool {
	switch {
	case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'()-@^_`{}~", c) >= 0
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// checkName refuses what no FAT driver can store: empty, "." and "..",
// characters VFAT forbids, and trailing dots or spaces (Linux strips those,
// so the name read back would differ from the one written).
func checkName(name string) error {
	switch {
	case name == "", name == ".", name == "..":
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: %q is not UTF-8", ErrInvalidName, name)
	case strings.HasSuffix(name, ".") || strings.HasSuffix(name, " "):
		return fmt.Errorf("%w: %q ends with a dot or space", ErrInvalidName, name)
	}
	for _, r := range name {
		if r < 0x20 || strings.ContainsRune(`"*/:<>?\|`, r) {
			return fmt.Errorf("%w: %q contains %q", ErrInvalidName, name, r)
		}
	}
	if n := len(utf16.Encode([]rune(name))); n > maxLongName {
		return fmt.Errorf("%w: %q is %d UTF-16 units long, the limit is %d", ErrInvalidName, name, n, maxLongName)
	}
	return nil
}

// exactShortName returns the 8.3 form of name when name already is a valid
// upper-case 8.3 name, which then needs no long-name entries.
func exactShortName(name string) ([11]byte, bool) {
	var s [11]byte
	for i := range s {
		s[i] = ' '
	}
	base, ext, hasDot := strings.Cut(name, ".")
	if len(base) < 1 || len(base) > 8 || len(ext) > 3 || (hasDot && len(ext) == 0) {
		return s, false
	}
	for i := 0; i < len(base); i++ {
		if !shortChar(base[i]) {
			return s, false
		}
		s[i] = base[i]
	}
	for i := 0; i < len(ext); i++ {
		if !shortChar(ext[i]) {
			return s, false
		}
		s[8+i] = ext[i]
	}
	return s, true
}

// shortBasis converts a long name to its 8.3 basis the way Linux's vfat
// (vfat_create_shortname) does: the extension is what follows the last dot
// unless everything before that dot is dots and spaces; dots and spaces are
// dropped from the base; characters not allowed become '_'; letters are
// upper-cased. lossless is true when only case changed and nothing was
// cut, so the basis can be used without a numeric tail.
func shortBasis(name string) (base, ext []byte, lossless bool) {
	lossless = true
	b, e := name, ""
	if i := strings.LastIndexByte(name, '.'); i >= 0 && i < len(name)-1 {
		if strings.Trim(name[:i], ". ") != "" {
			b, e = name[:i], name[i+1:]
		}
	}
	conv := func(s string, limit int) []byte {
		var out []byte
		for _, r := range s {
			if r == '.' || r == ' ' {
				lossless = false
				continue
			}
			c := byte('_')
			if r < utf8.RuneSelf && shortChar(upper(byte(r))) {
				c = upper(byte(r))
			} else {
				lossless = false
			}
			if len(out) == limit {
				lossless = false
				break
			}
			out = append(out, c)
		}
		return out
	}
	base, ext = conv(b, 8), conv(e, 3)
	if len(base) == 0 {
		base, lossless = []byte{'_'}, false
	}
	return base, ext, lossless
}

// makeShortName picks a short name for a long one that is unique among
// taken, like Linux: the basis itself if lossless, else BASE~1..BASE~9 with
// the base cut to 6 characters, else 2 characters, 4 hex digits and ~1. Linux
// seeds the hex digits from the clock; keel seeds them from the long name,
// so the result is reproducible.
func makeShortName(name string, taken map[[11]byte]bool) ([11]byte, error) {
	base, ext, lossless := shortBasis(name)
	var s [11]byte
	fill := func(b []byte, tail string) {
		for i := range s {
			s[i] = ' '
		}
		copy(s[:], b)
		copy(s[len(b):8], tail)
		copy(s[8:], ext)
	}
	if lossless {
		if fill(base, ""); !taken[s] {
			return s, nil
		}
	}
	b := base[:min(len(base), 6)]
	for i := 1; i <= 9; i++ {
		if fill(b, fmt.Sprintf("~%d", i)); !taken[s] {
			return s, nil
		}
	}
	b = base[:min(len(base), 2)]
	h := fnv.New32a()
	h.Write([]byte(name))
	seed := h.Sum32()
	for range 0x10000 {
		if fill(b, fmt.Sprintf("%04X~1", seed&0xFFFF)); !taken[s] {
			return s, nil
		}
		seed -= 11
	}
	return s, fmt.Errorf("%w: no free short name for %q", ErrNoSpace, name)
}

// shortDisplay turns an on-disk 8.3 name into its display form, applying
// the NT lower-case flags that Windows and Linux set for names like
// "readme.txt" stored without long-name entries.
func shortDisplay(s [11]byte, ntres byte) string {
	conv := func(b []byte, lower bool) string {
		var sb strings.Builder
		for _, c := range b {
			if lower && c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c < utf8.RuneSelf {
				sb.WriteByte(c)
			} else {
				sb.WriteRune(rune(c)) // no code page: show bytes as Latin-1
			}
		}
		return sb.String()
	}
	if s[0] == 0x05 {
		s[0] = 0xE5 // 0xE5 as a first byte is stored as 0x05
	}
	name := conv([]byte(trimSpace(s[:8])), ntres&0x08 != 0)
	if ext := trimSpace(s[8:]); ext != "" {
		name += "." + conv([]byte(ext), ntres&0x10 != 0)
	}
	return name
}

// lfnChecksum ties long-name entries to their short entry; a reader drops
// long names whose checksum does not match.
func lfnChecksum(s [11]byte) byte {
	var sum byte
	for _, c := range s {
		sum = (sum&1)<<7 + sum>>1 + c
	}
	return sum
}

// lfnEntries returns the long-name entries for name in on-disk order (the
// last part first), each carrying the short name's checksum.
func lfnEntries(name string, short [11]byte) [][dirEntrySize]byte {
	units := utf16.Encode([]rune(name))
	n := (len(units) + lfnChars - 1) / lfnChars
	if len(units)%lfnChars != 0 {
		units = append(units, 0) // terminator, then 0xFFFF padding
		for len(units)%lfnChars != 0 {
			units = append(units, 0xFFFF)
		}
	}
	sum := lfnChecksum(short)
	out := make([][dirEntrySize]byte, n)
	for i := range n {
		seq := i + 1
		var e [dirEntrySize]byte
		e[0] = byte(seq)
		if seq == n {
			e[0] |= lfnLastFlag
		}
		e[11] = attrLFN
		e[13] = sum
		part := units[i*lfnChars : (i+1)*lfnChars]
		for j, u := range part {
			off := lfnOffset(j)
			e[off], e[off+1] = byte(u), byte(u>>8)
		}
		out[n-1-i] = e
	}
	return out
}

// lfnOffset is where the j-th UTF-16 unit of a long-name entry lives: 5 at
// 1, 6 at 14, 2 at 28.
func lfnOffset(j int) int {
	switch {
	case j < 5:
		return 1 + 2*j
	case j < 11:
		return 14 + 2*(j-5)
	default:
		return 28 + 2*(j-11)
	}
}

// lfnUnits extracts the 13 UTF-16 units of a long-name entry.
func lfnUnits(e []byte) []uint16 {
	out := make([]uint16, lfnChars)
	for j := range out {
		off := lfnOffset(j)
		out[j] = uint16(e[off]) | uint16(e[off+1])<<8
	}
	return out
}
