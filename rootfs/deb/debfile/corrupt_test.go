package debfile

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"keel/rootfs/deb/debtest"
	"keel/rootfs/tarfs"
)

// members returns hello's ar members (gzip, for speed) for a test to alter.
func members(t *testing.T, comp string) ([]string, map[string][]byte) {
	t.Helper()
	order, m, err := debtest.Members(hello(comp, "gz"))
	if err != nil {
		t.Fatal(err)
	}
	return order, m
}

// rawDeb is a .deb of the given members, in order.
func rawDeb(t *testing.T, order []string, m map[string][]byte) []byte {
	t.Helper()
	return debtest.MustBuild(debtest.Deb{Control: [][2]string{{"Package", "x"}, {"Version", "1"}}, RawOrder: order, Raw: m})
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	z, err := debtest.Compress("gz", b)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func ctlTar(t *testing.T, files ...debtest.File) []byte {
	t.Helper()
	b, err := debtest.Tar(files)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOpenCorrupt covers damaged and malformed packages: each is refused by
// New (or, for damage inside data.tar, by Apply) with an error saying what
// is wrong.
func TestOpenCorrupt(t *testing.T) {
	good := "Package: x\nVersion: 1\nArchitecture: amd64\n"
	with := func(change func(order []string, m map[string][]byte) []string) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			order, m := members(t, "gz")
			return rawDeb(t, change(order, m), m)
		}
	}
	control := func(files ...debtest.File) func(t *testing.T) []byte {
		return with(func(order []string, m map[string][]byte) []string {
			m["control.tar.gz"] = gz(t, ctlTar(t, files...))
			return order
		})
	}
	tests := []struct {
		name    string
		deb     func(t *testing.T) []byte
		atApply bool   // New accepts it; Apply refuses
		says    string // part of the error
	}{
		{"empty", func(*testing.T) []byte { return nil }, false, "not a .deb"},
		{"not an ar archive", func(*testing.T) []byte { return []byte("PK\x03\x04 a zip file, really") }, false, "no ar archive magic"},
		{"only the magic", func(*testing.T) []byte { return []byte("!<arch>\n") }, false, "truncated"},
		{"first member not debian-binary", with(func(o []string, m map[string][]byte) []string { return o[1:] }), false, `first member is "control.tar.gz"`},
		{"format 3.0", with(func(o []string, m map[string][]byte) []string { m["debian-binary"] = []byte("3.0\n"); return o }), false, `unsupported format "3.0\n"`},
		{"format without newline", with(func(o []string, m map[string][]byte) []string { m["debian-binary"] = []byte("2.0"); return o }), false, "unsupported format"},
		{"huge debian-binary", with(func(o []string, m map[string][]byte) []string {
			m["debian-binary"] = bytes.Repeat([]byte("2"), 100)
			return o
		}), false, "too long"},
		{"no control", with(func(o []string, m map[string][]byte) []string { return []string{o[0], o[2]} }), false, `member "data.tar.gz" where control.tar should be`},
		{"no data", with(func(o []string, m map[string][]byte) []string { return o[:2] }), false, "looking for data.tar: archive ends early"},
		{"data before control", with(func(o []string, m map[string][]byte) []string { return []string{o[0], o[2], o[1]} }), false, "where control.tar should be"},
		{"bzip2 data", with(func(o []string, m map[string][]byte) []string {
			m["data.tar.bz2"] = []byte("BZh91AY&SY")
			return []string{o[0], o[1], "data.tar.bz2"}
		}), false, "data.tar.bz2: bz2 compression is not supported"},
		{"lzma data", with(func(o []string, m map[string][]byte) []string {
			m["data.tar.lzma"] = []byte{0x5d, 0, 0}
			return []string{o[0], o[1], "data.tar.lzma"}
		}), false, "lzma compression is not supported"},
		{"unknown compression", with(func(o []string, m map[string][]byte) []string {
			m["data.tar.rar"] = []byte("x")
			return []string{o[0], o[1], "data.tar.rar"}
		}), false, `unknown compression ".rar"`},
		{"control not gzip", with(func(o []string, m map[string][]byte) []string {
			m["control.tar.gz"] = []byte("not gzip at all")
			return o
		}), false, "control.tar.gz"},
		{"control truncated", with(func(o []string, m map[string][]byte) []string {
			m["control.tar.gz"] = m["control.tar.gz"][:len(m["control.tar.gz"])/2]
			return o
		}), false, "control.tar.gz"},
		{"control gzip checksum", with(func(o []string, m map[string][]byte) []string {
			b := bytes.Clone(m["control.tar.gz"])
			b[len(b)-5] ^= 0xff
			m["control.tar.gz"] = b
			return o
		}), false, "control.tar.gz"},
		{"no control file", control(debtest.File{Path: "./postinst", Body: "x"}), false, "no control file"},
		{"control in a directory", control(debtest.File{Path: "./control", Body: good}, debtest.File{Path: "./sub/x", Body: "x"}), false, `entry "./sub/x": only plain files`},
		{"control symlink", control(debtest.File{Path: "./control", Body: good}, debtest.File{Path: "./postinst", Type: tar.TypeSymlink, Link: "/etc/shadow"}), false, `entry "./postinst": only plain files`},
		{"control member climbing", control(debtest.File{Path: "./control", Body: good}, debtest.File{Path: "../postinst", Body: "x"}), false, "only plain files"},
		{"control twice", control(debtest.File{Path: "./control", Body: good}, debtest.File{Path: "control", Body: good}), false, "twice"},
		{"control without version", control(debtest.File{Path: "./control", Body: "Package: x\nArchitecture: amd64\n"}), false, "bad Version"},
		{"control without package", control(debtest.File{Path: "./control", Body: "Version: 1\nArchitecture: amd64\n"}), false, "no Package field"},
		{"control with two paragraphs", control(debtest.File{Path: "./control", Body: good + "\nPackage: y\nVersion: 1\nArchitecture: all\n"}), false, "2 paragraphs"},
		{"control signed", control(debtest.File{Path: "./control", Body: "-----BEGIN PGP SIGNED MESSAGE-----\n" + good}), false, "signed control"},
		{"control garbage", control(debtest.File{Path: "./control", Body: "\x00\x01\x02 no colon here\n"}), false, "control"},
		{"control bomb", with(func(o []string, m map[string][]byte) []string {
			z, err := debtest.Compress("zst", make([]byte, MaxControlSize+4096))
			if err != nil {
				t.Fatal(err)
			}
			m["control.tar.zst"] = z
			return []string{o[0], "control.tar.zst", o[2]}
		}), false, fmt.Sprint("expands past ", MaxControlSize, " bytes")},
		{"bad ar size", func(t *testing.T) []byte {
			b := debtest.MustBuild(hello("gz", "gz"))
			copy(b[8+48:], "12x4567890")
			return b
		}, false, `bad size "12x4567890"`},
		{"negative ar size", func(t *testing.T) []byte {
			b := debtest.MustBuild(hello("gz", "gz"))
			copy(b[8+48:], "-4        ")
			return b
		}, false, "bad size"},
		{"ar size past the end", func(t *testing.T) []byte {
			b := debtest.MustBuild(hello("gz", "gz"))
			copy(b[8+48:], "9999999999")
			return b
		}, false, "truncated"},
		{"bad ar terminator", func(t *testing.T) []byte {
			b := debtest.MustBuild(hello("gz", "gz"))
			copy(b[8+58:], "xx")
			return b
		}, false, "bad terminator"},
		{"data truncated", with(func(o []string, m map[string][]byte) []string {
			m["data.tar.gz"] = m["data.tar.gz"][:len(m["data.tar.gz"])-20]
			return o
		}), true, "package hello"},
		{"data not a tar", with(func(o []string, m map[string][]byte) []string {
			m["data.tar.gz"] = gz(t, bytes.Repeat([]byte("garbage "), 200))
			return o
		}), true, "package hello: reading tar"},
		{"data xz damaged", func(t *testing.T) []byte {
			order, m, err := debtest.Members(hello("xz", "gz"))
			if err != nil {
				t.Fatal(err)
			}
			b := bytes.Clone(m["data.tar.xz"])
			b[len(b)/2] ^= 0x55
			m["data.tar.xz"] = b
			return rawDeb(t, order, m)
		}, true, "package hello"},
		{"data xz with garbage after it", func(t *testing.T) []byte {
			order, m, err := debtest.Members(hello("xz", "gz"))
			if err != nil {
				t.Fatal(err)
			}
			m["data.tar.xz"] = append(bytes.Clone(m["data.tar.xz"]), "trailing garbage"...)
			return rawDeb(t, order, m)
		}, true, "package hello"},
		{"data zstd truncated", func(t *testing.T) []byte {
			order, m, err := debtest.Members(hello("zst", "gz"))
			if err != nil {
				t.Fatal(err)
			}
			m["data.tar.zst"] = m["data.tar.zst"][:len(m["data.tar.zst"])-3]
			return rawDeb(t, order, m)
		}, true, "package hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.deb(t)
			f, err := New(bytes.NewReader(b), int64(len(b)))
			if !tt.atApply {
				if err == nil {
					t.Fatalf("opened: %+v", f.Control.Package)
				}
				if !strings.Contains(err.Error(), tt.says) {
					t.Errorf("error %q does not say %q", err, tt.says)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.Apply(context.Background(), mergedTree(t), newSpool(t), keelOptions)
			if err == nil {
				t.Fatal("applied")
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", err, tt.says)
			}
			t.Log(err)
			if _, err := f.Unpack(context.Background(), newSpool(t), tarfs.Limits{}); err == nil {
				t.Error("unpacked")
			}
		})
	}
}

// TestOpenExtraMembers: members starting with "_" before control.tar and
// data.tar, and any after data.tar, are ignored (deb(5)).
func TestOpenExtraMembers(t *testing.T) {
	order, m := members(t, "gz")
	m["_gpgorigin"] = []byte("signature")
	m["_x"] = []byte("odd")
	m["zzz-future"] = []byte("later member")
	b := rawDeb(t, []string{order[0], "_gpgorigin", order[1], "_x", order[2], "zzz-future"}, m)
	f, err := New(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Apply(context.Background(), mergedTree(t), newSpool(t), keelOptions); err != nil {
		t.Fatal(err)
	}
}

// TestOpenTruncated cuts hello at every length: each prefix is refused by
// New or, when only data.tar is cut, by Apply; none panics.
func TestOpenTruncated(t *testing.T) {
	for _, comp := range []string{"gz", "xz", "zst"} {
		b := debtest.MustBuild(hello(comp, comp))
		for n := 0; n < len(b); n++ {
			// The ar pad byte after an odd-sized last member is optional.
			if n == len(b)-1 && b[n] == '\n' {
				continue
			}
			f, err := New(bytes.NewReader(b[:n]), int64(n))
			if err != nil {
				continue
			}
			if _, err := f.Apply(context.Background(), mergedTree(t), newSpool(t), keelOptions); err == nil {
				t.Errorf("%s: cut at %d of %d: applied", comp, n, len(b))
			}
		}
	}
}
