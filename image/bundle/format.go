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
)

// InstallOrder is every bundle's list of artifact names.
var InstallOrder = []string{Rootfs, Kernel, Initrd}

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
// known format, identity filled in, and exactly the install-order artifacts
// with sane sizes and hashes.
func (m *Manifest) Check() error {
	if m.Format != Format {
		return fmt.Errorf("%w: manifest format %d, this keel reads %d", ErrCorrupt, m.Format, Format)
	}
	for _, f := range []struct{ name, v string }{{"name", m.Name}, {"version", m.Version}, {"compatible", m.Compatible}, {"arch", m.Arch}} {
		if f.v == "" {
			return fmt.Errorf("%w: manifest has no %s", ErrCorrupt, f.name)
		}
	}
	if len(m.Artifacts) != len(InstallOrder) {
		return fmt.Errorf("%w: manifest lists %d artifacts, want %d (%v)", ErrCorrupt, len(m.Artifacts), len(InstallOrder), InstallOrder)
	}
	for i, a := range m.Artifacts {
		if a.Name != InstallOrder[i] {
			return fmt.Errorf("%w: artifact %d is %q, want %q (install order %v, each once)", ErrCorrupt, i, a.Name, InstallOrder[i], InstallOrder)
		}
		if a.Size < 0 {
			return fmt.Errorf("%w: artifact %s has size %d", ErrCorrupt, a.Name, a.Size)
		}
		if b, err := hex.DecodeString(a.SHA256); err != nil || len(b) != 32 || hex.EncodeToString(b) != a.SHA256 {
			return fmt.Errorf("%w: artifact %s: sha256 %q is not 64 lowercase hex digits", ErrCorrupt, a.Name, a.SHA256)
		}
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
