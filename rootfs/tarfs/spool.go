package tarfs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// Spool keeps file contents extracted from archives, one host file per
// distinct content, named by the hex SHA-256 of that content (its id). Tree
// entries read their content back from it long after the archive stream is
// gone, and identical files across layers, images and packages are stored
// once. Several processes may share one spool: every file appears whole,
// under its name, by a rename.
type Spool struct {
	dir string
	// With tracked (see Tracked), created lists the contents this Spool
	// renamed into place, for Discard.
	tracked bool
	mu      sync.Mutex
	created [][sha256.Size]byte
}

// NewSpool returns a spool keeping its files in dir, which it creates.
func NewSpool(dir string) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating spool: %w", err)
	}
	return &Spool{dir: dir}, nil
}

// Tracked returns a spool over the same directory that remembers the
// contents it adds there, so that Discard can take them back when what was
// being applied failed: a decompression bomb refused half way must not leave
// gigabytes in a cache. Contents it finds already there are not its own and
// are never discarded.
func (s *Spool) Tracked() *Spool {
	return &Spool{dir: s.dir, tracked: true}
}

// Discard removes the contents this spool added (see Tracked) and forgets
// them. Only call it once nothing refers to them any more: the tree they
// were applied to is being thrown away. Another process that spooled the
// same content into a shared directory meanwhile, and found it there, loses
// it too; reading it then fails (a missing file), it never reads other
// bytes.
func (s *Spool) Discard() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for _, sum := range s.created {
		if err := os.Remove(filepath.Join(s.dir, hex.EncodeToString(sum[:]))); err != nil && !os.IsNotExist(err) && first == nil {
			first = fmt.Errorf("discarding spooled content: %w", err)
		}
	}
	s.created = nil
	return first
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
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", 0, fmt.Errorf("spooling: %w", err)
	}
	name := filepath.Join(s.dir, hex.EncodeToString(sum[:]))
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
	if s.tracked {
		s.mu.Lock()
		s.created = append(s.created, sum)
		s.mu.Unlock()
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
