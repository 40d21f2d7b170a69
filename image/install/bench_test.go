package install_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"keel/image/build"
	"keel/image/bundle"
	"keel/image/install"
	"keel/profiles"
)

// BenchmarkInstallSlot installs a bundle with a 192 MiB rootfs from a file
// into a disk image file, fsync included, and reports dd's speed writing
// the same bytes to the same place (dd bs=1M conv=notrunc,fsync) beside it.
func BenchmarkInstallSlot(b *testing.B) {
	dd, err := exec.LookPath("dd")
	if err != nil {
		b.Skip("dd not installed")
	}
	f := getFixture(b)
	dir := b.TempDir()
	prof := filepath.Join(dir, "p.yaml")
	os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("k"), 0o644)
	os.WriteFile(prof, []byte("name: t\nversion: 1.0.0\nkernel: {file: vmlinuz}\ndisk: {esp: 34MiB, slot: 200MiB, data: 16MiB}\n"), 0o644)
	p, err := profiles.Load(prof)
	if err != nil {
		b.Fatal(err)
	}
	img := filepath.Join(dir, "disk.img")
	if _, err := build.Build(context.Background(), p, build.Options{Output: img, KeelInit: []byte("x")}); err != nil {
		b.Fatal(err)
	}
	const size = 192 << 20
	root := make([]byte, size)
	rand.Read(root)
	rootFile := filepath.Join(dir, "rootfs")
	os.WriteFile(rootFile, root, 0o644)
	var bb bytes.Buffer
	srcs := []bundle.Source{
		{Name: "rootfs", Size: size, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(root)), nil }},
		{Name: "kernel", Size: 1, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader([]byte("k"))), nil }},
		{Name: "initrd", Size: 1, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader([]byte("i"))), nil }},
	}
	if err := bundle.Write(context.Background(), &bb, bundle.Manifest{Name: "t", Version: "2", Compatible: "t", Arch: "x86_64"}, f.key, srcs); err != nil {
		b.Fatal(err)
	}
	bundleFile := filepath.Join(dir, "b.keel")
	os.WriteFile(bundleFile, bb.Bytes(), 0o644)
	d, err := install.OpenFile(img, epoch)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	slotB, _ := d.Layout.Slot("b")

	if os.Getenv("KEEL_BENCH_STAGES") != "" {
		start := time.Now()
		bf, _ := os.Open(bundleFile)
		br, _ := bundle.Open(bf, []ed25519.PublicKey{f.pub})
		_, r, _ := br.Next()
		n, err := io.CopyBuffer(io.Discard, r, make([]byte, 1<<20))
		fmt.Printf("bundle read+hash only: %d bytes in %v (%v)\n", n, time.Since(start), err)
		bf.Close()
	}
	b.SetBytes(size)
	b.ResetTimer()
	var ours, theirs time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		bf, _ := os.Open(bundleFile)
		br, err := bundle.Open(bf, []ed25519.PublicKey{f.pub})
		if err != nil {
			b.Fatal(err)
		}
		last := time.Now()
		lastStage := "open"
		prog := func(stage string, _, _ int64) {
			if stage != lastStage {
				if os.Getenv("KEEL_BENCH_STAGES") != "" {
					fmt.Printf("%-40s %v\n", lastStage, time.Since(last))
				}
				last, lastStage = time.Now(), stage
			}
		}
		if _, err := install.Install(context.Background(), d.Target, br, install.Options{Progress: prog}); err != nil {
			b.Fatal(err)
		}
		bf.Close()
		ours += time.Since(start)

		b.StopTimer()
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
	b.ReportMetric(mbps(ours)/mbps(theirs), "ratio-vs-dd")
}
