package bundle

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Source is one artifact to put in a bundle. Open is called twice: once to
// hash, once to copy, so a bundle is written in one pass over its output
// (three times for an artifact an index is made of: image/delta).
type Source struct {
	Name string
	Size int64
	Open func() (io.ReadCloser, error)
}

// Write hashes each source, builds the manifest (m with its Artifacts and
// Format filled in, and BuildID when m leaves it empty), signs the manifest's bytes with key, and writes header,
// manifest, signature and the artifacts in order. The same inputs give the
// same bytes: the JSON has a fixed field order and ed25519 is deterministic.
func Write(ctx context.Context, w io.Writer, m Manifest, key ed25519.PrivateKey, srcs []Source) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("writing bundle: no signing key")
	}
	m.Format = Format
	m.Artifacts = make([]Artifact, len(srcs))
	for i, s := range srcs {
		sum, err := hashSource(ctx, s)
		if err != nil {
			return err
		}
		m.Artifacts[i] = Artifact{Name: s.Name, Size: s.Size, SHA256: hex.EncodeToString(sum)}
	}
	if m.BuildID == "" {
		m.BuildID = BuildID(m.Artifacts)
	}
	// Refuse here what Open would refuse: a bundle nobody can install is
	// better not written.
	if err := m.Check(); err != nil {
		return fmt.Errorf("writing bundle: %w", err)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("writing bundle: %w", err)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	hdr := make([]byte, 0, headerSize+len(raw)+sigSize)
	hdr = append(hdr, Magic...)
	hdr = binary.BigEndian.AppendUint32(hdr, Format)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(raw)))
	hdr = binary.BigEndian.AppendUint32(hdr, sigSize)
	hdr = append(hdr, raw...)
	id, _ := hex.DecodeString(KeyID(key.Public().(ed25519.PublicKey)))
	hdr = append(hdr, id...)
	hdr = append(hdr, ed25519.Sign(key, raw)...)
	if _, err := bw.Write(hdr); err != nil {
		return fmt.Errorf("writing bundle header: %w", err)
	}
	for i, s := range srcs {
		if err := copySource(ctx, bw, s, m.Artifacts[i].SHA256); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing bundle: %w", err)
	}
	return nil
}

// WriteFile writes a bundle to name through a temporary file in the same
// directory, renamed into place only when everything was written and synced.
func WriteFile(ctx context.Context, name string, m Manifest, key ed25519.PrivateKey, srcs []Source) (err error) {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing bundle: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := Write(ctx, f, m, key, srcs); err != nil {
		return fmt.Errorf("writing bundle %s: %w", name, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("writing bundle %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing bundle %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing bundle %s: %w", name, err)
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return fmt.Errorf("writing bundle: %w", err)
	}
	return nil
}

// hashSource is Write's first pass.
func hashSource(ctx context.Context, s Source) ([]byte, error) {
	h := sha256.New()
	if err := readSource(ctx, h, s); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// copySource is Write's second pass. It hashes again, so a source that
// changed between the passes fails the write rather than giving a bundle
// that lies about its content.
func copySource(ctx context.Context, w io.Writer, s Source, want string) error {
	h := sha256.New()
	if err := readSource(ctx, io.MultiWriter(w, h), s); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("artifact %s changed while the bundle was written (sha256 %s, then %s)", s.Name, want, got)
	}
	return nil
}

// readSource copies exactly s.Size bytes of s to w, checking ctx between
// chunks and that the source is neither shorter nor longer than it says.
func readSource(ctx context.Context, w io.Writer, s Source) error {
	if s.Open == nil {
		return fmt.Errorf("artifact %s: no content", s.Name)
	}
	rc, err := s.Open()
	if err != nil {
		return fmt.Errorf("artifact %s: %w", s.Name, err)
	}
	defer rc.Close()
	buf := make([]byte, 1<<20)
	left := s.Size
	for left > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(rc, buf[:min(int64(len(buf)), left)])
		if _, werr := w.Write(buf[:n]); werr != nil {
			return fmt.Errorf("artifact %s: %w", s.Name, werr)
		}
		left -= int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("artifact %s: %d bytes, shorter than its size %d", s.Name, s.Size-left, s.Size)
		}
		if err != nil {
			return fmt.Errorf("artifact %s: %w", s.Name, err)
		}
	}
	if n, _ := rc.Read(make([]byte, 1)); n > 0 {
		return fmt.Errorf("artifact %s: longer than its size %d", s.Name, s.Size)
	}
	return nil
}

// FileSource is a Source for a whole host file.
func FileSource(name, path string) (Source, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Source{}, fmt.Errorf("artifact %s: %w", name, err)
	}
	return Source{Name: name, Size: fi.Size(), Open: func() (io.ReadCloser, error) { return os.Open(path) }}, nil
}

// SectionSource is a Source for size bytes of r at off, such as a slot of a
// disk image.
func SectionSource(name string, r io.ReaderAt, off, size int64) Source {
	return Source{Name: name, Size: size, Open: func() (io.ReadCloser, error) {
		return io.NopCloser(io.NewSectionReader(r, off, size)), nil
	}}
}

// BuildID names a build by its content: hex of the first 16 bytes of the
// sha256 of the artifacts' sha256 digests (raw, in order). Two builds with
// the same bytes have the same id, whatever their version says. The index
// is left out: it is made from the other artifacts, so a bundle with one
// and a bundle without one of the same build install the same bytes and
// carry the same id.
func BuildID(arts []Artifact) string {
	h := sha256.New()
	for _, a := range arts {
		if a.Name == Index {
			continue
		}
		b, _ := hex.DecodeString(a.SHA256)
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// BytesSource is a Source for bytes in memory, such as an index.
func BytesSource(name string, b []byte) Source {
	return Source{Name: name, Size: int64(len(b)), Open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}}
}
