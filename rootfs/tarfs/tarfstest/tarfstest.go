// Package tarfstest builds tar archives for tests and checks the trees
// applied from them: entry builders, a tar writer, and a one-line-per-path
// dump of a tree that tests compare with what they expect.
package tarfstest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"keel/rootfs"
)

// Epoch is the mtime of every entry that does not set one.
var Epoch = time.Unix(1700000000, 0)

// Ent is one tar entry.
type Ent struct {
	Hdr  tar.Header
	Body string
}

// File is a regular file holding body.
func File(name string, mode int64, body string) Ent {
	return Ent{Hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, Body: body}
}

// Dir is a directory; name ends in "/" as tar writers put it.
func Dir(name string, mode int64) Ent {
	return Ent{Hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}}
}

// Symlink is a symlink to target, mode 0777.
func Symlink(name, target string) Ent {
	return Ent{Hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

// Hardlink is a hard link to the earlier entry target.
func Hardlink(name, target string) Ent {
	return Ent{Hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644}}
}

// Device is a character (tar.TypeChar) or block (tar.TypeBlock) device.
func Device(typ byte, name string, mode, major, minor int64) Ent {
	return Ent{Hdr: tar.Header{Typeflag: typ, Name: name, Mode: mode, Devmajor: major, Devminor: minor}}
}

// Fifo is a named pipe.
func Fifo(name string, mode int64) Ent {
	return Ent{Hdr: tar.Header{Typeflag: tar.TypeFifo, Name: name, Mode: mode}}
}

// Whiteout is the marker file for name, an empty regular file as Docker
// writes it.
func Whiteout(name string) Ent { return File(name, 0o644, "") }

// Owned sets the owner of e.
func Owned(e Ent, uid, gid int) Ent {
	e.Hdr.Uid, e.Hdr.Gid = uid, gid
	return e
}

// Xattr adds an extended attribute to e, as a PAX record.
func Xattr(e Ent, name, value string) Ent {
	if e.Hdr.PAXRecords == nil {
		e.Hdr.PAXRecords = map[string]string{}
	}
	e.Hdr.PAXRecords["SCHILY.xattr."+name] = value
	return e
}

// Mtime sets the modification time of e.
func Mtime(e Ent, sec int64) Ent {
	e.Hdr.ModTime = time.Unix(sec, 0)
	return e
}

// Tar returns an uncompressed PAX tar of the entries, in order.
func Tar(t testing.TB, entries ...Ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.Hdr
		if h.ModTime.IsZero() {
			h.ModTime = Epoch
		}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %s: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(e.Body)); err != nil {
			t.Fatalf("tar body %s: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Gzip compresses b.
func Gzip(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Zstd compresses b.
func Zstd(t testing.TB, b []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(b, nil)
}

// SparseTar returns a tar holding one PAX (1.0) sparse file "f" of realsize
// bytes stored in a few: Go's tar writer cannot write one, so the blocks are
// made here.
func SparseTar(realsize int64) []byte {
	rec := func(k, v string) string {
		r := " " + k + "=" + v + "\n"
		for n := len(r); ; {
			s := fmt.Sprintf("%d%s", n, r)
			if len(s) == n {
				return s
			}
			n = len(s)
		}
	}
	header := func(name string, typ byte, size int) []byte {
		b := make([]byte, 512)
		copy(b[0:], name)
		copy(b[100:], "0000644\x00")
		copy(b[108:], "0000000\x00")
		copy(b[116:], "0000000\x00")
		copy(b[124:], fmt.Sprintf("%011o\x00", size))
		copy(b[136:], "00000000000\x00")
		b[156] = typ
		copy(b[257:], "ustar\x0000")
		copy(b[148:], "        ")
		sum := 0
		for _, c := range b {
			sum += int(c)
		}
		copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
		return b
	}
	pad := func(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }
	recs := rec("GNU.sparse.major", "1") + rec("GNU.sparse.minor", "0") + rec("GNU.sparse.name", "f") +
		rec("GNU.sparse.realsize", fmt.Sprint(realsize))
	// The sparse map (one 4-byte chunk at the very end), then the data.
	body := append(pad([]byte(fmt.Sprintf("1\n%d\n4\n", realsize-4))), "data"...)
	var out []byte
	out = append(out, header("PaxHeaders/f", 'x', len(recs))...)
	out = append(out, pad([]byte(recs))...)
	out = append(out, header("GNUSparseFile.0/f", '0', len(body))...)
	out = append(out, pad(body)...)
	return append(out, make([]byte, 1024)...)
}

var typeNames = map[rootfs.Type]string{
	rootfs.TypeDir: "dir", rootfs.TypeFile: "file", rootfs.TypeSymlink: "sym",
	rootfs.TypeCharDev: "chr", rootfs.TypeBlockDev: "blk", rootfs.TypeFifo: "fifo",
	rootfs.TypeSocket: "sock",
}

// Dump lists every path of the tree, one line each: path, type, mode,
// uid:gid, then what the type carries (content, symlink target, device
// numbers), "link=P" for the second and later paths of one inode, "t=N" for
// an mtime other than Epoch, and xattrs. It also checks that each file's
// content is as long as its Size says.
func Dump(t testing.TB, tree *rootfs.Tree) []string {
	t.Helper()
	first := map[*rootfs.Entry]string{}
	var out []string
	err := tree.Walk(func(p string, e *rootfs.Entry) error {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s %04o %d:%d", p, typeNames[e.Type], e.Mode, e.UID, e.GID)
		if f, ok := first[e]; ok {
			fmt.Fprintf(&b, " link=%s", f)
		} else {
			first[e] = p
		}
		switch e.Type {
		case rootfs.TypeFile:
			var content []byte
			if e.Content != nil {
				rc, err := e.Content()
				if err != nil {
					return err
				}
				content, err = io.ReadAll(rc)
				rc.Close()
				if err != nil {
					return err
				}
			}
			if int64(len(content)) != e.Size {
				return fmt.Errorf("%s: Size %d, content %d bytes", p, e.Size, len(content))
			}
			fmt.Fprintf(&b, " %q", content)
		case rootfs.TypeSymlink:
			fmt.Fprintf(&b, " -> %s", e.Target)
		case rootfs.TypeCharDev, rootfs.TypeBlockDev:
			fmt.Fprintf(&b, " %d:%d", e.Major, e.Minor)
		}
		if e.Mtime != Epoch.Unix() {
			fmt.Fprintf(&b, " t=%d", e.Mtime)
		}
		names := make([]string, 0, len(e.Xattrs))
		for k := range e.Xattrs {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			fmt.Fprintf(&b, " x:%s=%q", k, e.Xattrs[k])
		}
		out = append(out, b.String())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// CheckTree compares Dump(tree) with want.
func CheckTree(t testing.TB, tree *rootfs.Tree, want []string) {
	t.Helper()
	got := Dump(t, tree)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

var contentName = regexp.MustCompile(`^[0-9a-f]{64}$`)

// CheckSpool asserts the spool directory holds only complete,
// content-addressed files: no temporary left behind, nothing named
// otherwise.
func CheckSpool(t testing.TB, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !contentName.MatchString(e.Name()) {
			t.Errorf("spool holds %s (%v)", e.Name(), e.Type())
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if SHA256(b) != e.Name() {
			t.Errorf("spool file %s has content %s", e.Name(), SHA256(b))
		}
	}
}

// CheckOnly asserts dir holds exactly the names given.
func CheckOnly(t testing.TB, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	sort.Strings(names)
	if strings.Join(got, " ") != strings.Join(names, " ") {
		t.Errorf("%s holds %q, want %q", dir, got, names)
	}
}

// SHA256 is the lowercase hex SHA-256 of b.
func SHA256(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
