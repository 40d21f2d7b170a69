package bundle

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// Magic opens every bundle; the format version follows it.
const Magic = "KEELBNDL"

const (
	// Format is the bundle format this package writes and reads.
	Format = 1
	// MaxManifest caps the manifest length read from a header, so a corrupt
	// or hostile length cannot make a reader allocate without bound.
	MaxManifest = 1 << 20
	// headerSize is magic, version, manifest length, signature length.
	headerSize = len(Magic) + 4 + 4 + 4
	keyIDSize  = 8
	sigSize    = keyIDSize + 64
)

// The artifacts a bundle carries, in the order the installer writes them
// (DESIGN §4: the slot first, then the files its entry points at).
const (
	Rootfs = "rootfs"
	Kernel = "kernel"
	Initrd = "initrd"
	// UKI is a unified kernel image: kernel, initrd and command line in
	// one EFI binary, signed for Secure Boot as a whole. Its command line
	// names no slot, so one image serves either.
	UKI = "uki"
	// Index is the optional first artifact: the content-defined chunks of
	// the artifacts after it (image/delta), with which a device fetches
	// only the byte ranges of the bundle it does not already have. Bound
	// by its sha256 in the signed manifest like the others.
	Index = "index"
)

// MaxIndex caps the index artifact's size, which an installer reads
// whole into memory: 64 MiB is 1.8 million chunks, a 28 GiB rootfs at
// the smallest chunk size image/delta writes.
const MaxIndex = 64 << 20

// A bundle carries one of two artifact sets, always in its install order:
// InstallOrder (a kernel and an initrd, booted by a linux entry) or
// UKIOrder (a unified kernel image, booted by an efi entry), either one
// optionally preceded by an Index. All keep format 1: a reader that knows
// only the first set refuses a bundle of another as corrupt (its artifact
// 1 is not "kernel", or artifact 0 is not "rootfs", or its manifest has a
// field it does not know) before anything is written.
var (
	InstallOrder = []string{Rootfs, Kernel, Initrd}
	UKIOrder     = []string{Rootfs, UKI}
	// The same with an index first.
	IndexedInstallOrder = []string{Index, Rootfs, Kernel, Initrd}
	IndexedUKIOrder     = []string{Index, Rootfs, UKI}
)

// Errors callers branch on. Each is returned wrapped with what was wrong.
var (
	ErrBadSignature = errors.New("bad signature")
	ErrUnknownKey   = errors.New("signed by an untrusted key")
	ErrNoSignature  = errors.New("bundle is not signed")
	ErrHashMismatch = errors.New("hash mismatch")
	ErrTruncated    = errors.New("bundle is truncated")
	ErrCorrupt      = errors.New("bundle is corrupt")
)

// Artifact is one payload of a bundle.
type Artifact struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lowercase hex
}

// Manifest is what a bundle says about itself; its JSON bytes are signed.
type Manifest struct {
	Format     int        `json:"format"`
	Name       string     `json:"name"`
	Version    string     `json:"version"`
	Compatible string     `json:"compatible"`
	Arch       string     `json:"arch"`
	BuildID    string     `json:"build_id"`
	Artifacts  []Artifact `json:"artifacts"`
	// Verity describes the dm-verity hash tree the rootfs artifact
	// carries after its data, when the build made one. It is for showing
	// (keel bundle inspect, keelctl status): what binds the root to the
	// image is the root hash in the UKI's signed command line.
	Verity *Verity `json:"verity,omitempty"`
}

// Verity is the dm-verity tree of a rootfs artifact (rootfs/verity): the
// data is DataBlocks blocks of 4096 bytes from the artifact's start, the
// tree's superblock at HashOffset within it.
type Verity struct {
	RootHash   string `json:"root_hash"` // lowercase hex of the sha256 root
	Salt       string `json:"salt"`      // lowercase hex, may be empty
	DataBlocks uint64 `json:"data_blocks"`
	HashOffset int64  `json:"hash_offset"`
}

// Order is the artifact set m carries: UKIOrder when it lists a unified
// kernel image, else InstallOrder, each with the index first when it lists
// one (IndexedUKIOrder, IndexedInstallOrder). Check tells whether m
// follows it.
func (m *Manifest) Order() []string {
	_, indexed := m.Artifact(Index)
	switch {
	case m.UsesUKI() && indexed:
		return IndexedUKIOrder
	case m.UsesUKI():
		return UKIOrder
	case indexed:
		return IndexedInstallOrder
	}
	return InstallOrder
}

// Files are the artifacts that go to the ESP, in install order: the
// kernel and the initrd, or the unified kernel image.
func (m *Manifest) Files() []string {
	if m.UsesUKI() {
		return UKIOrder[1:]
	}
	return InstallOrder[1:]
}

// Offset is where the artifact named name starts in the bundle whose head
// (header, manifest and signature: HeadSize) is head bytes long, and false
// if m has no such artifact.
func (m *Manifest) Offset(head int64, name string) (int64, bool) {
	off := head
	for _, a := range m.Artifacts {
		if a.Name == name {
			return off, true
		}
		off += a.Size
	}
	return 0, false
}

// UsesUKI reports whether m carries a unified kernel image rather than a
// kernel and an initrd.
func (m *Manifest) UsesUKI() bool {
	_, ok := m.Artifact(UKI)
	return ok
}

// Artifact returns the artifact with the given name.
func (m *Manifest) Artifact(name string) (Artifact, bool) {
	for _, a := range m.Artifacts {
		if a.Name == name {
			return a, true
		}
	}
	return Artifact{}, false
}

// Check reports whether m is a manifest this package can install from:
// known format, identity filled in, exactly the artifacts of one of the two
// sets (InstallOrder, UKIOrder) in order, with sane sizes and hashes, and
// a well-formed Verity if there is one.
func (m *Manifest) Check() error {
	if m.Format != Format {
		return fmt.Errorf("%w: manifest format %d, this keel reads %d", ErrCorrupt, m.Format, Format)
	}
	for _, f := range []struct{ name, v string }{{"name", m.Name}, {"version", m.Version}, {"compatible", m.Compatible}, {"arch", m.Arch}} {
		if f.v == "" {
			return fmt.Errorf("%w: manifest has no %s", ErrCorrupt, f.name)
		}
	}
	order := m.Order()
	if len(m.Artifacts) != len(order) {
		return fmt.Errorf("%w: manifest lists %d artifacts, want %d (%v or %v, optionally after an %s)", ErrCorrupt, len(m.Artifacts), len(order), InstallOrder, UKIOrder, Index)
	}
	for i, a := range m.Artifacts {
		if a.Name != order[i] {
			return fmt.Errorf("%w: artifact %d is %q, want %q (install order %v or %v, optionally after an %s, each once)", ErrCorrupt, i, a.Name, order[i], InstallOrder, UKIOrder, Index)
		}
		if a.Size < 0 {
			return fmt.Errorf("%w: artifact %s has size %d", ErrCorrupt, a.Name, a.Size)
		}
		if a.Name == Index && a.Size > MaxIndex {
			return fmt.Errorf("%w: index of %d bytes (at most %d)", ErrCorrupt, a.Size, MaxIndex)
		}
		if b, err := hex.DecodeString(a.SHA256); err != nil || len(b) != 32 || hex.EncodeToString(b) != a.SHA256 {
			return fmt.Errorf("%w: artifact %s: sha256 %q is not 64 lowercase hex digits", ErrCorrupt, a.Name, a.SHA256)
		}
	}
	if m.Verity != nil {
		root, _ := m.Artifact(Rootfs)
		if err := m.Verity.check(root.Size); err != nil {
			return fmt.Errorf("%w: verity: %v", ErrCorrupt, err)
		}
	}
	return nil
}

// maxSalt is the longest salt dm-verity takes (veritysetup's limit).
const maxSalt = 256

// check says what is wrong with v for a rootfs of size bytes.
func (v *Verity) check(size int64) error {
	if b, err := hex.DecodeString(v.RootHash); err != nil || len(b) != 32 || hex.EncodeToString(b) != v.RootHash {
		return fmt.Errorf("root hash %q is not 64 lowercase hex digits", v.RootHash)
	}
	if b, err := hex.DecodeString(v.Salt); err != nil || len(b) > maxSalt || hex.EncodeToString(b) != v.Salt {
		return fmt.Errorf("salt %q is not lowercase hex of at most %d bytes", v.Salt, maxSalt)
	}
	if v.DataBlocks == 0 {
		return fmt.Errorf("no data blocks")
	}
	if v.HashOffset <= 0 || v.HashOffset >= size {
		return fmt.Errorf("hash offset %d is not inside the rootfs of %d bytes", v.HashOffset, size)
	}
	if v.DataBlocks > uint64(v.HashOffset)/4096 {
		return fmt.Errorf("%d data blocks of 4096 bytes run past the hash offset %d", v.DataBlocks, v.HashOffset)
	}
	return nil
}

// Total is the artifacts' byte count.
func (m *Manifest) Total() int64 {
	var n int64
	for _, a := range m.Artifacts {
		n += a.Size
	}
	return n
}
