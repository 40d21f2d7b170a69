package postinst

// A minimal .deb reader for the tests: ar, then control.tar and data.tar
// in any of the compressions dpkg-deb writes. The build's own reader is
// rootfs/deb/debfile; these tests only need enough to put packages into a
// tree the way dpkg would on a merged-/usr system.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"keel/rootfs"
	"keel/rootfs/deb/debtest"
)

type testDeb struct {
	pkg  *Package
	data []byte // data.tar, uncompressed
}

func arMembers(b []byte) (map[string][]byte, error) {
	if !bytes.HasPrefix(b, []byte("!<arch>\n")) {
		return nil, fmt.Errorf("not an ar archive")
	}
	out := map[string][]byte{}
	b = b[8:]
	for len(b) >= 60 {
		name := strings.TrimRight(strings.TrimSpace(string(b[:16])), "/")
		size, err := strconv.Atoi(strings.TrimSpace(string(b[48:58])))
		if err != nil || size < 0 || 60+size > len(b) {
			return nil, fmt.Errorf("bad ar member %q", name)
		}
		out[name] = b[60 : 60+size]
		b = b[60+size:]
		if size%2 == 1 && len(b) > 0 {
			b = b[1:]
		}
	}
	return out, nil
}

func decompress(name string, b []byte) ([]byte, error) {
	var r io.Reader
	var err error
	switch path.Ext(name) {
	case ".tar":
		return b, nil
	case ".xz":
		r, err = xz.NewReader(bytes.NewReader(b))
	case ".gz":
		r, err = gzip.NewReader(bytes.NewReader(b))
	case ".zst":
		var d *zstd.Decoder
		d, err = zstd.NewReader(bytes.NewReader(b))
		if err == nil {
			defer d.Close()
			r = d
		}
	default:
		return nil, fmt.Errorf("%s: unknown compression", name)
	}
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func parseDeb(b []byte) (*testDeb, error) {
	m, err := arMembers(b)
	if err != nil {
		return nil, err
	}
	var ctl, data []byte
	for name, body := range m {
		switch {
		case strings.HasPrefix(name, "control.tar"):
			if ctl, err = decompress(name, body); err != nil {
				return nil, err
			}
		case strings.HasPrefix(name, "data.tar"):
			if data, err = decompress(name, body); err != nil {
				return nil, err
			}
		}
	}
	if ctl == nil || data == nil {
		return nil, fmt.Errorf("no control.tar or data.tar")
	}
	members := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(ctl))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		members[strings.TrimPrefix(h.Name, "./")] = string(body)
	}
	fields := map[string]string{}
	for _, f := range parseControl(members["control"]) {
		fields[f.name] = f.value
	}
	p := &Package{
		Name: fields["Package"], Version: fields["Version"], Architecture: fields["Architecture"],
		Control: members["control"], MD5Sums: members["md5sums"], Scripts: map[string]string{},
	}
	for _, l := range strings.Split(members["conffiles"], "\n") {
		if l = strings.TrimSpace(l); l != "" {
			p.Conffiles = append(p.Conffiles, l)
		}
	}
	for name, body := range members {
		switch name {
		case "control", "md5sums", "conffiles":
		default:
			p.Scripts[name] = body
		}
	}
	tr = tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		p.Files = append(p.Files, h.Name)
	}
	return &testDeb{pkg: p, data: data}, nil
}

// mergedUsrTree is a tree with Debian's merged-/usr links, as keel's
// builds start from.
func mergedUsrTree(t testing.TB) *rootfs.Tree {
	t.Helper()
	tr := rootfs.New()
	for _, d := range []string{"/usr", "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib64"} {
		if err := tr.Add(d, &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
		if err := tr.Add("/"+l, &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: "usr/" + l}); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

// unpack applies a data.tar onto the tree as dpkg does: through the
// tree's directory links, directories kept, files replaced.
func unpack(t testing.TB, tr *rootfs.Tree, data []byte) {
	t.Helper()
	r := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := r.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		name := rootfs.Clean(h.Name)
		if name == "/" {
			continue
		}
		real, err := tr.ResolveParent(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		e := &rootfs.Entry{Mode: uint32(h.Mode) & rootfs.ModePerm, UID: uint32(h.Uid), GID: uint32(h.Gid), Mtime: h.ModTime.Unix()}
		switch h.Typeflag {
		case tar.TypeDir:
			if old, ok := tr.Get(real); ok && (old.Type == rootfs.TypeDir || old.Type == rootfs.TypeSymlink) {
				continue // an existing directory, or the merged-/usr link, stays
			}
			e.Type = rootfs.TypeDir
		case tar.TypeReg:
			body, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			e.Type, e.Size, e.Content = rootfs.TypeFile, int64(len(body)), rootfs.Bytes(body)
		case tar.TypeSymlink:
			e.Type, e.Target = rootfs.TypeSymlink, h.Linkname
		case tar.TypeLink:
			target, err := tr.ResolveParent(rootfs.Clean(h.Linkname))
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.Link(real, target); err != nil {
				t.Fatal(err)
			}
			continue
		default:
			continue
		}
		if err := tr.Add(real, e); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// buildDeb turns a debtest description into a testDeb through the real
// .deb format.
func buildDeb(t testing.TB, d debtest.Deb) *testDeb {
	t.Helper()
	b, err := debtest.Build(d)
	if err != nil {
		t.Fatal(err)
	}
	td, err := parseDeb(b)
	if err != nil {
		t.Fatal(err)
	}
	return td
}

// installDebs unpacks packages in order and returns them for Configure.
func installDebs(t testing.TB, tr *rootfs.Tree, debs []*testDeb) []*Package {
	t.Helper()
	var pkgs []*Package
	for _, d := range debs {
		unpack(t, tr, d.data)
		pkgs = append(pkgs, d.pkg)
	}
	return pkgs
}

func loadDebFile(t testing.TB, file string) *testDeb {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseDeb(b)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return d
}
