package postinst

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// TestRealDebs configures the Debian packages in the directory
// KEEL_TEST_DEBS names (for example the files of `apt-get download
// systemd openssh-server dbus ...` with the Priority: required set) and
// checks the outcome. It is skipped when the variable is not set: the
// hermetic TestDebianScripts covers the same scripts from testdata.
func TestRealDebs(t *testing.T) {
	dir := os.Getenv("KEEL_TEST_DEBS")
	if dir == "" {
		t.Skip("KEEL_TEST_DEBS (a directory of Debian 12 .deb files) not set")
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.deb"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no .deb files in %s", dir)
	}
	var debs []*testDeb
	for _, f := range files {
		debs = append(debs, loadDebFile(t, f))
	}
	// base-passwd is pre-depended on by everything that makes accounts.
	sort.SliceStable(debs, func(i, j int) bool {
		if (debs[i].pkg.Name == "base-passwd") != (debs[j].pkg.Name == "base-passwd") {
			return debs[i].pkg.Name == "base-passwd"
		}
		return debs[i].pkg.Name < debs[j].pkg.Name
	})
	tr := mergedUsrTree(t)
	pkgs := installDebs(t, tr, debs)
	start := time.Now()
	rep, err := Configure(context.Background(), tr, pkgs, Options{Epoch: 1700000000, Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d packages configured in %v", len(pkgs), time.Since(start))
	for _, l := range rep.Users {
		t.Logf("user: %s", l)
	}
	for _, l := range rep.Groups {
		t.Logf("group: %s", l)
	}
	for _, l := range rep.Units {
		t.Logf("unit: %s", l)
	}
	for _, l := range rep.Alternatives {
		t.Logf("alternative: %s", l)
	}
	for _, l := range rep.Applied {
		t.Logf("applied: %s", l)
	}
	for _, l := range rep.Warnings {
		t.Logf("warning: %s", l)
	}
	checkServer(t, tr, rep)
}
