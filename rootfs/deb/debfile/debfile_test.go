package debfile

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"keel/rootfs"
	"keel/rootfs/deb/debtest"
	"keel/rootfs/tarfs"
	"keel/rootfs/tarfs/tarfstest"
)

// keelOptions are the options keel's build passes.
var keelOptions = Options{Aliases: MergedUsr(), Protected: []string{"/etc/keel"}}

const capability = tarfstest.Capability

// hello is a package with every kind of member: all maintainer scripts and
// control files, and a data.tar with every entry type, ownership, setuid,
// an xattr, hard links, merged-/usr paths and a device node.
func hello(comp, ctlComp string) debtest.Deb {
	return debtest.Deb{
		Control: [][2]string{
			{"Package", "hello"}, {"Version", "1:2.10-3~bpo1"}, {"Architecture", "amd64"},
			{"Maintainer", "keel tests <keel@example.invalid>"}, {"Depends", "libc6 (>= 2.34), dash | bash"},
			{"Description", "test package\n with a long description\n .\n in paragraphs"},
		},
		Scripts: map[string]string{
			"preinst": "#!/bin/sh\necho pre\n", "postinst": "#!/bin/sh\necho post\n",
			"prerm": "#!/bin/sh\n", "postrm": "#!/bin/sh\n", "config": "#!/bin/sh\n",
			"conffiles": "/etc/hello.conf\nremove-on-upgrade /etc/old.conf\n",
			"triggers":  "interest-noawait /usr/share/hello\n",
			"md5sums":   "5d41402abc4b2a76b9719d911017c592  usr/bin/hello\n",
			"shlibs":    "libhello 1 libhello1\n",
			"templates": "Template: hello/q\nType: boolean\n",
		},
		Files: []debtest.File{
			{Path: "./"},
			{Path: "./bin/"},
			{Path: "./bin/hello", Mode: 0o4755, Body: "#!hello\n"},
			{Path: "./bin/hi", Type: tar.TypeLink, Link: "./bin/hello"},
			{Path: "./etc/"},
			{Path: "./etc/hello.conf", Body: "greeting=hi\n"},
			{Path: "./lib64/"},
			{Path: "./lib64/ld-linux-x86-64.so.2", Type: tar.TypeSymlink, Mode: 0o777, Link: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
			{Path: "./usr/"},
			{Path: "./usr/bin/"},
			{Path: "./usr/bin/ping", Mode: 0o755, Body: "ping", Xattrs: map[string]string{"security.capability": capability}},
			{Path: "./usr/bin/hello-too", Type: tar.TypeLink, Link: "./bin/hello"},
			{Path: "./usr/share/hello/", UID: 1, GID: 2, Mode: 0o2775},
			{Path: "./usr/share/hello/empty"},
			{Path: "./usr/share/hello/.wh.name", Body: "just a name"},
			{Path: "./dev/"},
			{Path: "./dev/hello0", Type: tar.TypeChar, Mode: 0o660, Major: 240, Minor: 1, GID: 5},
			{Path: "./run/hello.fifo", Type: tar.TypeFifo, Mode: 0o600},
		},
		Compression:        comp,
		ControlCompression: ctlComp,
	}
}

// helloTree is Dump of a merged-/usr tree after hello.
var helloTree = []string{
	`/ dir 0755 0:0`,
	`/bin sym 0777 0:0 -> usr/bin t=0`,
	`/dev dir 0755 0:0`,
	`/dev/hello0 chr 0660 0:5 240:1`,
	`/etc dir 0755 0:0`,
	`/etc/hello.conf file 0644 0:0 "greeting=hi\n"`,
	`/lib sym 0777 0:0 -> usr/lib t=0`,
	`/lib64 sym 0777 0:0 -> usr/lib64 t=0`,
	`/run dir 0755 0:0 t=0`,
	`/run/hello.fifo fifo 0600 0:0`,
	`/sbin sym 0777 0:0 -> usr/sbin t=0`,
	`/usr dir 0755 0:0`,
	`/usr/bin dir 0755 0:0`,
	`/usr/bin/hello file 4755 0:0 "#!hello\n"`,
	`/usr/bin/hello-too file 4755 0:0 link=/usr/bin/hello "#!hello\n"`,
	`/usr/bin/hi file 4755 0:0 link=/usr/bin/hello "#!hello\n"`,
	`/usr/bin/ping file 0755 0:0 "ping" x:security.capability="\x01\x00\x00\x02\x00 \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"`,
	`/usr/lib dir 0755 0:0 t=0`,
	`/usr/lib64 dir 0755 0:0 t=0`,
	`/usr/lib64/ld-linux-x86-64.so.2 sym 0777 0:0 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2`,
	`/usr/sbin dir 0755 0:0 t=0`,
	`/usr/share dir 0755 0:0 t=0`,
	`/usr/share/hello dir 2775 1:2`,
	`/usr/share/hello/.wh.name file 0644 0:0 "just a name"`,
	`/usr/share/hello/empty file 0644 0:0 ""`,
}

// helloNames is what Apply returns for hello: the package's own names.
var helloNames = []string{
	"/", "/bin", "/bin/hello", "/bin/hi", "/etc", "/etc/hello.conf", "/lib64",
	"/lib64/ld-linux-x86-64.so.2", "/usr", "/usr/bin", "/usr/bin/ping", "/usr/bin/hello-too",
	"/usr/share/hello", "/usr/share/hello/empty", "/usr/share/hello/.wh.name", "/dev",
	"/dev/hello0", "/run/hello.fifo",
}

func names(added []tarfs.Added) []string {
	var out []string
	for _, a := range added {
		out = append(out, a.Name)
	}
	return out
}

// mergedTree is an empty merged-/usr tree.
func mergedTree(t testing.TB) *rootfs.Tree {
	t.Helper()
	tree := rootfs.New()
	if err := MergeUsr(tree); err != nil {
		t.Fatal(err)
	}
	return tree
}

func writeDeb(t testing.TB, d debtest.Deb) string {
	t.Helper()
	b, err := debtest.Build(d)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), d.Field("Package")+".deb")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func newSpool(t testing.TB) *tarfs.Spool {
	t.Helper()
	s, err := tarfs.NewSpool(filepath.Join(t.TempDir(), "spool"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOpen reads hello in every compression of data.tar and control.tar.
func TestOpen(t *testing.T) {
	for _, comp := range []string{"xz", "gz", "zst", "none"} {
		for _, ctlComp := range []string{"xz", "gz", "zst", "none"} {
			t.Run(comp+"/"+ctlComp, func(t *testing.T) {
				d := hello(comp, ctlComp)
				f, err := Open(writeDeb(t, d))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				checkHelloControl(t, f.Control, d)
				wantData := "data.tar"
				if comp != "none" {
					wantData += "." + comp
				}
				if f.DataName != wantData {
					t.Errorf("DataName %q, want %q", f.DataName, wantData)
				}
				tree := mergedTree(t)
				spool := newSpool(t)
				added, err := f.Apply(context.Background(), tree, spool, keelOptions)
				if err != nil {
					t.Fatal(err)
				}
				tarfstest.CheckTree(t, tree, helloTree)
				if got := names(added); !reflect.DeepEqual(got, helloNames) {
					t.Errorf("added %q\nwant %q", got, helloNames)
				}
				tarfstest.CheckSpool(t, spool.Dir())
			})
		}
	}
}

func checkHelloControl(t *testing.T, c *Control, d debtest.Deb) {
	t.Helper()
	p := c.Package
	if p.Name != "hello" || p.Version.String() != "1:2.10-3~bpo1" || p.Architecture != "amd64" || p.Depends.String() != "libc6 (>= 2.34), dash | bash" {
		t.Errorf("package %+v", p)
	}
	if string(c.Text) != d.ControlText() {
		t.Errorf("control text %q", c.Text)
	}
	if got := strings.Join(c.Paragraph.Order, ","); got != "Package,Version,Architecture,Maintainer,Depends,Description" {
		t.Errorf("field order %s", got)
	}
	for name, got := range map[string][]byte{
		"preinst": c.Preinst, "postinst": c.Postinst, "prerm": c.Prerm, "postrm": c.Postrm, "config": c.Config,
		"conffiles": c.Conffiles, "triggers": c.Triggers, "md5sums": c.MD5Sums, "shlibs": c.Shlibs,
		"templates": c.Other["templates"],
	} {
		if string(got) != d.Scripts[name] {
			t.Errorf("%s: %q, want %q", name, got, d.Scripts[name])
		}
	}
	if len(c.Other) != 1 {
		t.Errorf("other members %v", c.Other)
	}
	if got := c.ConffilePaths(); !reflect.DeepEqual(got, []string{"/etc/hello.conf", "/etc/old.conf"}) {
		t.Errorf("conffiles %q", got)
	}
}

// TestOpenMinimal: a package with no scripts and an empty data.tar.
func TestOpenMinimal(t *testing.T) {
	b := debtest.MustBuild(debtest.Deb{Control: [][2]string{{"Package", "empty"}, {"Version", "1"}}})
	f, err := New(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	c := f.Control
	if c.Preinst != nil || c.Postinst != nil || c.Conffiles != nil || c.MD5Sums != nil || c.Other != nil {
		t.Errorf("members of nothing: %+v", c)
	}
	added, err := f.Apply(context.Background(), rootfs.New(), newSpool(t), Options{})
	if err != nil || len(added) != 0 {
		t.Fatalf("added %v, %v", added, err)
	}
}

// TestApplyRefused covers packages whose data.tar breaks the rules: each is
// refused naming the package and the entry, from the .deb and from the
// cache alike.
func TestApplyRefused(t *testing.T) {
	tests := []struct {
		name  string
		files []debtest.File
		data  []byte // data.tar, when not made from files
		entry string
		is    error
		says  string // the whole message, when set
	}{
		{name: "keel's own directory", files: []debtest.File{{Path: "./etc/keel/keys/x.pub", Body: "planted"}},
			entry: "./etc/keel/keys/x.pub", is: tarfs.ErrProtected,
			says: `package evil: entry "./etc/keel/keys/x.pub": /etc/keel is keel's own: no package may write there`},
		{name: "keel's own directory, as a symlink parent", files: []debtest.File{{Path: "./etc", Type: tar.TypeSymlink, Link: "/tmp"}},
			entry: "./etc", is: tarfs.ErrProtected},
		{name: "dotdot", files: []debtest.File{{Path: "./../evil", Body: "x"}}, entry: "./../evil", is: tarfs.ErrUnsafe},
		{name: "dotdot inside", files: []debtest.File{{Path: "./usr/../../evil", Body: "x"}}, entry: "./usr/../../evil", is: tarfs.ErrUnsafe},
		{name: "absolute", files: []debtest.File{{Path: "/etc/evil", Body: "x"}}, entry: "/etc/evil", is: tarfs.ErrUnsafe},
		{name: "symlinked parent", files: []debtest.File{{Path: "./opt", Type: tar.TypeSymlink, Link: "/etc"}, {Path: "./opt/passwd", Body: "x"}},
			entry: "./opt/passwd", is: tarfs.ErrUnsafe},
		{name: "symlinked parent under an alias", files: []debtest.File{{Path: "./lib/x", Type: tar.TypeSymlink, Link: "/"}, {Path: "./lib/x/evil", Body: "x"}},
			entry: "./lib/x/evil", is: tarfs.ErrUnsafe},
		{name: "alias replaced", files: []debtest.File{{Path: "./bin", Type: tar.TypeSymlink, Link: "/tmp"}}, entry: "./bin", is: tarfs.ErrUnsafe},
		{name: "hard link out of the tree", files: []debtest.File{{Path: "./x", Type: tar.TypeLink, Link: "../../etc/shadow"}}, entry: "./x", is: tarfs.ErrUnsafe},
		{name: "hard link absolute", files: []debtest.File{{Path: "./x", Type: tar.TypeLink, Link: "/etc/shadow"}}, entry: "./x", is: tarfs.ErrUnsafe},
		{name: "hard link to nothing", files: []debtest.File{{Path: "./x", Type: tar.TypeLink, Link: "./etc/shadow"}}, entry: "./x", is: rootfs.ErrNotExist},
		{name: "sparse member", data: tarfstest.SparseTar(1 << 40), entry: "f", is: tarfs.ErrUnsafe},
		{name: "newline in a name", files: []debtest.File{{Path: "./usr/bin/a\nb", Body: "x"}}, entry: "./usr/bin/a\nb"},
		{name: "newline in a directory name", files: []debtest.File{{Path: "./usr/a\n/"}}, entry: "./usr/a\n/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// gzip: compressions are TestOpen's; ulikunitz's xz writer is slow.
			d := debtest.Deb{Control: [][2]string{{"Package", "evil"}, {"Version", "1"}}, Files: tt.files, DataTar: tt.data,
				Compression: "gz", ControlCompression: "gz"}
			p := writeDeb(t, d)
			f, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			_, direct := f.Apply(context.Background(), mergedTree(t), newSpool(t), keelOptions)
			check := func(how string, err error) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s: applied", how)
				}
				var ee *tarfs.EntryError
				if !errors.As(err, &ee) || ee.Source != "package evil" || ee.Entry != tt.entry {
					t.Fatalf("%s: error %q does not name entry %q of package evil", how, err, tt.entry)
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("%s: error %q is not %v", how, err, tt.is)
				}
				if tt.says != "" && err.Error() != tt.says {
					t.Errorf("%s: error %q, want %q", how, err, tt.says)
				}
			}
			check("from the .deb", direct)
			t.Log(direct)
			c, err := NewCache(t.TempDir(), CacheOptions{})
			if err != nil {
				t.Fatal(err)
			}
			u, err := c.Get(context.Background(), p, tarfstest.SHA256(mustRead(t, p)))
			if tt.data != nil {
				// Unpacking reads the members, and refuses a sparse one.
				check("unpacking", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, cached := u.Apply(context.Background(), mergedTree(t), keelOptions)
			check("from the cache", cached)
			if direct.Error() != cached.Error() {
				t.Errorf("from the .deb %q, from the cache %q", direct, cached)
			}
		})
	}
}

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMergeUsr(t *testing.T) {
	tree := rootfs.New()
	if err := MergeUsr(tree); err != nil {
		t.Fatal(err)
	}
	if err := MergeUsr(tree); err != nil {
		t.Fatalf("twice: %v", err)
	}
	unmerged := rootfs.New()
	if err := unmerged.MkdirAll("/bin", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := MergeUsr(unmerged); err == nil || !strings.Contains(err.Error(), "/bin is a directory") {
		t.Fatalf("unmerged tree: %v", err)
	}
}
