package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"keel/image/bundle"
	"keel/image/fetch/fetchtest"
)

// resign writes a copy of the bundle at path whose manifest is signed by
// keyFile's key instead.
func resign(t *testing.T, path, keyFile, out string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	key, err := bundle.ReadPrivateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	head, err := bundle.HeadSize(b)
	if err != nil {
		t.Fatal(err)
	}
	mlen := binary.BigEndian.Uint32(b[12:])
	manifest := b[bundle.HeaderSize : bundle.HeaderSize+int(mlen)]
	id, _ := hex.DecodeString(bundle.KeyID(key.Public().(ed25519.PublicKey)))
	sig := append(id, ed25519.Sign(key, manifest)...)
	if copy(b[bundle.HeaderSize+int(mlen):head], sig) != len(sig) {
		t.Fatal("signature block is not 72 bytes")
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// rangeLog records the Range header of each GET and the bytes sent.
type rangeLog struct {
	h  http.Handler
	mu sync.Mutex
	rs []string
}

func (l *rangeLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	l.rs = append(l.rs, r.Header.Get("Range"))
	l.mu.Unlock()
	l.h.ServeHTTP(w, r)
}

func (l *rangeLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	rs := l.rs
	l.rs = nil
	return rs
}

// TestUpdate installs v2 with keelctl update from an https server (its
// certificate trusted with --ca), a plain http one (--insecure) and a
// file, with the connection cut at 30% and 70% of the bundle, and checks
// that the disk ends byte for byte as keelctl install of the same bundle
// leaves it; and that refusals (another key, plain http, an unknown
// certificate) leave the disk untouched.
func TestUpdate(t *testing.T) {
	disk, v2, pub, _ := images(t)
	big, size := bigBundle(t, v2)
	dir := t.TempDir() // what the servers serve
	orig, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	copyDisk := func(t *testing.T) string {
		d := filepath.Join(t.TempDir(), "disk.img")
		if err := os.WriteFile(d, orig, 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	installed := installedDisk(t, disk, big, pub)
	for name, src := range map[string]string{
		"b.keel":       big,
		"old.keel":     rebundle(t, v2, "old.keel", func(m *bundle.Manifest) { m.Version = "1.0.0" }, nil),
		"foreign.keel": rebundle(t, v2, "foreign.keel", func(m *bundle.Manifest) { m.Compatible = "another-board" }, nil),
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	resign(t, big, filepath.Join(filepath.Dir(v2), "other.key"), filepath.Join(dir, "other.keel"))

	var cutter *fetchtest.Cutter
	files := &rangeLog{h: http.FileServer(http.Dir(dir))}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cutter != nil {
			cutter.ServeHTTP(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
	tlsSrv := httptest.NewUnstartedServer(handler)
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake the test fails on purpose
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	plain := httptest.NewServer(handler)
	defer plain.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	https := tlsSrv.URL + "/b.keel"

	tests := []struct {
		name   string
		args   []string
		cuts   []float64 // fractions of the bundle to cut the connection at
		code   int
		out    string
		disk   string // "installed", "unchanged"
		ranges string // the GETs' Range headers, joined by |, if checked
	}{
		{"https", []string{"update", https, "--ca", ca, "--no-delta"}, nil, 0, "installed t 2.0.0 into slot b", "installed", ""},
		{"https, delta", []string{"update", https, "--ca", ca}, nil, 0, "reused 0 B from slot a", "installed", ""},
		{"https cut at 30% and 70%", []string{"update", https, "--ca", ca, "--no-delta"}, []float64{0.3, 0.7}, 0, "resumed 2 times", "installed",
			"|bytes=" + strconv.FormatInt(size*3/10, 10) + "-|bytes=" + strconv.FormatInt(size*7/10, 10) + "-"},
		{"http with --insecure, cut", []string{"update", plain.URL + "/b.keel", "--insecure", "--no-delta"}, []float64{0.5}, 0, "resumed once", "installed", ""},
		{"rate cap", []string{"update", https, "--ca", ca, "--rate", "2M", "--no-delta"}, nil, 0, "installed", "installed", ""},
		{"rate cap, delta", []string{"update", https, "--ca", ca, "--rate", "2M"}, nil, 0, "installed", "installed", ""},
		{"file", []string{"update", big}, nil, 0, "installed t 2.0.0", "installed", ""},
		{"signed by another key", []string{"update", tlsSrv.URL + "/other.keel", "--ca", ca}, nil, exitRefused, "untrusted key", "unchanged", ""},
		{"plain http without --insecure", []string{"update", plain.URL + "/b.keel"}, nil, exitUsage, "only with --insecure", "unchanged", ""},
		{"unknown certificate", []string{"update", https}, nil, exitFailure, "certificate", "unchanged", ""},
		{"not found", []string{"update", tlsSrv.URL + "/none.keel", "--ca", ca}, nil, exitFailure, "404 Not Found", "unchanged", ""},
		{"bad rate", []string{"update", https, "--ca", ca, "--rate", "fast"}, nil, exitUsage, "not a size", "unchanged", ""},
		{"check: newer", []string{"update", "--check", https, "--ca", ca}, nil, 0, "newer: t 2.0.0", "unchanged", "bytes=0-8191"},
		{"check: up to date", []string{"update", "--check", tlsSrv.URL + "/old.keel", "--ca", ca}, nil, 0, "up to date: running t 1.0.0", "unchanged", "bytes=0-8191"},
		{"check: file", []string{"update", "--check", big}, nil, 0, "newer: t 2.0.0", "unchanged", ""},
		{"check: another device", []string{"update", "--check", tlsSrv.URL + "/foreign.keel", "--ca", ca}, nil, exitRefused, "another kind of device", "unchanged", ""},
		{"check: another key", []string{"update", "--check", tlsSrv.URL + "/other.keel", "--ca", ca}, nil, exitRefused, "untrusted key", "unchanged", ""},
	}
	fetchedRE := regexp.MustCompile(`fetched (\d+) bytes \(.*\) in ([0-9.]+) s`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := copyDisk(t)
			cutter = nil
			if tt.cuts != nil {
				cutter = fetchtest.NewCutter(files, fetchtest.Fractions(size, tt.cuts...), nil)
			}
			files.take()
			code, out := keelctl(t, append([]string{"--disk", d}, append(tt.args, "--key", pub)...)...)
			if code != tt.code || !strings.Contains(out, tt.out) {
				t.Fatalf("exit %d, want %d; output does not contain %q", code, tt.code, tt.out)
			}
			after, err := os.ReadFile(d)
			if err != nil {
				t.Fatal(err)
			}
			switch want := map[string][]byte{"installed": installed, "unchanged": orig}[tt.disk]; {
			case !bytes.Equal(after, want):
				t.Errorf("the disk is not %s", tt.disk)
			}
			if tt.ranges != "" {
				if got := strings.Join(files.take(), "|"); got != tt.ranges {
					t.Errorf("requests with Range %q, want %q", got, tt.ranges)
				}
			}
			if cutter != nil && cutter.Left() != 0 {
				t.Errorf("%d cuts did not happen", cutter.Left())
			}
			if m := fetchedRE.FindStringSubmatch(out); tt.code == 0 && m != nil {
				n, _ := strconv.ParseInt(m[1], 10, 64)
				if float64(n) > 1.1*float64(size) || (n < size && slices.Contains(tt.args, "--no-delta")) {
					t.Errorf("fetched %d bytes for a bundle of %d", n, size)
				}
				// 3 MiB at 2 MiB/s: at least (3 MiB - 1/8 s's worth)/rate.
				if secs, _ := strconv.ParseFloat(m[2], 64); strings.HasPrefix(tt.name, "rate cap") && secs < 1.3 {
					t.Errorf("3 MiB at 2 MiB/s in %.1f s", secs)
				}
			} else if tt.code == 0 && strings.HasPrefix(tt.args[1], "http") {
				t.Error("no count of the bytes fetched")
			}
		})
	}
}

// bigBundle is v2 with a 3 MiB random rootfs, so a download takes many
// reads and a cut falls in the middle of the stream; and its size.
func bigBundle(t *testing.T, v2 string) (string, int64) {
	t.Helper()
	root := make([]byte, 3<<20)
	rand.Read(root)
	p := rebundle(t, v2, "big.keel", nil, func(a [][]byte) { a[0] = root })
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, fi.Size()
}

// installedDisk is what keelctl install of the bundle leaves on a copy of
// disk: what keelctl update must leave too.
func installedDisk(t *testing.T, disk, bundleFile, pub string) []byte {
	t.Helper()
	orig, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	ref := filepath.Join(t.TempDir(), "installed.img")
	if err := os.WriteFile(ref, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _ := keelctl(t, "--disk", ref, "install", bundleFile, "--key", pub); code != 0 {
		t.Fatal("keelctl install")
	}
	b, err := os.ReadFile(ref)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(b, orig) {
		t.Fatal("install changed nothing")
	}
	return b
}
