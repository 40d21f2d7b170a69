// Package buildcache keeps finished disk images under $KEEL_CACHE/build,
// keyed by the content of every input of their build, so that a build of
// an unchanged profile with unchanged inputs copies the previous image
// instead of making it again.
//
// An entry is a directory named by its key holding the disk image (sparse,
// as built), and meta.json: the image's digest, the build's result as the
// caller encoded it, and the host files the build read that its key could
// not name in advance (a boot loader taken from the build host, a kernel's
// modules), each with its digest. An entry is trusted only when:
//   - its key matches: the caller hashes keel's own binary (so no entry
//     survives a change of keel or of its embedded keel-init and keelctl),
//     the profile as merged, every host path it names, the packages by
//     sha256, and every option that changes the bytes;
//   - those recorded host files still have their digests;
//   - the image still has its digest, checked while it is copied out: a
//     corrupt entry is removed and the caller builds again.
//
// Entries are written in a temporary directory and renamed into place, so
// concurrent builds never see half an entry; the last one to finish wins.
package buildcache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"keel/image/format"
)

// MaxEntries bounds the cache: after a store, the least recently used
// entries beyond it go. Images can be large; a few cover switching between
// a couple of profiles or branches.
const MaxEntries = 4

// Cache is one directory of entries.
type Cache struct {
	dir   string
	memo  *memo
	log   *slog.Logger
	hits  int
	store int
}

// Open opens (creating) the cache in dir.
func Open(dir string, log *slog.Logger) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("build cache: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cache{dir: dir, memo: loadMemo(filepath.Join(dir, "hashes.json")), log: log}, nil
}

// Sub opens the cache in c's subdirectory name: entries of another kind
// (a stage's output), evicted apart from c's.
func (c *Cache) Sub(name string) (*Cache, error) {
	dir := filepath.Join(c.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("build cache: %w", err)
	}
	return &Cache{dir: dir, memo: c.memo, log: c.log}, nil
}

// Dir is the cache's directory.
func (c *Cache) Dir() string { return c.dir }

// Key is an entry's name: a hash of everything that decides the image.
type Key [32]byte

func (k Key) String() string { return hex.EncodeToString(k[:]) }

// Hasher accumulates a key from labelled parts, so that no two sequences
// of parts give the same stream.
type Hasher struct {
	h   io.Writer
	sum func([]byte) []byte
	c   *Cache
	err error
}

// NewKey starts a key.
func (c *Cache) NewKey() *Hasher {
	h := sha256.New()
	return &Hasher{h: h, sum: h.Sum, c: c}
}

// Bytes adds a labelled value.
func (h *Hasher) Bytes(label string, b []byte) {
	fmt.Fprintf(h.h, "%s %d\n", label, len(b))
	h.h.Write(b)
}

// String adds a labelled string.
func (h *Hasher) String(label, s string) { h.Bytes(label, []byte(s)) }

// JSON adds a labelled value as its JSON encoding (maps sorted).
func (h *Hasher) JSON(label string, v any) {
	b, err := json.Marshal(v)
	if err != nil && h.err == nil {
		h.err = fmt.Errorf("build cache key %s: %w", label, err)
	}
	h.Bytes(label, b)
}

// Path adds a host path by content: a file's bytes, a directory's whole
// tree (names, types, modes, owners, times, links, xattrs and contents),
// or that it is absent.
func (h *Hasher) Path(label, p string) {
	d, err := h.c.pathDigest(p, true)
	if err != nil && h.err == nil {
		h.err = fmt.Errorf("build cache key %s: %w", label, err)
	}
	h.String(label, p+"\x00"+d)
}

// Sum is the key, or the first error met while hashing.
func (h *Hasher) Sum() (Key, error) {
	var k Key
	copy(k[:], h.sum(nil))
	return k, h.err
}

// Dep is a host file (or directory, by its listing) a build read, with its
// digest then.
type Dep struct {
	Path   string `json:"path"`
	Digest string `json:"digest"`
}

type meta struct {
	Digest string          `json:"digest"` // imageDigest of the disk
	Size   int64           `json:"size"`
	Result json.RawMessage `json:"result"`
	Deps   []Dep           `json:"deps,omitempty"`
}

// Get copies the entry key's image to dst (created, sparse) and returns
// its stored result. ok is false when there is no usable entry; a corrupt
// one is removed on the way.
func (c *Cache) Get(key Key, dst string) (result []byte, ok bool, err error) {
	dir := filepath.Join(c.dir, key.String())
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		c.drop(dir, "unreadable meta.json: "+err.Error())
		return nil, false, nil
	}
	for _, d := range m.Deps {
		got, err := c.pathDigest(d.Path, false)
		if err != nil || got != d.Digest {
			c.log.Debug("build cache: input changed", "path", d.Path)
			return nil, false, nil
		}
	}
	digest, err := copyImage(dst, filepath.Join(dir, "disk"), m.Size)
	if err != nil || digest != m.Digest {
		os.Remove(dst)
		reason := "image digest mismatch"
		if err != nil {
			reason = err.Error()
		}
		c.drop(dir, reason)
		return nil, false, nil
	}
	now := time.Now()
	_ = os.Chtimes(dir, now, now) // most recently used
	c.hits++
	return m.Result, true, nil
}

func (c *Cache) drop(dir, reason string) {
	c.log.Warn("build cache: dropping a bad entry; building again", "entry", filepath.Base(dir), "reason", reason)
	_ = os.RemoveAll(dir)
}

// Put stores the image at src (left in place) under key, with the result
// to give back on a hit and the host files the build read.
func (c *Cache) Put(key Key, src string, result []byte, deps []string) error {
	m := meta{Result: result}
	for _, p := range deps {
		d, err := c.pathDigest(p, false)
		if err != nil {
			return err
		}
		m.Deps = append(m.Deps, Dep{Path: p, Digest: d})
	}
	tmp, err := os.MkdirTemp(c.dir, ".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	m.Size = fi.Size()
	if m.Digest, err = copyImage(filepath.Join(tmp, "disk"), src, m.Size); err != nil {
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "meta.json"), b, 0o644); err != nil {
		return err
	}
	dir := filepath.Join(c.dir, key.String())
	// A stale entry of the same key (its deps changed) gives way; a
	// concurrent build's may have taken the name in between: then its
	// entry, equally good, stays.
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, os.ErrExist) && !errors.Is(err, unix.ENOTEMPTY) {
		return err
	}
	c.store++
	c.evict()
	return nil
}

// Hits and Stores count this process's cache hits and stored entries.
func (c *Cache) Hits() int   { return c.hits }
func (c *Cache) Stores() int { return c.store }

// Close saves the content hashes learnt, for the next build's keys.
func (c *Cache) Close() error { return c.memo.save() }

// evict removes the least recently used entries beyond MaxEntries.
func (c *Cache) evict() {
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return
	}
	type e struct {
		name string
		t    time.Time
	}
	var list []e
	for _, d := range ents {
		if fi, err := d.Info(); err == nil && strings.HasPrefix(d.Name(), ".tmp-") && time.Since(fi.ModTime()) > time.Hour {
			_ = os.RemoveAll(filepath.Join(c.dir, d.Name())) // left by a build that was killed
		}
		if !d.IsDir() || len(d.Name()) != 64 {
			continue
		}
		if fi, err := d.Info(); err == nil {
			list = append(list, e{d.Name(), fi.ModTime()})
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].t.After(list[j].t) })
	for _, x := range list[min(len(list), MaxEntries):] {
		_ = os.RemoveAll(filepath.Join(c.dir, x.name))
	}
}

// blockSize is the unit of imageDigest and of copyImage's hole punching.
const blockSize = 64 << 10

// copyImage copies the image src of size bytes to a new file dst, writing
// only its blocks that hold other than zeros (so dst is as sparse as
// src), and returns the image's digest: sha256 over each non-zero
// block's offset and bytes. The digest depends on the bytes only, not on
// how the file systems lay out holes.
func copyImage(dst, src string, size int64) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	img, err := format.NewImage(in, size)
	if err != nil {
		return "", err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", err
	}
	defer out.Close()
	if err := out.Truncate(size); err != nil {
		return "", err
	}
	h := sha256.New()
	buf := make([]byte, 4<<20)
	zero := make([]byte, blockSize)
	for off := int64(0); off < size; {
		start, end, err := img.Data(off)
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
		start -= start % blockSize
		for p := start; p < end; {
			n := min(int64(len(buf)), end-p)
			n = min(n+(blockSize-(p+n)%blockSize)%blockSize, size-p) // whole blocks
			if _, err := in.ReadAt(buf[:n], p); err != nil && err != io.EOF {
				return "", err
			}
			for b := int64(0); b < n; b += blockSize {
				blk := buf[b:min(n, b+blockSize)]
				if bytes.Equal(blk, zero[:len(blk)]) {
					continue
				}
				fmt.Fprintf(h, "%d\n", p+b)
				h.Write(blk)
				if _, err := out.WriteAt(blk, p+b); err != nil {
					return "", err
				}
			}
			p += n
		}
		off = max(end, start+1)
		off += (blockSize - off%blockSize) % blockSize
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// sortedNames lists a directory's names, sorted.
func sortedNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}

// outputStat is what NoteOutput records of a file it left identical to an
// entry's image: if it is still so, Current needs no copy.
type outputStat struct {
	Dev, Ino    uint64
	Size        int64
	Mtime, Ctim int64
}

func statOf(p string) (outputStat, bool) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return outputStat{}, false
	}
	return outputStat{uint64(st.Dev), st.Ino, st.Size, st.Mtim.Nano(), st.Ctim.Nano()}, true
}

// NoteOutput records that the file p now holds entry key's image (it was
// just copied from it, or built and stored as it), by its inode, size and
// times: a write to it (keel update, a flash tool, an editor) changes
// them, as for the memo's files.
func (c *Cache) NoteOutput(key Key, p string) {
	st, ok := statOf(p)
	abs, err := filepath.Abs(p)
	if !ok || err != nil {
		return
	}
	dir := filepath.Join(c.dir, key.String())
	outs := map[string]outputStat{}
	if b, err := os.ReadFile(filepath.Join(dir, "outputs.json")); err == nil {
		_ = json.Unmarshal(b, &outs)
	}
	outs[abs] = st
	b, err := json.Marshal(outs)
	if err != nil {
		return
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".outputs.%d.tmp", os.Getpid()))
	if os.WriteFile(tmp, b, 0o644) == nil {
		_ = os.Rename(tmp, filepath.Join(dir, "outputs.json"))
	}
}

// Current returns entry key's result when the file p is still what
// NoteOutput recorded and the entry's recorded host files are unchanged:
// the output is the image already, and nothing needs copying.
func (c *Cache) Current(key Key, p string) ([]byte, bool) {
	dir := filepath.Join(c.dir, key.String())
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, false
	}
	b, err := os.ReadFile(filepath.Join(dir, "outputs.json"))
	if err != nil {
		return nil, false
	}
	outs := map[string]outputStat{}
	if json.Unmarshal(b, &outs) != nil {
		return nil, false
	}
	want, ok := outs[abs]
	if got, exists := statOf(abs); !ok || !exists || got != want {
		return nil, false
	}
	mb, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return nil, false
	}
	var m meta
	if json.Unmarshal(mb, &m) != nil {
		return nil, false
	}
	for _, d := range m.Deps {
		if got, err := c.pathDigest(d.Path, false); err != nil || got != d.Digest {
			return nil, false
		}
	}
	now := time.Now()
	_ = os.Chtimes(dir, now, now)
	c.hits++
	return m.Result, true
}
