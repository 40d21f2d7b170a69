// Command delta is the keel side of bench/delta.sh. It builds a keel image
// of each tree it is given (the first is the base, the running system),
// all with the same kernel, keel-init and keelctl, writes each build's
// bundle and the same bundle with its chunk index (image/delta), and for
// every later tree installs that bundle by delta (install.InstallDelta)
// onto a copy of the base's disk, from a local HTTP server that answers
// range requests as a web server or a registry does, counting what it
// sends. The same bundle installed whole onto another copy must leave the
// same disk, byte for byte. It then works out, for other chunk sizes, what
// the same install would fetch, and prints markdown tables.
//
//	delta -work DIR -kernel VMLINUZ -keel-init BIN -keelctl BIN v1=TREE v2=TREE ...
//
// Every bundle, plain and indexed, is left in DIR as NAME.keel and
// NAME.indexed.keel (bench/delta.sh gives the plain ones to casync).
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"keel/image/build"
	"keel/image/bundle"
	"keel/image/delta"
	"keel/image/disk"
	"keel/image/fetch"
	"keel/image/install"
	"keel/profiles"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "delta:", err)
		os.Exit(1)
	}
}

type version struct {
	name, tree string
	disk       string // the built image
	plain      string // its bundle as keel build wrote it
	indexed    string // the same with an index
	res        *build.Result
	arts       map[string][]byte // the artifacts, by name
	order      []string
}

func run() error {
	work := flag.String("work", "", "directory for images and bundles")
	kernel := flag.String("kernel", "", "the kernel every build gets")
	initPath := flag.String("keel-init", "bin/keel-init", "keel-init binary")
	ctlPath := flag.String("keelctl", "bin/keelctl", "keelctl binary")
	paramList := flag.String("params", "4:16:64,16:64:256,64:256:1024", "chunk sizes to compare, MIN:AVG:MAX in KiB, comma-separated")
	slot := flag.String("slot", "512MiB", "slot size")
	flag.Parse()
	if *work == "" || *kernel == "" || flag.NArg() < 2 {
		return fmt.Errorf("usage: delta -work DIR -kernel VMLINUZ [-keel-init BIN] [-keelctl BIN] NAME=TREE NAME=TREE...")
	}
	params, err := parseParams(*paramList)
	if err != nil {
		return err
	}
	keelInit, err := os.ReadFile(*initPath)
	if err != nil {
		return err
	}
	keelctl, err := os.ReadFile(*ctlPath)
	if err != nil {
		return err
	}
	pub, key, err := bundle.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	ctx := context.Background()
	var vs []*version
	for i, arg := range flag.Args() {
		name, tree, ok := strings.Cut(arg, "=")
		if !ok {
			return fmt.Errorf("%q: want NAME=TREE", arg)
		}
		v := &version{name: name, tree: tree}
		if err := v.build(ctx, *work, i, *kernel, *slot, keelInit, keelctl, key); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(os.Stderr, "built %s: root squashfs %.1f MiB, %d inodes, %.1f MiB of content\n", name, mib(v.res.RootBytes), v.res.Inodes, mib(v.res.ContentBytes))
		vs = append(vs, v)
	}
	base := vs[0]
	fmt.Printf("Delta installs onto %s (chunks %s KiB), from a local HTTP server:\n\n", base.name, paramString(delta.DefaultParams))
	fmt.Println("| update | bundle MiB | fetched MiB | fetched | requests | reused MiB | rootfs fetched: data / metadata MiB | delta install s | full install s | same disk |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	var sims []string
	for _, v := range vs[1:] {
		line, err := compare(ctx, base, v, pub)
		if err != nil {
			return fmt.Errorf("%s → %s: %w", base.name, v.name, err)
		}
		fmt.Println(line)
		for _, p := range params {
			s, err := simulate(ctx, base, v, p)
			if err != nil {
				return err
			}
			sims = append(sims, s)
		}
	}
	fmt.Printf("\nWhat the same installs fetch with other chunk sizes (worked out from the indexes):\n\n")
	fmt.Println("| update | chunks KiB | index KiB | fetched MiB | fetched | ranges |")
	fmt.Println("|---|---|---:|---:|---:|---:|")
	for _, s := range sims {
		fmt.Println(s)
	}
	return nil
}

const profileYAML = `name: bench
version: 1.0.%d
kernel: {file: %s}
sources:
  - {dir: %s, to: /}
disk: {esp: 64MiB, slot: %s, data: 16MiB}
`

func (v *version) build(ctx context.Context, work string, i int, kernel, slot string, keelInit, keelctl []byte, key ed25519.PrivateKey) error {
	prof := filepath.Join(work, v.name+".yaml")
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	if err := os.WriteFile(prof, fmt.Appendf(nil, profileYAML, i, abs(kernel), abs(v.tree), slot), 0o644); err != nil {
		return err
	}
	p, err := profiles.Load(prof)
	if err != nil {
		return err
	}
	v.disk, v.plain, v.indexed = filepath.Join(work, v.name+".img"), filepath.Join(work, v.name+".keel"), filepath.Join(work, v.name+".indexed.keel")
	v.res, err = build.Build(ctx, p, build.Options{Output: v.disk, Bundle: v.plain, KeelInit: keelInit, Keelctl: keelctl, SignKey: key})
	if err != nil {
		return err
	}
	f, err := os.Open(v.plain)
	if err != nil {
		return err
	}
	defer f.Close()
	br, err := bundle.OpenUnverified(f)
	if err != nil {
		return err
	}
	v.arts = map[string][]byte{}
	var srcs []bundle.Source
	for {
		a, r, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		v.arts[a.Name] = b
		if a.Name != bundle.Index {
			v.order = append(v.order, a.Name)
			srcs = append(srcs, bundle.BytesSource(a.Name, b))
		}
	}
	// keel build may already write the index; the bench writes its own
	// either way, so both bundles exist.
	withIdx, err := delta.WithIndex(ctx, srcs)
	if err != nil {
		return err
	}
	m := br.Manifest
	m.Artifacts, m.BuildID = nil, ""
	return bundle.WriteFile(ctx, v.indexed, m, key, withIdx)
}

// compare installs v's indexed bundle onto copies of base's disk, by
// delta and whole, and returns the table row.
func compare(ctx context.Context, base, v *version, pub ed25519.PublicKey) (string, error) {
	bb, err := os.ReadFile(v.indexed)
	if err != nil {
		return "", err
	}
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(countWriter{w, &sent}, r, "bundle.keel", time.Unix(0, 0), bytes.NewReader(bb))
	}))
	defer srv.Close()

	deltaDisk, fullDisk := base.disk+".delta", base.disk+".full"
	defer os.Remove(deltaDisk)
	defer os.Remove(fullDisk)
	if err := disk.CopySparse(base.disk, deltaDisk); err != nil {
		return "", err
	}
	if err := disk.CopySparse(base.disk, fullDisk); err != nil {
		return "", err
	}
	trusted := []ed25519.PublicKey{pub}

	d, err := install.OpenFile(deltaDisk, time.Unix(0, 0))
	if err != nil {
		return "", err
	}
	start := time.Now()
	res, err := install.InstallDelta(ctx, d.Target, fetch.URL(srv.Client(), srv.URL+"/bundle.keel", nil), trusted, install.Options{})
	deltaTime := time.Since(start)
	d.Close()
	if err != nil {
		return "", err
	}
	if res.Fetched != sent.Load() {
		return "", fmt.Errorf("InstallDelta counted %d bytes, the server sent %d", res.Fetched, sent.Load())
	}

	d, err = install.OpenFile(fullDisk, time.Unix(0, 0))
	if err != nil {
		return "", err
	}
	start = time.Now()
	f, err := os.Open(v.indexed)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := install.OpenBundle(f, trusted)
	if err == nil {
		_, err = install.Install(ctx, d.Target, b, install.Options{})
	}
	fullTime := time.Since(start)
	d.Close()
	if err != nil {
		return "", err
	}
	same, err := sameFiles(deltaDisk, fullDisk)
	if err != nil {
		return "", err
	}
	if !same {
		return "", fmt.Errorf("the disk after the delta install differs from the disk after the full install")
	}
	data, meta, err := rootfsMissing(ctx, base, v, delta.DefaultParams)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("| %s → %s | %.1f | %.2f | **%.1f%%** | %d | %.1f | %.2f / %.2f | %.2f | %.2f | yes |",
		base.name, v.name, mib(int64(len(bb))), mib(res.Fetched), 100*float64(res.Fetched)/float64(len(bb)), res.Requests,
		mib(res.Reused), mib(data), mib(meta), deltaTime.Seconds(), fullTime.Seconds()), nil
}

// local is what a device running base has, chunked with p as
// InstallDelta chunks a slot without an index: the root squashfs and the
// ESP files.
func local(ctx context.Context, base *version, p delta.Params) (map[[32]byte]bool, error) {
	have := map[[32]byte]bool{}
	for _, name := range base.order {
		s, err := delta.Split(ctx, p, name, bytes.NewReader(base.arts[name]), int64(len(base.arts[name])))
		if err != nil {
			return nil, err
		}
		for _, c := range s.Chunks {
			have[c.Sum] = true
		}
	}
	return have, nil
}

// simulate works out what InstallDelta fetches to go from base to v with
// chunk sizes p: the head, the index, the byte at the end and every chunk
// base lacks, in one range per run of them.
func simulate(ctx context.Context, base, v *version, p delta.Params) (string, error) {
	have, err := local(ctx, base, p)
	if err != nil {
		return "", err
	}
	var srcs []bundle.Source
	for _, name := range v.order {
		srcs = append(srcs, bundle.BytesSource(name, v.arts[name]))
	}
	raw, err := delta.MakeIndex(ctx, p, srcs)
	if err != nil {
		return "", err
	}
	x, err := delta.Parse(raw)
	if err != nil {
		return "", err
	}
	br, err := openHead(v.indexed)
	if err != nil {
		return "", err
	}
	fetched, ranges, total := br.HeadSize()+int64(len(raw))+1, 4, br.HeadSize()+int64(len(raw))
	for _, s := range x.Sections {
		total += s.Size
		run := false
		for _, c := range s.Chunks {
			if have[c.Sum] {
				run = false
				continue
			}
			fetched += c.Size
			if !run {
				ranges++
			}
			run = true
		}
	}
	return fmt.Sprintf("| %s → %s | %s | %.0f | %.2f | %.1f%% | %d |", base.name, v.name, paramString(p), float64(len(raw))/1024,
		mib(fetched), 100*float64(fetched)/float64(total), ranges), nil
}

// rootfsMissing splits the rootfs bytes v's install fetches into those
// before the squashfs's inode table (file data and fragments) and from it
// on (inode, directory, fragment, export and id tables).
func rootfsMissing(ctx context.Context, base, v *version, p delta.Params) (data, meta int64, err error) {
	have, err := local(ctx, base, p)
	if err != nil {
		return 0, 0, err
	}
	root := v.arts[bundle.Rootfs]
	s, err := delta.Split(ctx, p, bundle.Rootfs, bytes.NewReader(root), int64(len(root)))
	if err != nil {
		return 0, 0, err
	}
	inodeTable := int64(binary.LittleEndian.Uint64(root[64:]))
	for _, c := range s.Chunks {
		if have[c.Sum] {
			continue
		}
		in := min(c.Offset+c.Size, inodeTable) - c.Offset
		data += max(in, 0)
		meta += c.Size - max(in, 0)
	}
	return data, meta, nil
}

func openHead(name string) (*bundle.Reader, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return bundle.OpenUnverified(f)
}

func parseParams(s string) ([]delta.Params, error) {
	var ps []delta.Params
	for _, f := range strings.Split(s, ",") {
		parts := strings.Split(f, ":")
		if len(parts) != 3 {
			return nil, fmt.Errorf("chunk sizes %q: want MIN:AVG:MAX in KiB", f)
		}
		var n [3]uint32
		for i, part := range parts {
			v, err := strconv.ParseUint(part, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("chunk sizes %q: %w", f, err)
			}
			n[i] = uint32(v) << 10
		}
		bits := uint32(0)
		for 1<<(bits+1) <= n[1] {
			bits++
		}
		p := delta.Params{Min: n[0], Max: n[2], AvgBits: bits}
		if err := p.Check(); err != nil {
			return nil, fmt.Errorf("chunk sizes %q: %w", f, err)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

func paramString(p delta.Params) string {
	return fmt.Sprintf("%d:%d:%d", p.Min>>10, (1<<p.AvgBits)>>10, p.Max>>10)
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

type countWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w countWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

func sameFiles(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea != nil || eb != nil {
			return ea == eb || (ea == io.ErrUnexpectedEOF && eb == io.ErrUnexpectedEOF), nil
		}
	}
}
