// Package debfile reads Debian binary packages (.deb, deb(5)) and puts their
// files into keel's tree model.
//
// A .deb is an ar archive of three members, in this order: debian-binary
// ("2.0\n"), control.tar (the control paragraph, maintainer scripts,
// conffiles, md5sums, ...) and data.tar (the files), each tar compressed
// with gzip, xz or zstd or not at all. New reads the ar archive and the
// control part, and leaves the data until Apply or Unpack; data.tar goes
// through rootfs/tarfs with the rules every keel source follows (see its
// package comment), merged-/usr aliases and keel's protected paths.
//
// Every size in a package is bounded before it is trusted: ar member sizes
// by the file, control.tar by MaxControlSize, data.tar by the caller's
// tarfs.Limits. Truncated or garbled input gives an error, never a panic.
//
// Decompressing data.tar.xz is most of the time a cold build spends per
// package. The Cache keeps each package unpacked (its control members, and
// its data.tar as tarfs Members over a shared content store), so that a
// warm build replays entries without decompressing or copying anything.
package debfile

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/therootcompany/xz"
	"pault.ag/go/debian/control"

	"keel/rootfs/deb"
)

// MaxControlSize bounds control.tar once decompressed: the largest in
// Debian (a kernel's md5sums) is well under a megabyte.
const MaxControlSize = 64 << 20

// Control is a package's control.tar.
type Control struct {
	// Package is the control paragraph parsed: name, version,
	// architecture, relations. It has no Filename, Size nor SHA256: those
	// come from an index.
	Package *deb.Package
	// Paragraph holds every field of the control paragraph, in order (for
	// dpkg's status file).
	Paragraph control.Paragraph
	// Text is the control file as shipped.
	Text []byte
	// Maintainer scripts; nil when the package has none.
	Preinst, Postinst, Prerm, Postrm, Config []byte
	// Conffiles, Triggers, MD5Sums and Shlibs are those members as shipped;
	// nil when absent.
	Conffiles, Triggers, MD5Sums, Shlibs []byte
	// Other holds any further member ("templates", "symbols", ...) by name.
	Other map[string][]byte
}

// ConffilePaths returns the absolute paths the conffiles member lists, in
// order, without dpkg's flags ("remove-on-upgrade").
func (c *Control) ConffilePaths() []string {
	var out []string
	for _, line := range strings.Split(string(c.Conffiles), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 {
			out = append(out, f[len(f)-1])
		}
	}
	return out
}

// members returns every control member but "control" by name, so that the
// cache can keep them; Names sorts.
func (c *Control) members() map[string][]byte {
	m := map[string][]byte{}
	for name, b := range c.Other {
		m[name] = b
	}
	for name, b := range c.fields() {
		if *b != nil {
			m[name] = *b
		}
	}
	return m
}

// fields maps the control members Control names to its fields.
func (c *Control) fields() map[string]*[]byte {
	return map[string]*[]byte{
		"preinst": &c.Preinst, "postinst": &c.Postinst, "prerm": &c.Prerm, "postrm": &c.Postrm,
		"config": &c.Config, "conffiles": &c.Conffiles, "triggers": &c.Triggers,
		"md5sums": &c.MD5Sums, "shlibs": &c.Shlibs,
	}
}

// File is an opened .deb.
type File struct {
	Control *Control
	// DataName is the data member's name: "data.tar.xz", "data.tar", ...
	DataName string

	data   *io.SectionReader
	closer io.Closer
}

// Open opens the .deb at name; Close it when done.
func Open(name string) (*File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	df, err := New(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	df.closer = f
	return df, nil
}

// Close closes the file Open opened; it does nothing for New's.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	return f.closer.Close()
}

// New reads the .deb of size bytes in r: the ar archive and the control
// part. The data member is read later, by Data, Apply or Unpack.
func New(r io.ReaderAt, size int64) (*File, error) {
	ar, err := newArReader(r, size)
	if err != nil {
		return nil, err
	}
	m, err := ar.next()
	if err != nil {
		return nil, fmt.Errorf("reading debian-binary: %w", noEOF(err))
	}
	if m.name != "debian-binary" {
		return nil, fmt.Errorf("not a .deb: first member is %q, not debian-binary", m.name)
	}
	if err := checkFormat(m.section(r)); err != nil {
		return nil, err
	}
	ctl, err := nextMember(ar, "control.tar")
	if err != nil {
		return nil, err
	}
	data, err := nextMember(ar, "data.tar")
	if err != nil {
		return nil, err
	}
	// Members after data.tar are to be ignored (deb(5)), so they are not
	// even read.
	if _, err := compression(data.name); err != nil {
		return nil, err
	}
	c, err := readControl(ctl.name, ctl.section(r))
	if err != nil {
		return nil, err
	}
	return &File{Control: c, DataName: data.name, data: data.section(r)}, nil
}

// nextMember returns the next member, which must be base with a compression
// suffix, skipping those whose name starts with "_" (deb(5): reserved for
// additions older readers ignore).
func nextMember(ar *arReader, base string) (arMember, error) {
	for {
		m, err := ar.next()
		if err != nil {
			return m, fmt.Errorf("looking for %s: %w", base, noEOF(err))
		}
		if strings.HasPrefix(m.name, "_") {
			continue
		}
		if m.name != base && !strings.HasPrefix(m.name, base+".") {
			return m, fmt.Errorf("not a .deb: member %q where %s should be", m.name, base)
		}
		return m, nil
	}
}

// noEOF turns the end of the archive, where a member was expected, into an
// error that says so.
func noEOF(err error) error {
	if err == io.EOF {
		return errors.New("archive ends early: truncated")
	}
	return err
}

var formatVersion = regexp.MustCompile(`^2\.[0-9]+\n`)

// checkFormat reads debian-binary, which must say format 2.x.
func checkFormat(r *io.SectionReader) error {
	if r.Size() > 64 {
		return fmt.Errorf("debian-binary: %d bytes, too long", r.Size())
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("reading debian-binary: %w", err)
	}
	if !formatVersion.Match(b) {
		return fmt.Errorf("debian-binary: unsupported format %q (want 2.x)", b)
	}
	return nil
}

// compression returns the compression of a member from its suffix.
func compression(name string) (string, error) {
	_, ext, _ := strings.Cut(name, ".tar")
	switch ext {
	case "", ".gz", ".xz", ".zst":
		return ext, nil
	case ".bz2", ".lzma":
		return "", fmt.Errorf("%s: %s compression is not supported (dpkg-deb writes xz, zstd or gzip)", name, ext[1:])
	}
	return "", fmt.Errorf("%s: unknown compression %q", name, ext)
}

// decompress returns the tar stream inside the member name.
func decompress(name string, r io.Reader) (io.ReadCloser, error) {
	ext, err := compression(name)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(r, 256<<10)
	switch ext {
	case ".gz":
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return zr, nil
	case ".xz":
		// therootcompany/xz (XZ Embedded in Go): about twice as fast as
		// ulikunitz/xz here, and its dictionary is bounded (64 MiB, what
		// xz -9 uses) whatever a header asks for.
		zr, err := xz.NewReader(br, 0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return io.NopCloser(zr), nil
	case ".zst":
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(128<<20))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

// readControl reads control.tar: regular files only, at its top level, at
// most MaxControlSize bytes in all.
func readControl(name string, r io.Reader) (*Control, error) {
	dec, err := decompress(name, r)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	lr := &io.LimitedReader{R: dec, N: MaxControlSize + 1}
	tr := tar.NewReader(lr)
	files := map[string][]byte{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, limitErr(lr, err))
		}
		p := path.Clean(hdr.Name)
		if hdr.Typeflag == tar.TypeXGlobalHeader || hdr.Typeflag == tar.TypeDir && p == "." {
			continue
		}
		p = strings.TrimPrefix(p, "./")
		if hdr.Typeflag != tar.TypeReg || !validMemberName(p) {
			return nil, fmt.Errorf("%s: entry %q: only plain files may be there", name, hdr.Name)
		}
		if _, dup := files[p]; dup {
			return nil, fmt.Errorf("%s: entry %q twice", name, hdr.Name)
		}
		if hdr.Size > MaxControlSize {
			return nil, fmt.Errorf("%s: entry %q: %d bytes, more than %d", name, hdr.Name, hdr.Size, MaxControlSize)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: entry %q: %w", name, hdr.Name, limitErr(lr, err))
		}
		files[p] = b
	}
	// Read on to the end, so a damaged compressed stream is noticed.
	if _, err := io.Copy(io.Discard, lr); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if lr.N <= 0 {
		return nil, fmt.Errorf("%s: expands past %d bytes", name, MaxControlSize)
	}
	c, err := parseControl(files)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// limitErr says that control.tar was too large when that is why err came.
func limitErr(lr *io.LimitedReader, err error) error {
	if lr.N <= 0 {
		return fmt.Errorf("expands past %d bytes", MaxControlSize)
	}
	return err
}

// validMemberName accepts what dpkg keeps as /var/lib/dpkg/info/PKG.NAME: a
// plain name, no directory, nothing a path could climb with.
func validMemberName(n string) bool {
	if n == "" || n == "." || n == ".." || len(n) > 255 {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c == '/' || c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// parseControl builds a Control from control.tar's members by name.
func parseControl(files map[string][]byte) (*Control, error) {
	text, ok := files["control"]
	if !ok {
		return nil, errors.New("no control file")
	}
	if bytes.HasPrefix(text, []byte("-----BEGIN PGP")) {
		return nil, errors.New("control: a signed control file has no place in a package")
	}
	pr, err := control.NewParagraphReader(bytes.NewReader(text), nil)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	paras, err := pr.All()
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if len(paras) != 1 {
		return nil, fmt.Errorf("control: %d paragraphs, want 1", len(paras))
	}
	p, err := deb.FromParagraph(paras[0].Values)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	c := &Control{Package: p, Paragraph: paras[0], Text: text}
	fields := c.fields()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		switch f, ok := fields[n]; {
		case n == "control":
		case ok:
			*f = files[n]
		default:
			if c.Other == nil {
				c.Other = map[string][]byte{}
			}
			c.Other[n] = files[n]
		}
	}
	return c, nil
}
