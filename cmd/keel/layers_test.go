package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestLayerLimits builds from an OCI layout whose one layer holds 100
// files: --layer-max-entries and --layer-max-size below that refuse it
// with an error naming the source and the limit (exit 1, no output), the
// defaults accept it, and no build leaves its spool in the cache.
func TestLayerLimits(t *testing.T) {
	dir, write := buildDir(t)
	cache := filepath.Join(dir, "cache")
	t.Setenv("KEEL_CACHE", cache)
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	body := bytes.Repeat([]byte("x"), 4096)
	for i := range 100 {
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("srv/f%03d", i), Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	tw.Close()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layer.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	lp, err := layout.Write(filepath.Join(dir, "img"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	p := write("p.yaml", []byte("name: t\nversion: \"1\"\nkernel: {file: vmlinuz}\nsources:\n  - image: oci:"+filepath.Join(dir, "img")+"\n"))
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"entries", []string{"--layer-max-entries", "50"}, exitFailure, "entries"},
		{"bytes", []string{"--layer-max-size", "100KiB"}, exitFailure, "expands past 102400 bytes"},
		{"bad size", []string{"--layer-max-size", "lots"}, exitUsage, "--layer-max-size"},
		{"defaults", nil, exitOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, "out", tt.name+".img")
			var stderr bytes.Buffer
			code := run(context.Background(), append([]string{"build", p, "-o", out}, tt.args...), io.Discard, &stderr)
			msg := stderr.String()
			if code != tt.code || !strings.Contains(msg, tt.want) {
				t.Fatalf("exit %d, want %d with %q:\n%s", code, tt.code, tt.want, msg)
			}
			t.Log(strings.TrimSpace(msg))
			if code == exitFailure {
				if !strings.Contains(msg, "p.yaml:5:") || !strings.Contains(msg, "sources[0]") {
					t.Errorf("the error does not name the source:\n%s", msg)
				}
			}
			if _, err := os.Stat(out); code != exitOK && err == nil {
				t.Errorf("a failed build left %s", out)
			}
			spools, _ := filepath.Glob(filepath.Join(cache, "oci", "spool-*"))
			if len(spools) != 0 {
				t.Errorf("spools left in the cache: %v", spools)
			}
		})
	}
}
