package debfile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"

	"keel/rootfs"
	"keel/rootfs/tarfs"
)

// Cache keeps packages unpacked, by the sha256 of the .deb, so that a warm
// build applies them without decompressing data.tar again. Under its
// directory:
//
//	unpacked/<sha256>   one file per package: its control members and its
//	                    data.tar as tarfs Members, with a checksum
//	content/<sha256>    file contents, shared by all packages (a tarfs.Spool)
//
// Entries are written to a temporary name and renamed into place, so an
// entry is complete or absent, and processes may share a cache. An entry
// that fails its checksum, or names content the store lacks or holds at
// another size, is unpacked again from the .deb rather than trusted.
// Contents are checked by size only: hashing them again would cost what the
// cache saves. Trees read file contents from the store, so the cache must
// outlive them.
type Cache struct {
	dir    string
	spool  *tarfs.Spool
	limits tarfs.Limits
	log    *slog.Logger
}

// CacheOptions configures a Cache.
type CacheOptions struct {
	// Limits bounds what a package's data.tar may expand to when unpacked.
	Limits tarfs.Limits
	// Logger hears about damaged entries being rebuilt; nil discards.
	Logger *slog.Logger
}

// NewCache returns the cache in dir, creating it.
func NewCache(dir string, opts CacheOptions) (*Cache, error) {
	if err := os.MkdirAll(filepath.Join(dir, "unpacked"), 0o755); err != nil {
		return nil, fmt.Errorf("unpack cache: %w", err)
	}
	spool, err := tarfs.NewSpool(filepath.Join(dir, "content"))
	if err != nil {
		return nil, fmt.Errorf("unpack cache: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cache{dir: dir, spool: spool, limits: opts.Limits, log: log}, nil
}

// Unpacked is a package as the cache keeps it.
type Unpacked struct {
	SHA256  string // of the .deb
	Control *Control
	Members []tarfs.Member // data.tar, in archive order
	spool   *tarfs.Spool
}

// Apply puts the package's files into t, as File.Apply does for the .deb.
func (u *Unpacked) Apply(ctx context.Context, t *rootfs.Tree, opts Options) ([]tarfs.Added, error) {
	var added []tarfs.Added
	if err := tarfs.Replay(ctx, t, u.Members, tarfsOptions(u.Control.Package.Name, u.spool, opts, &added)); err != nil {
		return nil, err
	}
	return added, nil
}

// Get returns the package whose .deb has the given sha256 (lowercase hex):
// from the cache, or else unpacked from the .deb at debPath, which must have
// that sha256, and then kept.
func (c *Cache) Get(ctx context.Context, debPath, sum string) (*Unpacked, error) {
	if _, err := c.spool.Path(sum); err != nil {
		return nil, fmt.Errorf("unpack cache: sha256 %q: not a lowercase hex digest", sum)
	}
	u, err := c.load(sum)
	if err == nil {
		return u, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		c.log.Warn("unpack cache: damaged entry, unpacking again", "sha256", sum, "err", err)
	}
	return c.unpack(ctx, debPath, sum)
}

// entryMagic starts every cache entry; the number is the format's version.
const entryMagic = "keel unpacked deb 1\n"

func (c *Cache) entryPath(sum string) string { return filepath.Join(c.dir, "unpacked", sum) }

// unpack reads the .deb, checks its sha256, unpacks it and writes the entry.
func (c *Cache) unpack(ctx context.Context, debPath, sum string) (*Unpacked, error) {
	f, err := os.Open(debPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", debPath, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return nil, fmt.Errorf("%s: sha256 %s, want %s", debPath, got, sum)
	}
	df, err := New(f, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", debPath, err)
	}
	members, err := df.Unpack(ctx, c.spool, c.limits)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", debPath, err)
	}
	u := &Unpacked{SHA256: sum, Control: df.Control, Members: members, spool: c.spool}
	if err := c.store(u); err != nil {
		return nil, err
	}
	return u, nil
}

// store writes u's entry: a temporary file renamed into place. Not synced:
// an entry torn by a power cut fails its checksum and is rebuilt.
func (c *Cache) store(u *Unpacked) error {
	payload := encodeEntry(u)
	sum := sha256.Sum256(payload)
	f, err := os.CreateTemp(filepath.Join(c.dir, "unpacked"), ".tmp-*")
	if err != nil {
		return fmt.Errorf("unpack cache: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(append(append([]byte(entryMagic), sum[:]...), payload...))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, c.entryPath(u.SHA256))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("unpack cache: %w", err)
	}
	return nil
}

// encodeEntry is the entry's payload: the .deb's sha256, the control
// members by name (sorted), then the Members.
func encodeEntry(u *Unpacked) []byte {
	var b []byte
	str := func(s []byte) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	str([]byte(u.SHA256))
	files := u.Control.members()
	files["control"] = u.Control.Text
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, n := range names {
		str([]byte(n))
		str(files[n])
	}
	return tarfs.EncodeMembers(b, u.Members)
}

// load reads and checks the entry for sum. A missing entry is an
// fs.ErrNotExist; anything else wrong is another error.
func (c *Cache) load(sum string) (*Unpacked, error) {
	b, err := os.ReadFile(c.entryPath(sum))
	if err != nil {
		return nil, err
	}
	head := len(entryMagic) + sha256.Size
	if len(b) < head || string(b[:len(entryMagic)]) != entryMagic {
		return nil, errors.New("not an entry of this format")
	}
	payload := b[head:]
	if want := sha256.Sum256(payload); !bytes.Equal(want[:], b[len(entryMagic):head]) {
		return nil, errors.New("checksum mismatch")
	}
	rest := payload
	str := func() ([]byte, error) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return nil, errors.New("truncated")
		}
		s := rest[k : k+int(n)]
		rest = rest[k+int(n):]
		return s, nil
	}
	got, err := str()
	if err != nil {
		return nil, err
	}
	if string(got) != sum {
		return nil, fmt.Errorf("entry is for %q", got)
	}
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > uint64(len(rest)) {
		return nil, errors.New("truncated")
	}
	rest = rest[k:]
	files := map[string][]byte{}
	for i := uint64(0); i < n; i++ {
		name, err := str()
		if err != nil {
			return nil, err
		}
		body, err := str()
		if err != nil {
			return nil, err
		}
		files[string(name)] = bytes.Clone(body)
	}
	ctl, err := parseControl(files)
	if err != nil {
		return nil, err
	}
	members, rest, err := tarfs.DecodeMembers(rest)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%d bytes after the members", len(rest))
	}
	if err := c.checkContent(members); err != nil {
		return nil, err
	}
	return &Unpacked{SHA256: sum, Control: ctl, Members: members, spool: c.spool}, nil
}

// checkContent checks that the store holds every content the members name,
// at their size: one stat each, no reading.
func (c *Cache) checkContent(members []tarfs.Member) error {
	seen := map[string]bool{}
	for i := range members {
		m := &members[i]
		if m.Content == "" || seen[m.Content] {
			continue
		}
		seen[m.Content] = true
		p, err := c.spool.Path(m.Content)
		if err != nil {
			return err
		}
		st, err := os.Stat(p)
		if err != nil {
			// %v: a missing content is a damaged entry, not a missing one.
			return fmt.Errorf("content of %q: %v", m.Name, err)
		}
		if st.Size() != m.Size {
			// Damaged; unpacking again puts it back (Spool.Put replaces a
			// file of the wrong size).
			return fmt.Errorf("content of %q: %d bytes, want %d", m.Name, st.Size(), m.Size)
		}
	}
	return nil
}
