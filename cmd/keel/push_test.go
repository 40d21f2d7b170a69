package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"keel/image/bundle"
	"keel/image/registry"
	"keel/image/registry/registrytest"
)

// TestPush pushes a bundle to the real registry with keel push, taking
// the credentials from $REGISTRY_AUTH_FILE as podman users have them, and
// checks the exit codes of the ways a push fails.
func TestPush(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	dir := t.TempDir()
	// Only the auth file the test names: no docker or podman file of the
	// machine's user.
	t.Setenv("HOME", dir)
	t.Setenv("DOCKER_CONFIG", "")
	t.Setenv("XDG_RUNTIME_DIR", dir)
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv("REGISTRY_AUTH_FILE", reg.AuthFile)

	_, priv, _ := bundle.GenerateKey(rand.Reader)
	var srcs []bundle.Source
	for i, n := range []int{64 << 10, 4 << 10, 4 << 10} {
		b := make([]byte, n)
		rand.Read(b)
		srcs = append(srcs, bundle.SectionSource(bundle.InstallOrder[i], bytes.NewReader(b), 0, int64(n)))
	}
	good := filepath.Join(dir, "t-2.0.0.keel")
	if err := bundle.WriteFile(context.Background(), good, bundle.Manifest{Name: "t", Version: "2.0.0", Compatible: "c", Arch: "amd64"}, priv, srcs); err != nil {
		t.Fatal(err)
	}
	file, _ := os.ReadFile(good)
	mlen := binary.BigEndian.Uint32(file[12:])
	unsigned := filepath.Join(dir, "unsigned.keel")
	os.WriteFile(unsigned, slices.Concat(file[:16], []byte{0, 0, 0, 0}, file[20:20+mlen], file[20+mlen+72:]), 0o644)
	wrong := filepath.Join(dir, "wrong.json")
	os.WriteFile(wrong, registrytest.AuthJSON(reg.Host, reg.User, "wrong"), 0o600)

	ref := reg.Host + "/fleet/t:2.0.0"
	tests := []struct {
		args []string
		env  string // REGISTRY_AUTH_FILE for this run, if not reg.AuthFile
		code int
		out  string
	}{
		{[]string{"push", good, ref, "--ca", reg.CAFile, "--channel", "stable"}, "", exitOK, "tagged " + reg.Host + "/fleet/t:stable"},
		{[]string{"push", good}, "", exitUsage, "accepts 2 arg(s)"},
		{[]string{"push", filepath.Join(dir, "none.keel"), ref, "--ca", reg.CAFile}, "", exitUsage, "none.keel"},
		{[]string{"push", good, ref, "--ca", filepath.Join(dir, "none.pem")}, "", exitUsage, "none.pem"},
		{[]string{"push", good, "https://" + ref, "--ca", reg.CAFile}, "", exitUsage, "bad registry reference"},
		{[]string{"push", good, ref, "--ca", reg.CAFile, "--channel", "no good"}, "", exitUsage, `channel "no good" is not a tag`},
		{[]string{"push", unsigned, ref, "--ca", reg.CAFile}, "", exitRefused, "bundle is not signed"},
		{[]string{"push", good, ref, "--ca", reg.CAFile}, wrong, exitFailure, "registry refused access"},
		{[]string{"push", good, ref}, "", exitFailure, "x509: certificate signed by unknown authority"},
	}
	for _, tt := range tests {
		t.Setenv("REGISTRY_AUTH_FILE", cmp(tt.env, reg.AuthFile))
		var out bytes.Buffer
		code := run(context.Background(), tt.args, &out, &out)
		t.Logf("keel %s → %d\n%s", strings.Join(tt.args, " "), code, out.String())
		if code != tt.code || !strings.Contains(out.String(), tt.out) {
			t.Errorf("keel %v: exit %d, want %d; output does not contain %q", tt.args, code, tt.code, tt.out)
		}
	}

	// What keel push stored is what a device resolves.
	art, err := registry.Resolve(t.Context(), "oci://"+reg.Host+"/fleet/t:stable", registry.ResolveOptions{Options: registry.Options{AuthFile: reg.AuthFile, CAFile: reg.CAFile}})
	if err != nil {
		t.Fatal(err)
	}
	if art.Name != "t" || art.Version != "2.0.0" || art.Size != int64(len(file)) {
		t.Errorf("resolved %+v", art)
	}
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
