package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keel/image/bundle"
	"keel/image/fetch/fetchtest"
	"keel/image/registry"
	"keel/image/registry/registrytest"
)

// TestUpdateOCI pushes a bundle to a real registry (Debian's
// docker-registry, TLS and basic auth) and installs it with keelctl update
// oci://: directly, and through a proxy that cuts the blob's download at
// 30% and 70%. The disk ends as keelctl install of the same file leaves
// it. --check decides from the tag's manifest alone.
func TestUpdateOCI(t *testing.T) {
	disk, v2, pub, _ := images(t)
	reg := registrytest.Start(t, registrytest.Options{})
	big, size := bigBundle(t, v2)
	older := rebundle(t, v2, "old.keel", func(m *bundle.Manifest) { m.Version = "0.9.0" }, nil)
	foreign := rebundle(t, v2, "foreign.keel", func(m *bundle.Manifest) { m.Compatible = "another-board" }, nil)
	ro := registry.Options{AuthFile: reg.AuthFile, CAFile: reg.CAFile}
	for tag, f := range map[string]string{"2.0.0": big, "0.9.0": older, "foreign": foreign} {
		if _, err := registry.Push(context.Background(), f, reg.Host+"/fleet/t:"+tag, registry.PushOptions{Options: ro, Channel: map[string]string{"2.0.0": "stable"}[tag]}); err != nil {
			t.Fatal(err)
		}
	}
	orig, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	installed := installedDisk(t, disk, big, pub)

	// A proxy in front of the registry, which cuts what it relays.
	var cutter *fetchtest.Cutter
	target, _ := url.Parse("https://" + reg.Host)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: reg.CA}}
	rp.ErrorLog = log.New(io.Discard, "", 0)
	proxy := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cutter != nil {
			cutter.ServeHTTP(w, r)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	proxy.Config.ErrorLog = log.New(io.Discard, "", 0)
	proxy.StartTLS()
	defer proxy.Close()
	proxyHost := strings.TrimPrefix(proxy.URL, "https://")
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem") // the registry's CA and the proxy's certificate
	caPEM, err := os.ReadFile(reg.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM = append(caPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxy.Certificate().Raw})...)
	auth := filepath.Join(dir, "auth.json") // the account for both
	cred := base64.StdEncoding.EncodeToString([]byte(reg.User + ":" + reg.Password))
	authJSON := fmt.Sprintf(`{"auths": {%q: {"auth": %q}, %q: {"auth": %q}}}`, reg.Host, cred, proxyHost, cred)
	if err := os.WriteFile(ca, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(auth, []byte(authJSON), 0o600); err != nil {
		t.Fatal(err)
	}

	flags := []string{"--ca", ca, "--auth-file", auth, "--key", pub}
	tests := []struct {
		name string
		ref  string
		args []string
		cuts []float64
		code int
		out  string
		disk []byte
	}{
		{"stable", "oci://" + reg.Host + "/fleet/t:stable", []string{"--no-delta"}, nil, 0, "installed t 2.0.0 into slot b", installed},
		{"delta", "oci://" + reg.Host + "/fleet/t:stable", nil, nil, 0, "reused 0 B from slot a", installed},
		{"through a proxy cutting at 30% and 70%", "oci://" + proxyHost + "/fleet/t:stable", []string{"--no-delta"}, []float64{0.3, 0.7}, 0, "resumed 2 times", installed},
		{"check: newer", "oci://" + reg.Host + "/fleet/t:stable", []string{"--check"}, nil, 0, "newer: t 2.0.0", orig},
		{"check: older", "oci://" + reg.Host + "/fleet/t:0.9.0", []string{"--check"}, nil, 0, "up to date: running t 1.0.0", orig},
		{"check: another device", "oci://" + reg.Host + "/fleet/t:foreign", []string{"--check"}, nil, exitRefused, "another-board", orig},
		{"another device", "oci://" + reg.Host + "/fleet/t:foreign", nil, nil, exitRefused, "another kind of device", orig},
		{"no such tag", "oci://" + reg.Host + "/fleet/t:nope", nil, nil, exitFailure, "not found", orig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "disk.img")
			if err := os.WriteFile(d, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			cutter = nil
			if tt.cuts != nil {
				cutter = fetchtest.NewCutter(rp, fetchtest.Fractions(size, tt.cuts...), nil)
			}
			args := append(append([]string{"--disk", d, "update", tt.ref}, tt.args...), flags...)
			code, out := keelctl(t, args...)
			if code != tt.code || !strings.Contains(out, tt.out) {
				t.Fatalf("exit %d, want %d; output does not contain %q", code, tt.code, tt.out)
			}
			if after, _ := os.ReadFile(d); !bytes.Equal(after, tt.disk) {
				t.Error("the disk is not as expected")
			}
			if cutter != nil && (cutter.Left() != 0 || cutter.Sent() > size*11/10) {
				t.Errorf("cuts left %d, blob bytes sent %d for %d", cutter.Left(), cutter.Sent(), size)
			}
		})
	}
}
