package resolve

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keel/rootfs/deb"
)

// realIndex loads the build host's apt lists for amd64 (every suite
// apt knows, merged), or skips the test.
func realIndex(t testing.TB) []*deb.Package {
	t.Helper()
	if testing.Short() {
		t.Skip("reads the host's whole apt lists: not in -short")
	}
	files, _ := filepath.Glob("/var/lib/apt/lists/*_binary-amd64_Packages*")
	if len(files) == 0 {
		t.Skip("no apt lists for amd64 in /var/lib/apt/lists")
	}
	var idx []*deb.Package
	for _, f := range files {
		var r io.Reader
		switch {
		case strings.HasSuffix(f, "_Packages"):
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			r = bytes.NewReader(b)
		case strings.HasSuffix(f, "_Packages.lz4"):
			if _, err := exec.LookPath("lz4cat"); err != nil {
				t.Skipf("%s is lz4-compressed and lz4cat is not installed", f)
			}
			out, err := exec.Command("lz4cat", f).Output()
			if err != nil {
				t.Fatalf("lz4cat %s: %v", f, err)
			}
			r = bytes.NewReader(out)
		default:
			t.Logf("%s: compression not handled here, skipped", f)
			continue
		}
		// ".../example.org_debian_dists_bookworm-updates_main_binary-amd64_Packages"
		origin := filepath.Base(f)
		if _, after, ok := strings.Cut(origin, "_dists_"); ok {
			origin, _, _ = strings.Cut(after, "_")
		}
		pkgs, err := deb.ParseIndex(r, origin)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		idx = append(idx, pkgs...)
	}
	if len(idx) == 0 {
		t.Skip("no readable apt lists for amd64")
	}
	return idx
}

// TestRealIndex resolves a systemd server from the host's real index
// and checks the result.
func TestRealIndex(t *testing.T) {
	idx := realIndex(t)
	for _, tc := range []struct {
		base string
		reqs []string
	}{
		{"required", []string{"systemd", "openssh-server", "systemd-resolved", "udev", "dbus"}},
		{"important", []string{"systemd", "openssh-server", "nginx", "linux-image-amd64", "systemd-boot-efi"}},
		{"", []string{"busybox-static"}},
	} {
		reqs := requests(tc.reqs...)
		o := Options{Arch: "amd64", Base: tc.base, Origin: "apt lists"}
		start := time.Now()
		res, err := Resolve(idx, reqs, o)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("base %q %v: %v", tc.base, tc.reqs, err)
		}
		if err := check(idx, reqs, o, res); err != nil {
			t.Fatalf("base %q %v: %v", tc.base, tc.reqs, err)
		}
		t.Logf("base %q %v: %d packages of %d in %v", tc.base, tc.reqs, len(res.Packages), len(idx), took)
		if tc.base == "" && len(res.Packages) != 1 {
			t.Errorf("busybox-static alone resolved to %d packages", len(res.Packages))
		}
	}
}
