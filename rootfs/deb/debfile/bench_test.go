package debfile

import (
	"context"
	"os"
	"testing"

	"keel/rootfs/tarfs/tarfstest"
)

// The benchmarks apply a real package, named by KEEL_BENCH_DEB (a .deb on
// the build host, e.g. one `apt-get download` fetched):
//
//	KEEL_BENCH_DEB=/tmp/vim-runtime.deb go test -run NONE -bench . -benchtime 5x ./rootfs/deb/debfile
//
// Direct decompresses data.tar and spools its contents each time; Cold
// unpacks into an empty cache and applies from it; Warm applies from a
// cache that holds the package.
func benchDeb(b *testing.B) (string, string) {
	p := os.Getenv("KEEL_BENCH_DEB")
	if p == "" {
		b.Skip("KEEL_BENCH_DEB not set: no package to benchmark")
	}
	return p, tarfstest.SHA256(mustRead(b, p))
}

func BenchmarkApplyDirect(b *testing.B) {
	p, _ := benchDeb(b)
	spool := newSpool(b)
	for b.Loop() {
		f, err := Open(p)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.Apply(context.Background(), mergedTree(b), spool, keelOptions); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

func BenchmarkApplyCacheCold(b *testing.B) {
	p, sum := benchDeb(b)
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		b.StartTimer()
		c, err := NewCache(dir, CacheOptions{})
		if err != nil {
			b.Fatal(err)
		}
		u, err := c.Get(context.Background(), p, sum)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := u.Apply(context.Background(), mergedTree(b), keelOptions); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApplyCacheWarm(b *testing.B) {
	p, sum := benchDeb(b)
	dir := b.TempDir()
	c, err := NewCache(dir, CacheOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.Get(context.Background(), p, sum); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		c, err := NewCache(dir, CacheOptions{})
		if err != nil {
			b.Fatal(err)
		}
		u, err := c.Get(context.Background(), p, sum)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := u.Apply(context.Background(), mergedTree(b), keelOptions); err != nil {
			b.Fatal(err)
		}
	}
}
