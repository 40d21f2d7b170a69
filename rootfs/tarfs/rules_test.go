package tarfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"keel/rootfs"
	"keel/rootfs/tarfs/tarfstest"
)

// mergedUsr is Debian's merged-/usr aliases, as rootfs/deb/debfile uses them.
var mergedUsr = map[string]string{"/bin": "/usr/bin", "/sbin": "/usr/sbin", "/lib": "/usr/lib", "/lib64": "/usr/lib64"}

// mergedTree returns a tree holding the merged-/usr symlinks and their
// canonical directories, as keel makes it before any package.
func mergedTree(t *testing.T) *rootfs.Tree {
	t.Helper()
	tree := rootfs.New()
	for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
		if err := tree.MkdirAll("/usr/"+d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := tree.Add("/"+d, &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: "usr/" + d, Mtime: tarfstest.Epoch.Unix()}); err != nil {
			t.Fatal(err)
		}
	}
	return tree
}

// TestApplyAliases covers merged /usr: entries below an alias land below its
// canonical directory, hard links too, and the alias itself stays.
func TestApplyAliases(t *testing.T) {
	var added []Added
	opts := Options{Name: "package libc", Kind: "package", Spool: newSpool(t), Aliases: mergedUsr, NoNewlines: true,
		Added: func(a Added) { added = append(added, a) }}
	tree := mergedTree(t)
	tr := layerTar(t,
		dir("./", 0o755),
		dir("./bin/", 0o755),
		file("./bin/sh", 0o755, "sh"),
		hardlink("./bin/sh2", "./bin/sh"),
		hardlink("./usr/bin/dash", "./bin/sh"),
		dir("./lib64/", 0o755),
		symlink("./lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
		file("./lib/x86_64-linux-gnu/libc.so.6", 0o644, "libc"),
		symlink("./sbin", "usr/sbin"), // the alias as trixie's base-files ships it
		symlink("./lib", "/usr/lib"),  // absolute, same directory
		file("./usr/lib/os-release", 0o644, "x"),
		file("./bin.d/x", 0o644, "not an alias"), // a prefix, not a component
	)
	if err := Apply(context.Background(), tree, bytes.NewReader(tr), opts); err != nil {
		t.Fatal(err)
	}
	checkTree(t, tree, []string{
		`/ dir 0755 0:0`,
		`/bin sym 0777 0:0 -> usr/bin`,
		`/bin.d dir 0755 0:0 t=0`,
		`/bin.d/x file 0644 0:0 "not an alias"`,
		`/lib sym 0777 0:0 -> usr/lib`,
		`/lib64 sym 0777 0:0 -> usr/lib64`,
		`/sbin sym 0777 0:0 -> usr/sbin`,
		`/usr dir 0755 0:0 t=0`,
		`/usr/bin dir 0755 0:0 t=0`,
		`/usr/bin/dash file 0755 0:0 "sh"`,
		`/usr/bin/sh file 0755 0:0 link=/usr/bin/dash "sh"`,
		`/usr/bin/sh2 file 0755 0:0 link=/usr/bin/dash "sh"`,
		`/usr/lib dir 0755 0:0 t=0`,
		`/usr/lib/os-release file 0644 0:0 "x"`,
		`/usr/lib/x86_64-linux-gnu dir 0755 0:0 t=0`,
		`/usr/lib/x86_64-linux-gnu/libc.so.6 file 0644 0:0 "libc"`,
		`/usr/lib64 dir 0755 0:0 t=0`,
		`/usr/lib64/ld-linux-x86-64.so.2 sym 0777 0:0 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2`,
		`/usr/sbin dir 0755 0:0 t=0`,
	})
	want := []Added{
		{"/", "/"}, {"/bin", "/bin"}, {"/bin/sh", "/usr/bin/sh"}, {"/bin/sh2", "/usr/bin/sh2"},
		{"/usr/bin/dash", "/usr/bin/dash"}, {"/lib64", "/lib64"},
		{"/lib64/ld-linux-x86-64.so.2", "/usr/lib64/ld-linux-x86-64.so.2"},
		{"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"},
		{"/sbin", "/sbin"}, {"/lib", "/lib"}, {"/usr/lib/os-release", "/usr/lib/os-release"},
		{"/bin.d/x", "/bin.d/x"},
	}
	if !reflect.DeepEqual(added, want) {
		t.Errorf("added:\n%v\nwant:\n%v", added, want)
	}
}

// TestApplyRefused covers entries refused under aliases, protected paths and
// dpkg's rules, each with an error naming the archive and the entry.
func TestApplyRefused(t *testing.T) {
	keelTree := func(t *testing.T) *rootfs.Tree {
		tree := mergedTree(t)
		if err := tree.MkdirAll("/etc/keel/keys", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := tree.Add("/etc/keel/keys/k.pub", rootfs.NewFile(0o644, []byte("key"))); err != nil {
			t.Fatal(err)
		}
		return tree
	}
	symlinkedOpt := func(t *testing.T) *rootfs.Tree {
		tree := mergedTree(t)
		if err := tree.Add("/opt", &rootfs.Entry{Type: rootfs.TypeSymlink, Mode: 0o777, Target: "usr/opt"}); err != nil {
			t.Fatal(err)
		}
		return tree
	}
	tests := []struct {
		name      string
		tree      func(*testing.T) *rootfs.Tree
		whiteouts bool
		entries   []ent
		entry     string // the entry the error names
		is        error  // what it wraps; nil for a plain reason
		says      string // the whole message, when set
	}{
		{name: "protected file", entries: []ent{file("./etc/keel/keys/x.pub", 0o644, "k")}, entry: "./etc/keel/keys/x.pub", is: ErrProtected,
			says: `package evil: entry "./etc/keel/keys/x.pub": /etc/keel is keel's own: no package may write there`},
		{name: "protected directory", entries: []ent{dir("./etc/keel/", 0o755)}, entry: "./etc/keel/", is: ErrProtected},
		{name: "protected in an empty tree", tree: func(*testing.T) *rootfs.Tree { return rootfs.New() },
			entries: []ent{file("etc/keel/services/x.json", 0o644, "{}")}, entry: "etc/keel/services/x.json", is: ErrProtected},
		{name: "protected parent as a symlink", entries: []ent{symlink("./etc", "/tmp")}, entry: "./etc", is: ErrProtected,
			says: `package evil: entry "./etc": /etc must stay a directory: it holds /etc/keel, which is keel's own`},
		{name: "protected parent as a file", tree: func(*testing.T) *rootfs.Tree { return rootfs.New() }, entries: []ent{file("etc", 0o644, "x")}, entry: "etc", is: ErrProtected},
		{name: "hard link into protected", entries: []ent{file("./x", 0o644, "x"), hardlink("./etc/keel/keys/y.pub", "./x")}, entry: "./etc/keel/keys/y.pub", is: ErrProtected},
		{name: "hard link to protected", entries: []ent{hardlink("./stolen", "./etc/keel/keys/k.pub")}, entry: "./stolen", is: ErrProtected},
		{name: "whiteout in protected", whiteouts: true, entries: []ent{whiteout("etc/keel/keys/.wh.k.pub")}, entry: "etc/keel/keys/.wh.k.pub", is: ErrProtected},
		{name: "whiteout of protected", whiteouts: true, entries: []ent{whiteout("etc/.wh.keel")}, entry: "etc/.wh.keel", is: ErrProtected},
		{name: "whiteout of a protected parent", whiteouts: true, entries: []ent{whiteout(".wh.etc")}, entry: ".wh.etc", is: ErrProtected,
			says: `package evil: entry ".wh.etc": removing /etc would remove /etc/keel, which is keel's own`},
		{name: "opaque above protected", whiteouts: true, entries: []ent{whiteout("etc/.wh..wh..opq")}, entry: "etc/.wh..wh..opq", is: ErrProtected},
		{name: "opaque root above protected", whiteouts: true, entries: []ent{whiteout(".wh..wh..opq")}, entry: ".wh..wh..opq", is: ErrProtected},
		{name: "alias as a file", entries: []ent{file("./bin", 0o755, "x")}, entry: "./bin", is: ErrUnsafe},
		{name: "alias as another symlink", entries: []ent{symlink("./lib64", "/tmp")}, entry: "./lib64", is: ErrUnsafe},
		{name: "hard link to an alias", entries: []ent{hardlink("./x", "./bin")}, entry: "./x"},
		{name: "whiteout of an alias", whiteouts: true, entries: []ent{whiteout(".wh.bin")}, entry: ".wh.bin", is: ErrUnsafe},
		{name: "symlinked parent that is not an alias", tree: symlinkedOpt, entries: []ent{file("./opt/x", 0o644, "x")}, entry: "./opt/x", is: ErrUnsafe},
		{name: "symlink from the package is no alias", entries: []ent{symlink("./usr/lib64x", "lib64"), file("./usr/lib64x/evil", 0o644, "x")}, entry: "./usr/lib64x/evil", is: ErrUnsafe},
		{name: "below an alias, then through a symlink", entries: []ent{symlink("./bin/sub", "/etc"), file("./bin/sub/x", 0o644, "x")}, entry: "./bin/sub/x", is: ErrUnsafe},
		{name: "dotdot through an alias", entries: []ent{file("./bin/../etc/keel/x", 0o644, "x")}, entry: "./bin/../etc/keel/x", is: ErrUnsafe},
		{name: "newline", entries: []ent{file("./usr/bin/a\nb", 0o755, "x")}, entry: "./usr/bin/a\nb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mk := keelTree
			if tt.tree != nil {
				mk = tt.tree
			}
			tree := mk(t)
			opts := Options{Name: "package evil", Kind: "package", Spool: newSpool(t), Whiteouts: tt.whiteouts,
				Aliases: mergedUsr, Protected: []string{"/etc/keel"}, NoNewlines: true}
			err := Apply(context.Background(), tree, bytes.NewReader(layerTar(t, tt.entries...)), opts)
			if err == nil {
				t.Fatalf("applied; tree:\n%s", strings.Join(dump(t, tree), "\n"))
			}
			t.Log(err)
			var ee *EntryError
			if !errors.As(err, &ee) || ee.Entry != tt.entry || ee.Source != "package evil" {
				t.Fatalf("error %q does not name entry %q of the package", err, tt.entry)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
			if tt.is == nil && (errors.Is(err, ErrUnsafe) || errors.Is(err, ErrProtected)) {
				t.Errorf("error %q: want a plain reason", err)
			}
			if tt.says != "" && err.Error() != tt.says {
				t.Errorf("error %q, want %q", err, tt.says)
			}
			if e, ok := tree.Get("/etc/keel/keys/k.pub"); ok && string(readAll(t, e)) != "key" {
				t.Error("the protected file changed")
			}
		})
	}
}

// TestApplyAllowed covers entries next to the rules that must still apply.
func TestApplyAllowed(t *testing.T) {
	tests := []struct {
		name      string
		whiteouts bool
		entries   []ent
	}{
		{"a restated parent of a protected path", false, []ent{dir("./", 0o755), dir("./etc/", 0o755)}},
		{"a name that shares a prefix", false, []ent{file("./etc/keelx", 0o644, "x"), file("./etc/keel.conf", 0o644, "x")}},
		{"opaque above a protected path the tree lacks", true, []ent{whiteout("etc/.wh..wh..opq"), file("etc/hostname", 0o644, "h")}},
		{"a whiteout named like a protected path in a package", false, []ent{file("etc/.wh.keel", 0o644, "")}},
		{"a newline when dpkg's rule is off", false, []ent{file("a\nb", 0o644, "x")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{Name: "src", Spool: newSpool(t), Whiteouts: tt.whiteouts, Protected: []string{"/etc/keel"}}
			if err := Apply(context.Background(), rootfs.New(), bytes.NewReader(layerTar(t, tt.entries...)), opts); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOptionsRefused(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"no spool", Options{}},
		{"relative alias", Options{Aliases: map[string]string{"bin": "/usr/bin"}}},
		{"alias of root", Options{Aliases: map[string]string{"/": "/usr"}}},
		{"alias into itself", Options{Aliases: map[string]string{"/usr": "/usr/bin"}}},
		{"unclean alias", Options{Aliases: map[string]string{"/bin/": "/usr/bin"}}},
		{"nested aliases", Options{Aliases: map[string]string{"/a": "/x", "/a/b": "/y"}}},
		{"relative protected", Options{Protected: []string{"etc/keel"}}},
		{"protected root", Options{Protected: []string{"/"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name != "no spool" {
				tt.opts.Spool = newSpool(t)
			}
			if err := Apply(context.Background(), rootfs.New(), bytes.NewReader(layerTar(t)), tt.opts); err == nil {
				t.Fatal("accepted")
			} else {
				t.Log(err)
			}
			if err := Replay(context.Background(), rootfs.New(), nil, tt.opts); err == nil {
				t.Fatal("Replay accepted")
			}
		})
	}
}

func TestApplyLimits(t *testing.T) {
	many := layerTar(t, file("a", 0o644, "a"), file("b", 0o644, "b"), file("c", 0o644, "c"))
	big := layerTar(t, file("big", 0o644, strings.Repeat("x", 1<<20)))
	// A tar followed by zeros: what a compressed bomb after the end marker
	// expands to.
	trailing := append(layerTar(t, file("a", 0o644, "a")), make([]byte, 4<<20)...)
	tests := []struct {
		name   string
		tar    []byte
		limits Limits
		ok     bool
	}{
		{"entries within", many, Limits{MaxEntries: 3}, true},
		{"entries past", many, Limits{MaxEntries: 2}, false},
		{"bytes within", big, Limits{MaxBytes: int64(len(big))}, true},
		{"bytes past", big, Limits{MaxBytes: 1 << 19}, false},
		{"bytes past the end marker", trailing, Limits{MaxBytes: 1 << 20}, false},
		// The header says 10 GiB: refused before a byte is spooled (the
		// body need not even be there).
		{"a file past the limit on its header", hugeHeader(t, 10<<30), Limits{MaxBytes: 1 << 30}, false},
		{"no limits", trailing, Limits{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spool := newSpool(t)
			opts := Options{Name: "package bomb", Spool: spool, Limits: tt.limits}
			err := Apply(context.Background(), rootfs.New(), bytes.NewReader(tt.tar), opts)
			if tt.ok != (err == nil) {
				t.Fatalf("Apply: %v", err)
			}
			if err != nil {
				t.Log(err)
				if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "package bomb") {
					t.Errorf("error %q is not a limit naming the package", err)
				}
			}
			checkSpool(t, spool.Dir())
			if tt.name == "a file past the limit on its header" {
				checkOnly(t, spool.Dir())
				return
			}
			// Replay bounds entries and contents alike.
			ms, err := Unpack(context.Background(), bytes.NewReader(tt.tar), Options{Name: "package bomb", Spool: spool})
			if err != nil {
				t.Fatal(err)
			}
			err = Replay(context.Background(), rootfs.New(), ms, opts)
			if tt.name != "bytes past the end marker" && tt.ok != (err == nil) {
				t.Fatalf("Replay: %v", err)
			}
			if err != nil && !errors.Is(err, ErrLimit) {
				t.Errorf("Replay: %q is not a limit", err)
			}
		})
	}
}

// hugeHeader is a tar whose only entry, "huge", claims size bytes and
// holds none.
func hugeHeader(t *testing.T, size int64) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "huge", Mode: 0o644, Size: size}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes() // no body, no end marker: the header must be enough
}

// TestUnpackReplay checks that unpacking then replaying gives the same tree,
// the same added paths and the same errors as applying the stream, and that
// Members survive their encoding byte for byte.
func TestUnpackReplay(t *testing.T) {
	archives := [][][]byte{
		tarfstest.Layers(t),
		{layerTar(t,
			xattr(file("./usr/bin/ping", 0o4755, "ping"), "security.capability", tarfstest.Capability),
			owned(device(tar.TypeBlock, "./dev/sda", 0o660, 8, 0), 0, 6),
			file("./bin/sh", 0o755, "sh"), hardlink("./bin/dash", "./bin/sh"),
			symlink("./lib64/ld.so", "/lib/x86_64-linux-gnu/ld.so"),
			file("./weird/\xff\xfe name", 0o644, "not UTF-8"),
		)},
		{layerTar(t, file("a", 0o644, "a"), file("../evil", 0o644, "x"))},
	}
	for i, layers := range archives {
		spool := newSpool(t)
		direct, replayed := mergedTree(t), mergedTree(t)
		var addedDirect, addedReplay []Added
		for j, l := range layers {
			opts := Options{Name: "archive", Spool: spool, Whiteouts: i == 0, Aliases: mergedUsr, Protected: []string{"/etc/keel"}}
			opts.Added = func(a Added) { addedDirect = append(addedDirect, a) }
			derr := Apply(context.Background(), direct, bytes.NewReader(l), opts)
			ms, err := Unpack(context.Background(), bytes.NewReader(l), opts)
			if err != nil {
				t.Fatal(err)
			}
			enc := EncodeMembers([]byte("head"), ms)
			back, rest, err := DecodeMembers(enc[4:])
			if err != nil || len(rest) != 0 {
				t.Fatalf("decoding: %v (%d bytes left)", err, len(rest))
			}
			if !reflect.DeepEqual(back, ms) {
				t.Fatalf("archive %d layer %d: members changed in encoding:\n%+v\n%+v", i, j, back, ms)
			}
			opts.Added = func(a Added) { addedReplay = append(addedReplay, a) }
			rerr := Replay(context.Background(), replayed, back, opts)
			if (derr == nil) != (rerr == nil) || derr != nil && derr.Error() != rerr.Error() {
				t.Fatalf("archive %d layer %d: Apply: %v, Replay: %v", i, j, derr, rerr)
			}
		}
		a, b := dump(t, direct), dump(t, replayed)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("archive %d: applied:\n%s\nreplayed:\n%s", i, strings.Join(a, "\n"), strings.Join(b, "\n"))
		}
		if !reflect.DeepEqual(addedDirect, addedReplay) {
			t.Errorf("archive %d: added %v, replayed %v", i, addedDirect, addedReplay)
		}
		checkSpool(t, spool.Dir())
	}
}

func TestReplayBadContent(t *testing.T) {
	for _, m := range []Member{
		{Name: "f", Type: tar.TypeReg, Size: 3},
		{Name: "f", Type: tar.TypeReg, Size: 3, Content: "../../etc/shadow"},
		{Name: "f", Type: tar.TypeReg, Size: -1},
		{Name: "f", Type: tar.TypeGNUSparse, Size: 1 << 40},
		{Name: "f", Type: 'Z'},
	} {
		err := Replay(context.Background(), rootfs.New(), []Member{m}, Options{Name: "cache", Spool: newSpool(t)})
		var ee *EntryError
		if !errors.As(err, &ee) {
			t.Errorf("%+v: got %v", m, err)
		}
		t.Log(err)
	}
}

// TestUnpackSparse: a sparse member is refused before anything is spooled.
func TestUnpackSparse(t *testing.T) {
	spool := newSpool(t)
	_, err := Unpack(context.Background(), bytes.NewReader(tarfstest.SparseTar(1<<40)), Options{Name: "package sparse", Spool: spool})
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "package sparse") {
		t.Fatalf("got %v", err)
	}
	checkOnly(t, spool.Dir())
}

func readAll(t *testing.T, e *rootfs.Entry) []byte {
	t.Helper()
	rc, err := e.Content()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// FuzzDecodeMembers: decoding never panics, and what decodes encodes back to
// the same bytes.
func FuzzDecodeMembers(f *testing.F) {
	f.Add(EncodeMembers(nil, []Member{{Name: "./a", Type: tar.TypeReg, Mode: 0o644, Size: 1, Content: strings.Repeat("a", 64), Xattrs: map[string]string{"user.x": "y"}}}))
	f.Add(EncodeMembers(nil, nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, rest, err := DecodeMembers(b)
		if err != nil {
			return
		}
		if got := EncodeMembers(nil, ms); len(ms) > 0 && len(got)+len(rest) > len(b) {
			t.Fatalf("re-encoded %d bytes from %d", len(got), len(b)-len(rest))
		}
	})
}
