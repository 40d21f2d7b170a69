// Package debtest builds small .deb files for tests, in the format dpkg-deb
// writes: an ar archive of debian-binary, control.tar.xz and data.tar.*.
// Tests of the Debian source build their fixtures with it instead of
// checking binary packages into testdata.
package debtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// File is one member of a package's data.tar.
type File struct {
	// Path as dpkg-deb writes it: "./usr/bin/hello", "./etc/" for a directory.
	Path string
	// Type is a tar type flag; 0 means a regular file, or a directory when
	// Path ends in "/".
	Type     byte
	Mode     int64 // default 0644 for files, 0755 for directories
	UID, GID int
	Body     string // regular file content
	Link     string // symlink or hard link target
	Major    int64
	Minor    int64
	// Xattrs are written as PAX SCHILY.xattr. records (the member is then
	// written in PAX format rather than GNU).
	Xattrs map[string]string
}

// Deb describes one package.
type Deb struct {
	// Control is the control file's fields in order, e.g.
	// {"Package", "hello"}, {"Version", "1.0"}, ... Package, Version and
	// Architecture are added when missing (Architecture: amd64).
	Control [][2]string
	Files   []File
	// Scripts are maintainer scripts and other control members by name:
	// "postinst", "preinst", "conffiles", "triggers".
	Scripts map[string]string
	// Compression of data.tar: "xz" (default), "gz", "zst" or "none".
	Compression string
	// ControlCompression of control.tar: "xz" (default), "gz", "zst" or
	// "none".
	ControlCompression string
	// DataTar, when set, is the uncompressed data.tar as is, in place of
	// one made from Files (to build packages no tar writer would).
	DataTar []byte
	// Raw members replace the standard ones entirely (to build broken
	// packages): name → bytes, written in the order of RawOrder.
	RawOrder []string
	Raw      map[string][]byte
}

// Field returns the value of a control field ("" when absent).
func (d *Deb) Field(name string) string {
	for _, kv := range d.Control {
		if strings.EqualFold(kv[0], name) {
			return kv[1]
		}
	}
	return ""
}

// ControlText is the control file as written into control.tar.
func (d *Deb) ControlText() string {
	var b strings.Builder
	for _, kv := range d.Control {
		fmt.Fprintf(&b, "%s: %s\n", kv[0], kv[1])
	}
	return b.String()
}

// epoch is the mtime of every member: fixed, so fixtures are reproducible.
var epoch = time.Unix(1700000000, 0)

// Build returns the .deb's bytes.
func Build(d Deb) ([]byte, error) {
	if d.Field("Architecture") == "" {
		d.Control = append(d.Control, [2]string{"Architecture", "amd64"})
	}
	if d.Field("Package") == "" || d.Field("Version") == "" {
		return nil, fmt.Errorf("debtest: Package and Version are required")
	}
	if d.Raw != nil {
		return ar(d.RawOrder, d.Raw), nil
	}
	order, members, err := buildMembers(d)
	if err != nil {
		return nil, err
	}
	return ar(order, members), nil
}

// Members returns the ar members Build would write, in order, so that a test
// can change one (rename it, damage it) and pass them back through
// Deb.Raw and Deb.RawOrder.
func Members(d Deb) ([]string, map[string][]byte, error) {
	if d.Field("Architecture") == "" {
		d.Control = append(d.Control, [2]string{"Architecture", "amd64"})
	}
	return buildMembers(d)
}

func buildMembers(d Deb) ([]string, map[string][]byte, error) {
	ctl := []File{{Path: "./", Type: tar.TypeDir, Mode: 0o755}, {Path: "./control", Body: d.ControlText()}}
	names := make([]string, 0, len(d.Scripts))
	for n := range d.Scripts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		mode := int64(0o644)
		if n == "preinst" || n == "postinst" || n == "prerm" || n == "postrm" || n == "config" {
			mode = 0o755
		}
		ctl = append(ctl, File{Path: "./" + n, Mode: mode, Body: d.Scripts[n]})
	}
	ctlTar, err := tarball(ctl)
	if err != nil {
		return nil, nil, err
	}
	ctlComp := d.ControlCompression
	if ctlComp == "" {
		ctlComp = "xz"
	}
	ctlZ, err := compress(ctlComp, ctlTar)
	if err != nil {
		return nil, nil, err
	}
	dataTar := d.DataTar
	if dataTar == nil {
		if dataTar, err = tarball(d.Files); err != nil {
			return nil, nil, err
		}
	}
	comp := d.Compression
	if comp == "" {
		comp = "xz"
	}
	data, err := compress(comp, dataTar)
	if err != nil {
		return nil, nil, err
	}
	ctlName, dataName := "control.tar", "data.tar"
	if ctlComp != "none" {
		ctlName += "." + ctlComp
	}
	if comp != "none" {
		dataName += "." + comp
	}
	return []string{"debian-binary", ctlName, dataName}, map[string][]byte{
		"debian-binary": []byte("2.0\n"), ctlName: ctlZ, dataName: data,
	}, nil
}

// MustBuild is Build for fixtures that cannot fail.
func MustBuild(d Deb) []byte {
	b, err := Build(d)
	if err != nil {
		panic(err)
	}
	return b
}

// Tar returns an uncompressed tar of files, as Build writes data.tar.
func Tar(files []File) ([]byte, error) { return tarball(files) }

func tarball(files []File) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{
			Name: f.Path, Typeflag: f.Type, Mode: f.Mode, Uid: f.UID, Gid: f.GID,
			Linkname: f.Link, Devmajor: f.Major, Devminor: f.Minor, ModTime: epoch,
			Format: tar.FormatGNU,
		}
		if f.Xattrs != nil {
			h.Format, h.PAXRecords = tar.FormatPAX, map[string]string{}
			for k, v := range f.Xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
			if strings.HasSuffix(f.Path, "/") {
				h.Typeflag = tar.TypeDir
			}
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(f.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("debtest: %s: %w", f.Path, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(f.Body)); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Compress compresses b as dpkg-deb or a repository would: "xz", "gz",
// "zst" or "none".
func Compress(kind string, b []byte) ([]byte, error) { return compress(kind, b) }

func compress(kind string, b []byte) ([]byte, error) {
	var buf bytes.Buffer
	switch kind {
	case "none":
		return b, nil
	case "gz":
		w := gzip.NewWriter(&buf)
		w.Write(b)
		if err := w.Close(); err != nil {
			return nil, err
		}
	case "xz":
		w, err := xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(&buf)
		if err != nil {
			return nil, err
		}
		w.Write(b)
		if err := w.Close(); err != nil {
			return nil, err
		}
	case "zst":
		w, err := zstd.NewWriter(&buf)
		if err != nil {
			return nil, err
		}
		w.Write(b)
		if err := w.Close(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("debtest: unknown compression %q", kind)
	}
	return buf.Bytes(), nil
}

// ar writes a common ar archive (the "!<arch>" format .deb files use).
func ar(order []string, members map[string][]byte) []byte {
	var buf bytes.Buffer
	buf.WriteString("!<arch>\n")
	for _, name := range order {
		b := members[name]
		fmt.Fprintf(&buf, "%-16s%-12d%-6d%-6d%-8o%-10d`\n", name, epoch.Unix(), 0, 0, 0o100644, len(b))
		buf.Write(b)
		if len(b)%2 == 1 {
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes()
}
