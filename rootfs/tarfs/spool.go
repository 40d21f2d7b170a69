package tarfs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Spool keeps file contents extracted from archives, one host file per
// distinct content, named by the hex SHA-256 of that content (its id). Tree
// entries read their content back from it long after the archive stream is
// gone, and identical files across layers, images and packages are stored
// once. Several processes may share one spool: every file appears whole,
// under its name, by a rename.
type Spool struct {
	dir string
}

// NewSpool returns a spool keeping its files in dir, which it creates.
func NewSpool(dir string) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating spool: %w", err)
	}
	return &Spool{dir: dir}, nil
}

// Dir is the directory holding the spooled files.
func (s *Spool) Dir() string { return s.dir }

// Path returns the host path of the content with the given id. An id that is
// not a lowercase hex SHA-256 is an error, so that a name read from a
// damaged manifest cannot point outside the spool.
func (s *Spool) Path(id string) (string, error) {
	if !isContentID(id) {
		return "", fmt.Errorf("bad content id %q", id)
	}
	return filepath.Join(s.dir, id), nil
}

// Put copies r into the spool and returns the host path of its content and
// its length. A temporary file is renamed into place only once complete, so
// the spool never holds a partial file under a content name, and a failed Put
// leaves nothing behind.
func (s *Spool) Put(r io.Reader) (string, int64, error) {
	f, err := os.CreateTemp(s.dir, ".spool-*")
	if err != nil {
		return "", 0, fmt.Errorf("spooling: %w", err)
	}
	tmp := f.Name()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", 0, fmt.Errorf("spooling: %w", err)
	}
	name := filepath.Join(s.dir, hex.EncodeToString(h.Sum(nil)))
	// A file of another size under the name was damaged (torn by a crash,
	// cut by hand): the rename below replaces it.
	if st, err := os.Stat(name); err == nil && st.Size() == n {
		os.Remove(tmp)
		return name, n, nil
	}
	// Read-only: the content is addressed by its hash and must not change.
	if err := os.Chmod(tmp, 0o444); err != nil {
		os.Remove(tmp)
		return "", 0, fmt.Errorf("spooling: %w", err)
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return "", 0, fmt.Errorf("spooling: %w", err)
	}
	return name, n, nil
}

func isContentID(id string) bool {
	if len(id) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
