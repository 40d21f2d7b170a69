package debtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDpkgDebReads checks the fixtures against the real reader.
func TestDpkgDebReads(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not installed")
	}
	for i, comp := range []string{"xz", "gz", "zst", "none"} {
		t.Run(comp, func(t *testing.T) {
			b := MustBuild(Deb{
				// control.tar in each compression too, in another order.
				ControlCompression: []string{"gz", "zst", "none", "xz"}[i],
				Control:            [][2]string{{"Package", "hello"}, {"Version", "1:1.0-1"}, {"Maintainer", "keel tests"}, {"Description", "test"}},
				Files:              []File{{Path: "./"}, {Path: "./usr/"}, {Path: "./usr/bin/"}, {Path: "./usr/bin/hello", Mode: 0o755, Body: "#!/bin/sh\necho hi\n"}, {Path: "./usr/bin/hi", Type: '2', Link: "hello"}},
				Scripts:            map[string]string{"postinst": "#!/bin/sh\nexit 0\n"},
				Compression:        comp,
			})
			p := filepath.Join(t.TempDir(), "hello.deb")
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("dpkg-deb", "--info", p).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Package: hello") || !strings.Contains(string(out), "postinst") {
				t.Fatalf("dpkg-deb --info: %v\n%s", err, out)
			}
			out, err = exec.Command("dpkg-deb", "--contents", p).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "./usr/bin/hi -> hello") {
				t.Fatalf("dpkg-deb --contents: %v\n%s", err, out)
			}
		})
	}
}
