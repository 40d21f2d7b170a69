package buildcache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pathDigest is a host path's digest: "absent", a file's content hash, or
// a directory's: with deep, its whole tree, else its sorted names. A
// symlink is followed at the top (the profile names it), not below.
func (c *Cache) pathDigest(p string, deep bool) (string, error) {
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return "absent", nil
	}
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		s, err := c.memo.fileSum(p, fi)
		return "file:" + s, err
	}
	h := sha256.New()
	if !deep {
		names, err := sortedNames(p)
		if err != nil {
			return "", err
		}
		return "dir:" + fmt.Sprint(names), nil
	}
	err = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(p, q)
		return c.entryDigest(h, rel, q)
	})
	if err != nil {
		return "", err
	}
	return "tree:" + hex.EncodeToString(h.Sum(nil)), nil
}

// entryDigest writes one tree entry's metadata, and a file's content
// hash, to h: everything a dir source copies into the image.
func (c *Cache) entryDigest(h hash.Hash, rel, q string) error {
	var st unix.Stat_t
	if err := unix.Lstat(q, &st); err != nil {
		return fmt.Errorf("%s: %w", q, err)
	}
	fmt.Fprintf(h, "%q %o %d %d %d %d.%d %d", rel, st.Mode, st.Uid, st.Gid, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Rdev)
	if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		// Hard links are kept as such: which names share an inode matters.
		fmt.Fprintf(h, " ino %d:%d", st.Dev, st.Ino)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		t, err := os.Readlink(q)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, " -> %q", t)
	case unix.S_IFREG:
		fi, err := os.Lstat(q)
		if err != nil {
			return err
		}
		s, err := c.memo.fileSum(q, fi)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, " %s", s)
	}
	if err := xattrDigest(h, q); err != nil {
		return fmt.Errorf("%s: %w", q, err)
	}
	_, err := io.WriteString(h, "\n")
	return err
}

func xattrDigest(h hash.Hash, q string) error {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(q, buf)
	if errors.Is(err, unix.ENOTSUP) || n <= 0 {
		return nil
	}
	if err != nil {
		return err
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(q, name, v)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, " xattr %q=%x", name, v[:m])
	}
	return nil
}

// memo remembers files' content hashes by inode, size, mtime and ctime, as
// git's index does, so that an unchanged tree of gigabytes is checked by
// stat alone. ctime changes with every write and cannot be set back; a
// file changed within racyWindow of being hashed is not remembered, since
// a write in the same clock tick would not show in its times.
type memo struct {
	path  string
	mu    sync.Mutex
	m     map[string]memoEntry
	dirty bool
}

type memoEntry struct {
	Size  int64  `json:"s"`
	Mtime int64  `json:"m"`
	Ctime int64  `json:"c"`
	Sum   string `json:"h"`
	Used  bool   `json:"-"`
}

var racyWindow = 2 * time.Second

func loadMemo(path string) *memo {
	m := &memo{path: path, m: map[string]memoEntry{}}
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &m.m) // a bad memo only costs hashing again
	}
	return m
}

func (m *memo) fileSum(p string, fi os.FileInfo) (string, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return hashFile(p)
	}
	key := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	e := memoEntry{Size: st.Size, Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}
	m.mu.Lock()
	old, hit := m.m[key]
	m.mu.Unlock()
	if hit && old.Size == e.Size && old.Mtime == e.Mtime && old.Ctime == e.Ctime {
		old.Used = true
		m.mu.Lock()
		m.m[key] = old
		m.mu.Unlock()
		return old.Sum, nil
	}
	s, err := hashFile(p)
	if err != nil {
		return "", err
	}
	now := time.Now().UnixNano()
	if now-e.Ctime > int64(racyWindow) && now-e.Mtime > int64(racyWindow) {
		e.Sum, e.Used = s, true
		m.mu.Lock()
		m.m[key], m.dirty = e, true
		m.mu.Unlock()
	}
	return s, nil
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// maxMemo bounds the memo; beyond it only the entries this build used are
// kept, so files no longer read age out.
const maxMemo = 1 << 19

// save writes the memo when it learnt something.
func (m *memo) save() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.dirty {
		return nil
	}
	keep := m.m
	if len(keep) > maxMemo {
		keep = map[string]memoEntry{}
		for k, e := range m.m {
			if e.Used {
				keep[k] = e
			}
		}
	}
	b, err := json.Marshal(keep)
	if err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", m.path, os.Getpid())
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, m.path)
}

// FileSum is the sha256 of a file's content (lowercase hex), remembered by
// inode and times like the files of a tree: keel's own binary, hashed for
// every build's key, costs a stat once known.
func (c *Cache) FileSum(p string) (string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	return c.memo.fileSum(p, fi)
}
