// Package ubootenv reads and writes U-Boot's environment block: the format
// of `saveenv`, `fw_setenv`/`fw_printenv` (tools/env/fw_env.c, or
// libubootenv's tools of the same names), `mkenvimage` and, for a single
// copy, `env export -c`/`env import -c` (cmd/nvedit.c). Those two commands
// use the build's env_t: CRC then data, unless U-Boot was built with a
// redundant environment (CONFIG_SYS_REDUNDAND_ENVIRONMENT, later
// CONFIG_ENV_REDUNDANT), where a flags byte sits between them; Debian's
// qemu_arm64 build has none, so a file for `env import -c` is a single copy.
//
// A single copy is a CRC32 (IEEE, little-endian, over the data area) then
// the data area: "name=value\0" entries, an empty entry ("\0") at the end,
// the rest padding. A redundant environment is two such copies, each with a
// flags byte between CRC and data; the reader takes the valid copy whose
// flags say it is newer.
//
// Variables are read the way U-Boot's himport_r reads them when it imports
// the block, since U-Boot is the reader that decides what boots, and written
// the way its hexport_r writes them, so a block written here is byte for
// byte what `env export -c -s SIZE` writes for the same variables.
// fw_printenv and fw_setenv do not escape: they show and write a value's
// backslashes as stored, so only values without backslashes read the same
// everywhere.
package ubootenv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
)

const (
	crcSize = 4
	// FlagOffset is where a redundant copy's flags byte sits in its block.
	FlagOffset = crcSize

	// ENV_REDUND_ACTIVE and ENV_REDUND_OBSOLETE (include/env_internal.h),
	// the two values of the boolean flag scheme.
	flagActive   = 1
	flagObsolete = 0
)

// ErrBadCRC is returned by Parse when no copy has a valid CRC: an erased or
// never-written block, or a torn write of the only copy.
var ErrBadCRC = errors.New("bad CRC")

// ErrTooBig is returned by Marshal and NextCopy when the variables do not
// fit in the block.
var ErrTooBig = errors.New("environment does not fit")

// FlagScheme is how the flags bytes of a redundant environment say which
// copy is current. fw_env.c picks the scheme from the storage type.
type FlagScheme int

const (
	// Incremental: the flags byte is a counter, advanced (mod 256) on every
	// write; the newer copy has the larger counter, 255 being older than 0.
	// fw_env.c uses it for NAND, UBI and anything that is not MTD (a file, a
	// block device); U-Boot's own env_check_redund compares the same way.
	Incremental FlagScheme = iota
	// Boolean: the copy written last is marked active (1) and the other one
	// then obsolete (0), for NOR flash and DataFlash, where a bit can be
	// cleared without erasing the sector.
	Boolean
)

func (s FlagScheme) String() string {
	switch s {
	case Incremental:
		return "incremental"
	case Boolean:
		return "boolean"
	}
	return fmt.Sprintf("FlagScheme(%d)", int(s))
}

// Env is one environment: its variables and, for redundant storage, which
// copy they came from.
type Env struct {
	Vars      map[string]string
	Redundant bool
	// Flags is the flags byte of the copy read (redundant only).
	Flags byte
	// Index is the copy read, 0 or 1 (redundant only).
	Index int
	// Scheme is how Flags is compared and advanced (redundant only).
	Scheme FlagScheme
}

func headerSize(redundant bool) int {
	if redundant {
		return crcSize + 1
	}
	return crcSize
}

// Parse reads b, one block of size bytes (single copy) or two blocks of size
// bytes back to back (redundant), choosing between redundant copies with the
// incremental scheme: that of files and block devices, and of U-Boot itself.
// It fails with ErrBadCRC when no copy has a valid CRC.
func Parse(b []byte, size int, redundant bool) (*Env, error) {
	return ParseScheme(b, size, redundant, Incremental)
}

// ParseScheme is Parse with the flag scheme of the storage given: Boolean
// for NOR flash or DataFlash. scheme is ignored for a single copy.
func ParseScheme(b []byte, size int, redundant bool, scheme FlagScheme) (*Env, error) {
	if size <= headerSize(redundant) {
		return nil, fmt.Errorf("environment size %d is too small", size)
	}
	copies := 1
	if redundant {
		copies = 2
	}
	if len(b) != copies*size {
		return nil, fmt.Errorf("environment is %d bytes, want %d (%d × %d)", len(b), copies*size, copies, size)
	}
	if !redundant {
		if !crcOK(b, false) {
			return nil, fmt.Errorf("environment: %w", ErrBadCRC)
		}
		vars, err := parseData(b[crcSize:])
		if err != nil {
			return nil, err
		}
		return &Env{Vars: vars}, nil
	}
	if scheme != Incremental && scheme != Boolean {
		return nil, fmt.Errorf("unknown flag scheme %v", scheme)
	}
	b0, b1 := b[:size], b[size:]
	ok0, ok1 := crcOK(b0, true), crcOK(b1, true)
	var index int
	switch {
	case ok0 && !ok1:
		index = 0
	case !ok0 && ok1:
		index = 1
	case !ok0 && !ok1:
		return nil, fmt.Errorf("redundant environment, both copies: %w", ErrBadCRC)
	default:
		index = current(b0[FlagOffset], b1[FlagOffset], scheme)
	}
	blk := b[index*size : (index+1)*size]
	vars, err := parseData(blk[crcSize+1:])
	if err != nil {
		return nil, fmt.Errorf("redundant environment, copy %d: %w", index, err)
	}
	return &Env{Vars: vars, Redundant: true, Flags: blk[FlagOffset], Index: index, Scheme: scheme}, nil
}

// current is fw_env_open's choice between two copies with valid CRCs.
func current(flag0, flag1 byte, scheme FlagScheme) int {
	if scheme == Boolean {
		switch {
		case flag0 == flagActive && flag1 == flagObsolete:
			return 0
		case flag0 == flagObsolete && flag1 == flagActive:
			return 1
		case flag0 == flag1:
			return 0
		case flag0 == 0xff: // erased: never marked obsolete
			return 0
		case flag1 == 0xff:
			return 1
		}
		return 0
	}
	switch {
	case flag0 == 255 && flag1 == 0:
		return 1
	case (flag1 == 255 && flag0 == 0) || flag0 >= flag1:
		return 0
	}
	return 1
}

func crcOK(blk []byte, redundant bool) bool {
	return binary.LittleEndian.Uint32(blk) == crc32.ChecksumIEEE(blk[headerSize(redundant):])
}

// parseData reads a data area as himport_r does with '\0' as separator:
// leading blanks of a name are skipped, an entry starting with '#' is a
// comment, "name" and "name=" delete name, a later entry replaces an
// earlier one, a backslash escapes the next character of a value (hexport_r
// escapes backslashes on export), and an empty name fails the import. The
// entries end at the first empty one or at the end of the area; an entry
// running to the end of the area unterminated is refused, as fw_env.c does.
func parseData(d []byte) (map[string]string, error) {
	vars := map[string]string{}
	for len(d) > 0 && d[0] != 0 {
		end := bytes.IndexByte(d, 0)
		if end < 0 {
			return nil, errors.New("environment not terminated")
		}
		entry := d[:end]
		d = d[end+1:]
		entry = bytes.TrimLeft(entry, " \t")
		if len(entry) > 0 && entry[0] == '#' {
			continue
		}
		name, value, _ := bytes.Cut(entry, []byte("="))
		if len(value) == 0 {
			delete(vars, string(name))
			continue
		}
		if len(name) == 0 {
			return nil, fmt.Errorf("entry %q has an empty name", entry)
		}
		vars[string(name)] = unescape(value)
	}
	return vars, nil
}

func unescape(v []byte) string {
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v)
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		out = append(out, v[i])
	}
	return string(out)
}

// checkVar refuses what U-Boot would not read back as written.
func checkVar(name, value string) error {
	switch {
	case name == "":
		return errors.New("empty variable name")
	case strings.ContainsAny(name, "=\x00"):
		return fmt.Errorf("variable name %q contains '=' or NUL", name)
	case name[0] == ' ' || name[0] == '\t':
		return fmt.Errorf("variable name %q starts with a blank", name)
	case name[0] == '#':
		return fmt.Errorf("variable name %q starts with '#'", name)
	case strings.IndexByte(value, 0) >= 0:
		return fmt.Errorf("value of %s contains NUL", name)
	}
	return nil
}

// data encodes the variables as hexport_r does: sorted by name, backslashes
// in values escaped, an empty entry at the end, zero padding to n bytes. A
// variable with an empty value is left out: U-Boot reads "name=" as
// deleting name, and `setenv name` with no value deletes it.
func (e *Env) data(n int) ([]byte, error) {
	names := make([]string, 0, len(e.Vars))
	for name, value := range e.Vars {
		if err := checkVar(name, value); err != nil {
			return nil, err
		}
		if value != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	d := make([]byte, 0, n)
	for _, name := range names {
		d = append(d, name...)
		d = append(d, '=')
		d = append(d, strings.ReplaceAll(e.Vars[name], `\`, `\\`)...)
		d = append(d, 0)
	}
	d = append(d, 0)
	if len(d) > n {
		return nil, fmt.Errorf("%w: %d bytes of data, the block holds %d", ErrTooBig, len(d), n)
	}
	return d[:n], nil
}

// block is one copy of size bytes with the given flags byte (redundant).
func (e *Env) block(size int, flags byte) ([]byte, error) {
	h := headerSize(e.Redundant)
	if size <= h {
		return nil, fmt.Errorf("environment size %d is too small", size)
	}
	d, err := e.data(size - h)
	if err != nil {
		return nil, err
	}
	blk := make([]byte, h, size)
	blk = append(blk, d...)
	binary.LittleEndian.PutUint32(blk, crc32.ChecksumIEEE(d))
	if e.Redundant {
		blk[FlagOffset] = flags
	}
	return blk, nil
}

// Marshal encodes e as a fresh environment of size bytes per copy. A
// redundant one is both copies with the same data, copy 0 active (flags 1)
// and copy 1 obsolete (flags 0): copy 0 is current under either flag
// scheme, so Parse of the result gives Index 0 and Flags 1. The output
// depends only on the variables.
func (e *Env) Marshal(size int) ([]byte, error) {
	blk, err := e.block(size, flagActive)
	if err != nil {
		return nil, err
	}
	if !e.Redundant {
		return blk, nil
	}
	other := bytes.Clone(blk)
	other[FlagOffset] = flagObsolete
	return append(blk, other...), nil
}

// NextCopy is how fw_setenv updates redundant storage: it returns the copy
// not in use, index, and the block to write there, with flags that make it
// current once written (the counter advanced, or active). e must describe
// the copy in use, as Parse or the previous NextCopy left it; NextCopy then
// updates Index and Flags to describe the new block. Under Boolean the
// caller must, after writing block, clear the old copy's flags byte (offset
// FlagOffset in copy 1-index) as fw_env.c does; until then the reader still
// takes copy 0, so a write cut short leaves a consistent environment.
func (e *Env) NextCopy(size int) (index int, block []byte, err error) {
	if !e.Redundant {
		return 0, nil, errors.New("next copy: environment is not redundant")
	}
	if e.Index != 0 && e.Index != 1 {
		return 0, nil, fmt.Errorf("next copy: copy index %d, want 0 or 1", e.Index)
	}
	var flags byte
	switch e.Scheme {
	case Incremental:
		flags = e.Flags + 1 // wraps from 255 to 0, which current reads as newer
	case Boolean:
		flags = flagActive
	default:
		return 0, nil, fmt.Errorf("next copy: unknown flag scheme %v", e.Scheme)
	}
	index = 1 - e.Index
	block, err = e.block(size, flags)
	if err != nil {
		return 0, nil, fmt.Errorf("next copy: %w", err)
	}
	e.Index, e.Flags = index, flags
	return index, block, nil
}
