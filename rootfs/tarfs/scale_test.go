package tarfs

import (
	"archive/tar"
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"keel/rootfs"
)

// manyFiles streams a tar of n empty files, "many/0000000" and on, as a
// layer of a million empty files would be: 512 bytes of header each.
func manyFiles(n int) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		for i := 0; i < n; i++ {
			hdr := &tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("many/%07d", i), Mode: 0o644, ModTime: time.Unix(1700000000, 0), Format: tar.FormatUSTAR}
			if err := tw.WriteHeader(hdr); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(tw.Close())
	}()
	return pr
}

var manyN = flag.Int("files", 100_000, "how many empty files TestApplyMillionFiles applies (the figures in docs/RELIABILITY.md: 1000000)")

// TestApplyMillionFiles applies a layer of a million empty files, within
// the limits keel's OCI layers get by default (1 Mi entries, and 512 MB of
// headers is far from 16 GiB), and measures it: the time, the heap the tree
// holds afterwards, and the memory the runtime took from the OS (a bound on
// the peak). The figures are logged (go test -v); the test fails if the
// tree costs more than 1 KiB an entry, which would make the default entry
// limit a memory problem. By default it applies 100,000 files, to keep
// go test quick; the figures for a million:
//
//	go test ./rootfs/tarfs -run MillionFiles -v -files 1000000
func TestApplyMillionFiles(t *testing.T) {
	n := *manyN
	spool := newSpool(t)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	tree := rootfs.New()
	opts := Options{Name: "layer many", Spool: spool, Whiteouts: true, Stack: NewStack(),
		Limits: Limits{MaxBytes: 16 << 30, MaxEntries: 1 << 20}}
	if err := Apply(context.Background(), tree, manyFiles(n), opts); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	if tree.Len() != n+2 {
		t.Fatalf("tree holds %d paths, want %d", tree.Len(), n+2)
	}
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d empty files: %v, tree and stack hold %.0f MiB (%d bytes an entry), runtime took %.0f MiB from the OS (%.0f MiB before)",
		n, elapsed.Round(time.Millisecond), float64(held)/(1<<20), held/int64(n), float64(after.Sys)/(1<<20), float64(before.Sys)/(1<<20))
	if held > int64(n)<<10 {
		t.Errorf("%d bytes an entry", held/int64(n))
	}
	runtime.KeepAlive(tree)
	runtime.KeepAlive(opts.Stack)
	checkOnly(t, spool.Dir())
}
