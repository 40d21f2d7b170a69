package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"keel/image/build"
	"keel/image/bundle"
	"keel/image/install"
	"keel/image/registry"
	"keel/image/registry/registrytest"
	"keel/profiles"
)

// BenchmarkUpdate measures keelctl --disk IMG update http://127.0.0.1:PORT/b.keel
// (a bundle with a 208 MiB random rootfs, served from the page cache by
// Go's file server over loopback, fsync included) against dd writing the
// same rootfs bytes to the same place (dd bs=1M conv=notrunc,fsync); beside
// them keelctl install of the same bundle from the file and, when
// docker-registry is installed, keelctl update oci:// of it pushed to a
// loopback registry (TLS, basic auth). Each iteration runs them all, one
// after the other; the timed one is the http update.
//
//	go test -run XXX -bench Update -benchtime 5x ./cmd/keelctl/
func BenchmarkUpdate(b *testing.B) {
	dd, err := exec.LookPath("dd")
	if err != nil {
		b.Skip("dd not installed")
	}
	dir := b.TempDir()
	pub, key, err := bundle.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	if err := bundle.WriteKeyPair(dir, "release", pub, key); err != nil {
		b.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("k"), 0o644)
	prof := filepath.Join(dir, "p.yaml")
	os.WriteFile(prof, []byte("name: t\nversion: 1.0.0\nkernel: {file: vmlinuz}\ndisk: {esp: 34MiB, slot: 224MiB, data: 16MiB}\n"), 0o644)
	p, err := profiles.Load(prof)
	if err != nil {
		b.Fatal(err)
	}
	img := filepath.Join(dir, "disk.img")
	if _, err := build.Build(context.Background(), p, build.Options{Output: img, KeelInit: []byte("x")}); err != nil {
		b.Skip("cannot build the disk: ", err)
	}
	const size = 208 << 20
	root := make([]byte, size)
	rand.Read(root)
	rootFile := filepath.Join(dir, "rootfs")
	if err := os.WriteFile(rootFile, root, 0o644); err != nil {
		b.Fatal(err)
	}
	srcs := []bundle.Source{
		bundle.BytesSource(bundle.Rootfs, root),
		bundle.BytesSource(bundle.Kernel, []byte("k")),
		bundle.BytesSource(bundle.Initrd, []byte("i")),
	}
	var bb bytes.Buffer
	if err := bundle.Write(context.Background(), &bb, bundle.Manifest{Name: "t", Version: "2", Compatible: "t", Arch: "x86_64"}, key, srcs); err != nil {
		b.Fatal(err)
	}
	bundleFile := filepath.Join(dir, "b.keel")
	if err := os.WriteFile(bundleFile, bb.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	bb = bytes.Buffer{}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	d, err := install.OpenFile(img, time.Unix(0, 0))
	if err != nil {
		b.Fatal(err)
	}
	slotB, _ := d.Layout.Slot("b")
	d.Close()
	pubFile := filepath.Join(dir, "release.pub")
	keelctlRun := func(args ...string) {
		var out bytes.Buffer
		if code := run(context.Background(), append([]string{"--disk", img}, args...), &out, &out); code != 0 {
			b.Fatalf("keelctl %v: exit %d\n%s", args, code, out.String())
		}
	}

	// The same bundle in a registry (TLS, basic auth), when there is one.
	var ociArgs []string
	if _, err := exec.LookPath(registrytest.Binary); err == nil {
		reg := registrytest.Start(b, registrytest.Options{})
		ref := reg.Host + "/bench/t:2"
		if _, err := registry.Push(context.Background(), bundleFile, ref, registry.PushOptions{Options: registry.Options{AuthFile: reg.AuthFile, CAFile: reg.CAFile}}); err != nil {
			b.Fatal(err)
		}
		ociArgs = []string{"update", "oci://" + ref, "--ca", reg.CAFile, "--auth-file", reg.AuthFile, "--key", pubFile}
	}

	b.SetBytes(size)
	b.ResetTimer()
	var update, oci, file, theirs time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		keelctlRun("update", srv.URL+"/b.keel", "--insecure", "--key", pubFile)
		update += time.Since(start)

		b.StopTimer()
		if ociArgs != nil {
			start = time.Now()
			keelctlRun(ociArgs...)
			oci += time.Since(start)
		}
		start = time.Now()
		keelctlRun("install", bundleFile, "--key", pubFile)
		file += time.Since(start)

		start = time.Now()
		cmd := exec.Command(dd, "if="+rootFile, "of="+img, "bs=1M", fmt.Sprintf("seek=%d", slotB.Start>>20), "conv=notrunc,fsync", "status=none")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("dd: %v %s", err, out)
		}
		theirs += time.Since(start)
		b.StartTimer()
	}
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / (1 << 20) }
	b.ReportMetric(mbps(theirs), "dd-MiB/s")
	b.ReportMetric(mbps(update), "update-MiB/s")
	b.ReportMetric(mbps(update)/mbps(theirs), "update-vs-dd")
	b.ReportMetric(mbps(file)/mbps(theirs), "install-file-vs-dd")
	if ociArgs != nil {
		b.ReportMetric(mbps(oci)/mbps(theirs), "update-oci-vs-dd")
	}
}
