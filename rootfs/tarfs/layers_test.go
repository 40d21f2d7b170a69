package tarfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"keel/rootfs"
	"keel/rootfs/tarfs/tarfstest"
)

type ent = tarfstest.Ent

var (
	file       = tarfstest.File
	dir        = tarfstest.Dir
	symlink    = tarfstest.Symlink
	hardlink   = tarfstest.Hardlink
	device     = tarfstest.Device
	whiteout   = tarfstest.Whiteout
	owned      = tarfstest.Owned
	xattr      = tarfstest.Xattr
	layerTar   = tarfstest.Tar
	dump       = tarfstest.Dump
	checkTree  = tarfstest.CheckTree
	checkSpool = tarfstest.CheckSpool
	checkOnly  = tarfstest.CheckOnly
)

func newSpool(t *testing.T) *Spool {
	t.Helper()
	s, err := NewSpool(filepath.Join(t.TempDir(), "spool"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestApplyLayers applies tarfstest.Layers with whiteouts, as OCI layers.
func TestApplyLayers(t *testing.T) {
	spool := newSpool(t)
	tree := rootfs.New()
	for i, l := range tarfstest.Layers(t) {
		if err := Apply(context.Background(), tree, bytes.NewReader(l), Options{Name: "layer" + string(rune('1'+i)), Spool: spool, Whiteouts: true}); err != nil {
			t.Fatal(err)
		}
	}
	checkTree(t, tree, tarfstest.LayersTree)
	checkSpool(t, spool.Dir())
}

// TestApplySemantics covers single rules, each on a fresh tree.
func TestApplySemantics(t *testing.T) {
	tests := []struct {
		name   string
		layers [][]ent
		want   []string
	}{{
		name: "opaque marker before the layer's own entries",
		layers: [][]ent{
			{file("d/old", 0o644, "o"), file("d/sub/old", 0o644, "o")},
			{whiteout("d/.wh..wh..opq"), file("d/sub/new", 0o644, "n")},
		},
		want: []string{
			`/ dir 0755 0:0 t=0`,
			`/d dir 0755 0:0 t=0`,
			`/d/sub dir 0755 0:0 t=0`,
			`/d/sub/new file 0644 0:0 "n"`,
		},
	}, {
		name: "opaque root keeps the layer's own entries",
		layers: [][]ent{
			{file("a", 0o644, "a"), file("b/c", 0o644, "c")},
			{file("b/d", 0o644, "d"), whiteout(".wh..wh..opq")},
		},
		want: []string{
			`/ dir 0755 0:0 t=0`,
			`/b dir 0755 0:0 t=0`,
			`/b/d file 0644 0:0 "d"`,
		},
	}, {
		name: "whiteout of a directory removes its subtree",
		layers: [][]ent{
			{file("d/a", 0o644, "a"), file("d/e/f", 0o644, "f"), file("keep", 0o644, "k")},
			{whiteout(".wh.d")},
		},
		want: []string{
			`/ dir 0755 0:0 t=0`,
			`/keep file 0644 0:0 "k"`,
		},
	}, {
		name: "whiteout of something missing is nothing",
		layers: [][]ent{
			{file("a", 0o644, "a")},
			{whiteout("nope/.wh.x"), whiteout(".wh.y")},
		},
		want: []string{
			`/ dir 0755 0:0 t=0`,
			`/a file 0644 0:0 "a"`,
		},
	}, {
		name: "a file replaces a directory and its subtree",
		layers: [][]ent{
			{file("d/a", 0o644, "a")},
			{file("d", 0o600, "now a file")},
		},
		want: []string{
			`/ dir 0755 0:0 t=0`,
			`/d file 0600 0:0 "now a file"`,
		},
	}, {
		name: "a hard link replaces what was at its name",
		layers: [][]ent{
			{file("a", 0o644, "a"), file("b", 0o644, "b")},
			{hardlink("b", "a")},
		},
		want: []string{
			`/ dir 0755 0:0 t=0`,
			`/a file 0644 0:0 "a"`,
			`/b file 0644 0:0 link=/a "a"`,
		},
	}, {
		name: "a hard link to a symlink links the symlink",
		layers: [][]ent{
			{symlink("s", "/anywhere"), hardlink("t", "s")},
		},
		want: []string{
			`/ dir 0755 0:0 t=0`,
			`/s sym 0777 0:0 -> /anywhere`,
			`/t sym 0777 0:0 link=/s -> /anywhere`,
		},
	}, {
		name: "symlinks are recorded as written, whatever they point at",
		layers: [][]ent{
			{symlink("up", "../../.."), symlink("abs", "/etc/shadow")},
		},
		want: []string{
			`/ dir 0755 0:0 t=0`,
			`/abs sym 0777 0:0 -> /etc/shadow`,
			`/up sym 0777 0:0 -> ../../..`,
		},
	}, {
		name: "a symlink over a directory replaces it",
		layers: [][]ent{
			{file("d/a", 0o644, "a")},
			{symlink("d", "/")},
		},
		want: []string{
			`/ dir 0755 0:0 t=0`,
			`/d sym 0777 0:0 -> /`,
		},
	}, {
		name: "a restated directory keeps lower children and takes new metadata",
		layers: [][]ent{
			{dir("d/", 0o755), file("d/a", 0o644, "a")},
			{owned(xattr(dir("d/", 0o1770), "user.k", "v"), 5, 6)},
		},
		want: []string{
			`/ dir 0755 0:0 t=0`,
			`/d dir 1770 5:6 x:user.k="v"`,
			`/d/a file 0644 0:0 "a"`,
		},
	}, {
		name: "names are cleaned",
		layers: [][]ent{
			{file("./a//b/./c", 0o644, "c"), dir("./x/", 0o700)},
		},
		want: []string{
			`/ dir 0755 0:0 t=0`,
			`/a dir 0755 0:0 t=0`,
			`/a/b dir 0755 0:0 t=0`,
			`/a/b/c file 0644 0:0 "c"`,
			`/x dir 0700 0:0`,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spool := newSpool(t)
			tree := rootfs.New()
			for i, ents := range tt.layers {
				opts := Options{Name: "layer" + string(rune('1'+i)), Spool: spool, Whiteouts: true}
				if err := Apply(context.Background(), tree, bytes.NewReader(layerTar(t, ents...)), opts); err != nil {
					t.Fatal(err)
				}
			}
			checkTree(t, tree, tt.want)
			checkSpool(t, spool.Dir())
		})
	}
}

// TestApplyHostile feeds layers that try to reach outside the root. Each
// must be refused with an error naming the layer and the entry, and leave
// nothing on the host but complete files in the spool.
func TestApplyHostile(t *testing.T) {
	tests := []struct {
		name      string
		entries   []ent
		entry     string // the entry the error must name
		notUnsafe bool   // refused, but as a malformed layer rather than ErrUnsafe
		raw       []byte // the layer's tar, when not made from entries
	}{
		{"dotdot", []ent{file("../evil", 0o644, "x")}, "../evil", false, nil},
		{"dotdot inside", []ent{file("a/../../evil", 0o644, "x")}, "a/../../evil", false, nil},
		{"dotdot not escaping", []ent{file("a/../b", 0o644, "x")}, "a/../b", false, nil},
		{"dotdot directory", []ent{dir("../", 0o755)}, "../", false, nil},
		{"absolute", []ent{file("/etc/evil", 0o644, "x")}, "/etc/evil", false, nil},
		{"write through absolute symlink", []ent{symlink("escape", "/tmp/outside"), file("escape/owned", 0o644, "x")}, "escape/owned", false, nil},
		{"write through climbing symlink", []ent{symlink("up", "../../.."), file("up/etc/owned", 0o644, "x")}, "up/etc/owned", false, nil},
		{"write through inner symlink", []ent{file("etc/x", 0o644, "x"), symlink("etc2", "etc"), file("etc2/y", 0o644, "y")}, "etc2/y", false, nil},
		{"directory through symlink", []ent{symlink("escape", "/"), dir("escape/sub/", 0o755)}, "escape/sub/", false, nil},
		{"device through symlink", []ent{symlink("escape", "/dev"), device(tar.TypeChar, "escape/mem", 0o600, 1, 1)}, "escape/mem", false, nil},
		{"symlink through symlink", []ent{symlink("escape", "/"), symlink("escape/x", "y")}, "escape/x", false, nil},
		{"hard link outside", []ent{hardlink("hl", "../../etc/shadow")}, "hl", false, nil},
		{"hard link absolute", []ent{hardlink("hl", "/etc/shadow")}, "hl", false, nil},
		{"hard link through symlink", []ent{file("real/f", 0o644, "f"), symlink("lnk", "real"), hardlink("hl", "lnk/f")}, "hl", false, nil},
		{"hard link placed through symlink", []ent{file("f", 0o644, "f"), symlink("lnk", "/"), hardlink("lnk/hl", "f")}, "lnk/hl", false, nil},
		{"hard link to missing", []ent{hardlink("hl", "nope")}, "hl", true, nil},
		{"hard link to directory", []ent{dir("d/", 0o755), hardlink("hl", "d")}, "hl", true, nil},
		{"whiteout of dotdot", []ent{whiteout(".wh...")}, ".wh...", false, nil},
		{"whiteout of dotdot below", []ent{dir("etc/", 0o755), whiteout("etc/.wh...")}, "etc/.wh...", false, nil},
		{"whiteout of dot", []ent{dir("etc/", 0o755), whiteout("etc/.wh..")}, "etc/.wh..", false, nil},
		{"whiteout of nothing", []ent{whiteout(".wh.")}, ".wh.", false, nil},
		{"whiteout escaping", []ent{whiteout("../.wh.etc")}, "../.wh.etc", false, nil},
		{"whiteout absolute", []ent{whiteout("/.wh.etc")}, "/.wh.etc", false, nil},
		{"whiteout through symlink", []ent{file("etc/passwd", 0o644, "p"), symlink("escape", "/etc"), whiteout("escape/.wh.passwd")}, "escape/.wh.passwd", false, nil},
		{"opaque through symlink", []ent{symlink("escape", "/"), whiteout("escape/.wh..wh..opq")}, "escape/.wh..wh..opq", false, nil},
		{"below a file", []ent{file("f", 0o644, "f"), file("f/g", 0o644, "g")}, "f/g", false, nil},
		{"root as a file", []ent{file(".", 0o644, "x")}, ".", true, nil},
		{"sparse terabyte", nil, "f", false, tarfstest.SparseTar(1 << 40)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			spool, err := NewSpool(filepath.Join(parent, "spool"))
			if err != nil {
				t.Fatal(err)
			}
			tree := rootfs.New()
			blob := tt.raw
			if blob == nil {
				blob = layerTar(t, tt.entries...)
			}
			err = Apply(context.Background(), tree, bytes.NewReader(blob), Options{Name: "img layer sha256:hostile", Spool: spool, Whiteouts: true})
			if err == nil {
				t.Fatalf("applied; tree:\n%s", strings.Join(dump(t, tree), "\n"))
			}
			var ee *EntryError
			if !errors.As(err, &ee) || ee.Entry != tt.entry || ee.Source != "img layer sha256:hostile" {
				t.Fatalf("error %q does not name entry %q of the layer", err, tt.entry)
			}
			if got := errors.Is(err, ErrUnsafe); got == tt.notUnsafe {
				t.Errorf("errors.Is(ErrUnsafe) = %v: %v", got, err)
			}
			if !strings.Contains(err.Error(), "img layer sha256:hostile") || !strings.Contains(err.Error(), tt.entry) {
				t.Errorf("error %q does not say the layer and entry", err)
			}
			t.Log(err)
			checkOnly(t, parent, "spool")
			checkSpool(t, spool.Dir())
		})
	}
}

// TestApplyStack: an image applied over entries other sources put in the
// tree (packages, a directory, an earlier image) removes with its whiteouts
// only what its own lower layers added, keeps the rest and names it through
// Spared; the same layers applied without a Stack remove everything.
func TestApplyStack(t *testing.T) {
	// What earlier sources left: the 22 entries of a small Debian-like tree
	// in the issue are reduced here to a shell, a config file and a
	// directory the image also writes into.
	before := []ent{
		file("bin/sh", 0o755, "sh"),
		file("etc/passwd", 0o644, "from a package"),
		file("usr/share/doc/pkg/copyright", 0o644, "pkg"),
	}
	layers := [][]ent{
		{
			dir("etc/", 0o755), // restated: the image's now, its children are not
			file("etc/os-release", 0o644, "img"),
			file("usr/share/doc/img/README", 0o644, "img"),
			file("opt/img/a", 0o644, "a"),
		},
		{
			whiteout(".wh..wh..opq"), // an opaque root: only the image's lower entries go
			file("opt/img/b", 0o644, "b"),
		},
		{
			whiteout(".wh.etc"),
			whiteout("usr/share/.wh.doc"),
			whiteout(".wh.bin"),
		},
	}
	want := []string{
		`/ dir 0755 0:0 t=0`,
		`/bin dir 0755 0:0 t=0`,
		`/bin/sh file 0755 0:0 "sh"`,
		`/etc dir 0755 0:0`,
		`/etc/passwd file 0644 0:0 "from a package"`,
		`/opt dir 0755 0:0 t=0`,
		`/opt/img dir 0755 0:0 t=0`,
		`/opt/img/b file 0644 0:0 "b"`,
		`/usr dir 0755 0:0 t=0`,
		`/usr/share dir 0755 0:0 t=0`,
		`/usr/share/doc dir 0755 0:0 t=0`,
		`/usr/share/doc/pkg dir 0755 0:0 t=0`,
		`/usr/share/doc/pkg/copyright file 0644 0:0 "pkg"`,
	}
	wantSpared := []Spared{
		{Entry: ".wh..wh..opq", Paths: []string{"/bin", "/etc/passwd", "/usr"}},
		{Entry: ".wh.etc", Paths: []string{"/etc/passwd"}},
		{Entry: "usr/share/.wh.doc", Paths: []string{"/usr/share/doc"}},
		{Entry: ".wh.bin", Paths: []string{"/bin"}},
	}

	for _, withStack := range []bool{true, false} {
		spool := newSpool(t)
		tree := rootfs.New()
		if err := Apply(context.Background(), tree, bytes.NewReader(layerTar(t, before...)), Options{Name: "packages", Spool: spool}); err != nil {
			t.Fatal(err)
		}
		var stack *Stack
		if withStack {
			stack = NewStack()
		}
		var spared []Spared
		for i, l := range layers {
			opts := Options{Name: "layer" + string(rune('1'+i)), Spool: spool, Whiteouts: true, Stack: stack,
				Spared: func(s Spared) { spared = append(spared, s) }}
			if err := Apply(context.Background(), tree, bytes.NewReader(layerTar(t, l...)), opts); err != nil {
				t.Fatal(err)
			}
		}
		if !withStack {
			// A lone layer's whiteouts may remove anything below them.
			checkTree(t, tree, []string{`/ dir 0755 0:0 t=0`, `/opt dir 0755 0:0 t=0`, `/opt/img dir 0755 0:0 t=0`, `/opt/img/b file 0644 0:0 "b"`})
			if spared != nil {
				t.Errorf("spared without a stack: %v", spared)
			}
			continue
		}
		checkTree(t, tree, want)
		if !reflect.DeepEqual(spared, wantSpared) {
			t.Errorf("spared:\n%v\nwant:\n%v", spared, wantSpared)
		}
		checkSpool(t, spool.Dir())
	}
}

// TestApplyStackReplay: Replay keeps a Stack as Apply does.
func TestApplyStackReplay(t *testing.T) {
	spool := newSpool(t)
	tree := rootfs.New()
	if err := tree.Add("/keep", rootfs.NewFile(0o644, []byte("k"))); err != nil {
		t.Fatal(err)
	}
	stack := NewStack()
	for i, l := range [][]ent{{file("a", 0o644, "a")}, {whiteout(".wh..wh..opq")}} {
		ms, err := Unpack(context.Background(), bytes.NewReader(layerTar(t, l...)), Options{Name: "l", Spool: spool})
		if err != nil {
			t.Fatal(err)
		}
		if err := Replay(context.Background(), tree, ms, Options{Name: "layer" + string(rune('1'+i)), Spool: spool, Whiteouts: true, Stack: stack}); err != nil {
			t.Fatal(err)
		}
	}
	checkTree(t, tree, []string{`/ dir 0755 0:0 t=0`, `/keep file 0644 0:0 "k" t=0`})
}
