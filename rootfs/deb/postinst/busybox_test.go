package postinst

import (
	"archive/tar"
	"bytes"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"keel/rootfs"
)

// fakeBusybox lays out applet tables as busybox's build does, between
// filler bytes.
func fakeBusybox(names []string, locs []byte, seed int64) []byte {
	r := rand.New(rand.NewSource(seed))
	filler := func(n int) []byte {
		b := make([]byte, n)
		r.Read(b)
		return b
	}
	var table []byte
	for i := 0; i < len(locs); i += 2 {
		v := locs[i]
		if i+1 < len(locs) {
			v |= locs[i+1] << 4
		}
		table = append(table, v)
	}
	var b bytes.Buffer
	b.Write(filler(4096))
	b.Write(table)
	b.Write(filler(64))
	b.WriteString(strings.Join(names, "\x00") + "\x00\x00")
	b.Write(filler(4096))
	return b.Bytes()
}

func TestBusyboxApplets(t *testing.T) {
	names := []string{"[", "[[", "ash", "awk", "cat", "chroot", "ls", "reboot", "sh", "udhcpc"}
	locs := []byte{3, 3, 1, 3, 1, 4, 1, 2, 1, 2}
	for seed := int64(1); seed <= 5; seed++ {
		got, located, err := busyboxApplets(fakeBusybox(names, locs, seed))
		if err != nil {
			t.Fatal(err)
		}
		if !located {
			t.Fatalf("seed %d: locations not found", seed)
		}
		for i, a := range got {
			if a.name != names[i] || a.dir != appletDirs[locs[i]] {
				t.Errorf("seed %d: applet %d = %+v, want %s in %s", seed, i, a, names[i], appletDirs[locs[i]])
			}
		}
	}
	// No anchors: every applet in /usr/bin.
	got, located, err := busyboxApplets(fakeBusybox([]string{"[", "[[", "cat", "ls"}, []byte{3, 3, 1, 1}, 1))
	if err != nil || located || got[2].dir != "/usr/bin" {
		t.Errorf("without anchors: %+v %v %v", got, located, err)
	}
	if _, _, err := busyboxApplets([]byte("no applets here")); err == nil {
		t.Error("a binary without applets was accepted")
	}
	// Names out of order end the list.
	if names := readNames([]byte("[\x00[[\x00b\x00a\x00")); !reflect.DeepEqual(names, []string{"[", "[[", "b"}) {
		t.Errorf("readNames %q", names)
	}
}

func TestBusyboxLinks(t *testing.T) {
	tr := mergedUsrTree(t)
	names := []string{"[", "[[", "ash", "awk", "cat", "chroot", "linuxrc", "ls", "reboot", "sh"}
	locs := []byte{3, 3, 1, 3, 1, 4, 0, 1, 2, 1}
	addFile(t, tr, "/bin/busybox", 0o755, string(fakeBusybox(names, locs, 7)))
	addFile(t, tr, "/usr/bin/cat", 0o755, "coreutils' cat")
	p := pkg("busybox-static", "")
	p.Files = []string{"./", "./bin/", "./bin/busybox"}
	configure(t, tr, p)
	for link, want := range map[string]string{
		"/usr/bin/ash": "/usr/bin/busybox", "/usr/bin/awk": "/usr/bin/busybox", "/usr/sbin/chroot": "/usr/bin/busybox",
		"/usr/sbin/reboot": "/usr/bin/busybox", "/usr/bin/[": "/usr/bin/busybox", "/usr/bin/sh": "/usr/bin/busybox",
	} {
		if e, ok := tr.Get(link); !ok || e.Type != rootfs.TypeSymlink || e.Target != want {
			t.Errorf("%s: %+v", link, e)
		}
	}
	if e, _ := tr.Get("/usr/bin/cat"); e.Type != rootfs.TypeFile {
		t.Error("an existing file was replaced by an applet link")
	}
	if _, ok := tr.Get("/linuxrc"); ok {
		t.Error("an applet was linked at the root")
	}
}

// TestBusyboxRealBinary reads a real busybox and compares what keel
// finds with `busybox --list-full`. The binary comes from
// KEEL_TEST_BUSYBOX (a busybox binary or a busybox .deb), or from a
// busybox-static .deb in apt's cache or /tmp (`apt-get download
// busybox-static`).
func TestBusyboxRealBinary(t *testing.T) {
	bin := realBusybox(t)
	applets, located, err := busyboxApplets(bin)
	if err != nil {
		t.Fatal(err)
	}
	if !located {
		t.Fatal("applet_install_loc not found")
	}
	var ours []string
	for _, a := range applets {
		ours = append(ours, strings.TrimPrefix(path.Join(a.dir, a.name), "/"))
	}
	exe := filepath.Join(t.TempDir(), "busybox")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(exe, "--list-full").Output()
	if err != nil {
		t.Skipf("cannot run this busybox here (another architecture?): %v; its %d applets parsed", err, len(applets))
	}
	theirs := strings.Fields(string(out))
	sort.Strings(ours)
	sort.Strings(theirs)
	if !reflect.DeepEqual(ours, theirs) {
		t.Errorf("keel finds %d applets, busybox lists %d:\nkeel    %v\nbusybox %v", len(ours), len(theirs), ours, theirs)
	}
}

func realBusybox(t *testing.T) []byte {
	t.Helper()
	src := os.Getenv("KEEL_TEST_BUSYBOX")
	if src == "" {
		var found []string
		for _, pat := range []string{"/var/cache/apt/archives/busybox-static_*.deb", "/tmp/busybox-static_*.deb", "/tmp/*/busybox-static_*.deb"} {
			m, _ := filepath.Glob(pat)
			found = append(found, m...)
		}
		if len(found) == 0 {
			t.Skip("no busybox: set KEEL_TEST_BUSYBOX=/path/to/busybox (or a .deb), or `apt-get download busybox-static` into /tmp")
		}
		src = found[0]
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(src, ".deb") {
		return b
	}
	d, err := parseDeb(b)
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	r := tar.NewReader(bytes.NewReader(d.data))
	for {
		h, err := r.Next()
		if err == io.EOF {
			t.Fatalf("%s has no busybox binary", src)
		}
		if err != nil {
			t.Fatal(err)
		}
		if path.Base(h.Name) == "busybox" && h.Typeflag == tar.TypeReg && strings.Contains(h.Name, "bin/") {
			body, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			return body
		}
	}
}
