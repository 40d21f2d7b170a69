package assemble

import (
	"context"
	"io"
	"strings"
	"testing"

	"keel/profiles"
	"keel/rootfs"
	"keel/rootfs/factory"
)

func load(t *testing.T) *rootfs.Tree {
	t.Helper()
	p, err := profiles.Load("testdata/profile.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tree, err := Tree(context.Background(), p, Options{KeelInit: []byte("\x7fELF fake"), Epoch: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func read(t *testing.T, tree *rootfs.Tree, p string) string {
	t.Helper()
	e, ok := tree.Get(p)
	if !ok {
		t.Fatalf("%s missing", p)
	}
	r, err := e.Content()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestGeneratedFiles(t *testing.T) {
	tree := load(t)
	tests := []struct {
		path     string
		mode     uint32
		uid, gid uint32
		want     []string // substrings, in order
	}{
		{"/etc/passwd", 0o644, 0, 0, []string{"root:x:0:0:root:/root:/bin/sh\n", "alice:x:1000:1000:alice:/home/alice:/bin/sh\n"}},
		{"/etc/group", 0o644, 0, 0, []string{"root:x:0:\n", "wheel:x:10:alice\n", "shadow:x:42:\n", "alice:x:1000:\n"}},
		{"/etc/shadow", 0o640, 0, 42, []string{"root:!:", "alice:$6$salt$hash:"}},
		{"/etc/hostname", 0o644, 0, 0, []string{"box\n"}},
		{"/etc/machine-id", 0o444, 0, 0, nil},
		{"/etc/os-release", 0o644, 0, 0, []string{"NAME=\"asm\"", "IMAGE_ID=asm\n", "IMAGE_VERSION=\"2.1.0\"\n"}},
		{"/etc/motd", 0o600, 1000, 0, []string{"hello\n"}},
		{"/home/alice/.ssh/authorized_keys", 0o600, 1000, 1000, []string{"ssh-ed25519 AAAA alice@laptop\n"}},
		{"/etc/keel/services/web.json", 0o644, 0, 0, []string{`"name": "web"`, `"restart": "on-failure"`}},
		{InitPath, 0o755, 0, 0, []string{"\x7fELF fake"}},
		{"/bin/hello", 0o755, 0, 0, []string{"#!/bin/sh"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			e, _ := tree.Get(tt.path)
			got := read(t, tree, tt.path)
			if e.Mode != tt.mode || (tt.path != "/bin/hello" && (e.UID != tt.uid || e.GID != tt.gid)) {
				t.Errorf("mode %#o uid %d gid %d, want %#o %d %d", e.Mode, e.UID, e.GID, tt.mode, tt.uid, tt.gid)
			}
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("%q not found (in order) in:\n%s", w, got)
				}
				rest = rest[i+len(w):]
			}
			if e.Mtime > 1000 {
				t.Errorf("mtime %d later than the epoch", e.Mtime)
			}
		})
	}
	for _, d := range []string{"/proc", "/sys", "/dev", "/run", "/tmp", "/var"} {
		if e, ok := tree.Get(d); !ok || e.Type != rootfs.TypeDir {
			t.Errorf("mount point %s missing", d)
		}
	}
	if e, _ := tree.Get("/etc/machine-id"); e.Size != 0 {
		t.Errorf("/etc/machine-id holds %d bytes: an id in the image would be every disk's", e.Size)
	}
	if HasInit(tree) {
		t.Error("HasInit true for a tree without systemd")
	}
}

func TestAccountsMergeWithBase(t *testing.T) {
	tree := rootfs.New()
	if err := tree.MkdirAll("/etc", 0o755); err != nil {
		t.Fatal(err)
	}
	base := map[string]string{
		"/etc/passwd": "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nalice:x:5:5::/old:/bin/false\n",
		"/etc/group":  "root:x:0:\ndaemon:x:1:\nwheel:x:10:bob\n",
		"/etc/shadow": "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
	}
	for p, c := range base {
		if err := tree.Add(p, rootfs.NewFile(0o644, []byte(c))); err != nil {
			t.Fatal(err)
		}
	}
	p := &profiles.Profile{
		Users:  []profiles.User{{Name: "alice", UID: 1000, GID: 1000, Home: "/home/alice", Shell: "/bin/sh", Password: "!", Groups: []string{"wheel"}}},
		Groups: []profiles.Group{{Name: "wheel", GID: 10}},
	}
	acc, err := accounts(tree, p)
	if err != nil {
		t.Fatal(err)
	}
	wantPasswd := "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nalice:x:1000:1000:alice:/home/alice:/bin/sh\n"
	if string(acc.passwd) != wantPasswd {
		t.Errorf("passwd:\n%s\nwant:\n%s", acc.passwd, wantPasswd)
	}
	wantGroup := "root:x:0:\ndaemon:x:1:\nwheel:x:10:bob,alice\nalice:x:1000:\n"
	if string(acc.group) != wantGroup {
		t.Errorf("group:\n%s\nwant:\n%s", acc.group, wantGroup)
	}
	if acc.shadowMode != 0 {
		t.Errorf("shadow mode %#o without a shadow group, want 0", acc.shadowMode)
	}
	if !strings.Contains(string(acc.shadow), "root:*:19000") || !strings.Contains(string(acc.shadow), "alice:!:") {
		t.Errorf("shadow:\n%s", acc.shadow)
	}
}

func TestImageSourceNeedsBackend(t *testing.T) {
	p := &profiles.Profile{Sources: []profiles.Source{{Image: "oci:/nowhere:1"}}}
	_, err := Tree(context.Background(), p, Options{KeelInit: []byte("x")})
	if err == nil || !strings.Contains(err.Error(), "oci:/nowhere:1") {
		t.Fatalf("err = %v", err)
	}
}

// TestVarGoesToTheFactoryCopy: what a profile puts under /var (a user's
// home, a file) ends up in the factory copy, and /var is left an empty
// mount point for the data partition.
func TestVarGoesToTheFactoryCopy(t *testing.T) {
	p := &profiles.Profile{
		Name: "v", Version: "1", Hostname: "v",
		Sources: []profiles.Source{
			{File: "/var/lib/app/config", Content: "factory config\n", Mode: 0o640, GID: 50},
			{File: "/etc/machine-id", Content: "0123456789abcdef0123456789abcdef\n", Mode: 0o444},
		},
		Users: []profiles.User{{Name: "keel", UID: 1000, GID: 1000, Home: "/var/home/keel", Shell: "/bin/sh", Password: "!",
			SSHAuthorizedKeys: []string{"ssh-ed25519 AAAA keel"}}},
	}
	tree, err := Tree(context.Background(), p, Options{KeelInit: []byte("x"), Epoch: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := tree.Get("/var"); !ok || e.Type != rootfs.TypeDir || len(tree.Children("/var")) != 0 {
		t.Errorf("/var: %+v with %v, want an empty directory", e, tree.Children("/var"))
	}
	for _, tt := range []struct {
		path     string
		mode     uint32
		uid, gid uint32
		content  string
	}{
		{"/home/keel", 0o700, 1000, 1000, ""},
		{"/home/keel/.ssh", 0o700, 1000, 1000, ""},
		{"/home/keel/.ssh/authorized_keys", 0o600, 1000, 1000, "ssh-ed25519 AAAA keel\n"},
		{"/lib/app/config", 0o640, 0, 50, "factory config\n"},
	} {
		p := factory.Dir + tt.path
		e, ok := tree.Get(p)
		if !ok {
			t.Errorf("%s missing", p)
			continue
		}
		if e.Mode != tt.mode || e.UID != tt.uid || e.GID != tt.gid {
			t.Errorf("%s: mode %#o owner %d:%d, want %#o %d:%d", p, e.Mode, e.UID, e.GID, tt.mode, tt.uid, tt.gid)
		}
		if e.Type == rootfs.TypeFile {
			if got := read(t, tree, p); got != tt.content {
				t.Errorf("%s: %q, want %q", p, got, tt.content)
			}
		}
	}
	if !strings.Contains(read(t, tree, "/etc/passwd"), "keel:x:1000:1000:keel:/var/home/keel:/bin/sh\n") {
		t.Errorf("passwd does not name the home under /var (where it is at runtime):\n%s", read(t, tree, "/etc/passwd"))
	}
	if e, _ := tree.Get("/etc/machine-id"); e.Size != 0 {
		t.Errorf("a source's machine id is kept in the image: %d bytes", e.Size)
	}
}

// TestAccountsRefuseBadIDs: an id that is not a number, read as 0, would
// make the account root; it is an error naming the file and the line.
func TestAccountsRefuseBadIDs(t *testing.T) {
	for _, tc := range []struct {
		name, file, content, want string
	}{
		{"uid", "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nevil:x:abc:0::/:/bin/sh\n", `/etc/passwd:2: uid of evil is "abc"`},
		{"gid in passwd", "/etc/passwd", "evil:x:1000:zero::/:/bin/sh\n", `/etc/passwd:1: gid of evil is "zero"`},
		{"empty uid", "/etc/passwd", "# comment\nevil:x::0::/:/bin/sh\n", `/etc/passwd:2: uid of evil is ""`},
		{"negative uid", "/etc/passwd", "evil:x:-1:0::/:/bin/sh\n", `/etc/passwd:1: uid of evil is "-1"`},
		{"uid beyond 32 bits", "/etc/passwd", "evil:x:4294967296:0::/:/bin/sh\n", `/etc/passwd:1: uid of evil is "4294967296"`},
		{"no uid field", "/etc/passwd", "evil:x\n", `/etc/passwd:1: evil has no uid field`},
		{"gid in group", "/etc/group", "root:x:0:\nstaff:x:5O:\n", `/etc/group:2: gid of staff is "5O"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := rootfs.New()
			if err := tree.MkdirAll("/etc", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := tree.Add(tc.file, rootfs.NewFile(0o644, []byte(tc.content))); err != nil {
				t.Fatal(err)
			}
			_, err := accounts(tree, &profiles.Profile{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
