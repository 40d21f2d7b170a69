package install_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"keel/bootloader/systemdboot"
	"keel/image/bundle"
	"keel/image/delta"
	"keel/image/fetch"
	"keel/image/fetch/fetchtest"
	"keel/image/install"
)

// deltaProfile is profileYAML with 3 MiB of files, of which v2 changes
// one, and room for them.
const deltaProfile = `name: t
version: %s
kernel: {file: vmlinuz}
sources:
  - {file: /etc/motd, content: "%s\n", mode: "0644"}
  - {dir: root, to: /usr/share/data}
disk: {esp: 34MiB, slot: 8MiB, data: 16MiB}
`

var (
	deltaOnce sync.Once
	deltaFix  *fixture
	deltaErr  error
)

// getDeltaFixture is a fixture whose versions share most of their bytes,
// as two builds of one image do: the same 1 MiB kernel, 48 files of 64
// KiB of which v2 rewrites one.
func getDeltaFixture(t *testing.T) *fixture {
	t.Helper()
	getFixture(t) // skips without systemd-boot
	deltaOnce.Do(func() {
		deltaFix, deltaErr = makeFixture(deltaProfile, func(dir, version string) error {
			rnd := mrand.New(mrand.NewPCG(1, 2))
			data := func(n int) []byte {
				b := make([]byte, n)
				for i := range b {
					b[i] = byte(rnd.Uint32())
				}
				return b
			}
			if err := os.WriteFile(filepath.Join(dir, "vmlinuz"), data(1<<20), 0o644); err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Join(dir, "root"), 0o755); err != nil {
				return err
			}
			for i := range 48 {
				b := data(64 << 10)
				if i == 17 && version != "1.0.0" {
					b = bytes.Repeat([]byte(version), 16<<10)
				}
				if err := os.WriteFile(filepath.Join(dir, "root", fmt.Sprintf("f%02d", i)), b, 0o644); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if deltaErr != nil {
		t.Fatal(deltaErr)
	}
	return deltaFix
}

// indexed writes a bundle of arts (named by order) with their index first.
func (f *fixture) indexed(t *testing.T, key ed25519.PrivateKey, edit func(m *bundle.Manifest), order []string, arts [][]byte) []byte {
	t.Helper()
	idx, err := delta.MakeIndex(context.Background(), delta.DefaultParams, sources(order, arts))
	if err != nil {
		t.Fatal(err)
	}
	return f.bundleOf(t, key, edit, append([]string{bundle.Index}, order...), append([][]byte{idx}, arts...))
}

func sources(order []string, arts [][]byte) []bundle.Source {
	var s []bundle.Source
	for i, n := range order {
		s = append(s, bundle.BytesSource(n, arts[i]))
	}
	return s
}

// server serves a bundle over HTTP with ranges (net/http's ServeContent)
// and counts the body bytes it sent and the requests.
type server struct {
	*httptest.Server
	sent, requests atomic.Int64
}

func serve(t *testing.T, b []byte) *server {
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		http.ServeContent(countWriter{w, &s.sent}, r, "bundle.keel", time.Unix(1700000000, 0), bytes.NewReader(b))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) source() delta.Source { return fetch.URL(s.Client(), s.URL+"/bundle.keel", nil) }

type countWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w countWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

var fast = install.Options{Fetch: fetch.Options{Backoff: time.Millisecond, Retries: -1}}

// fullInstall installs bb from a stream onto a copy of the v1 disk and
// returns the disk's bytes.
func (f *fixture) fullInstall(t *testing.T, bb []byte) []byte {
	t.Helper()
	name := f.copyDisk(t)
	d := open(t, name)
	b, err := install.OpenBundle(bytes.NewReader(bb), []ed25519.PublicKey{f.pub})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := install.Install(context.Background(), d.Target, b, install.Options{}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	return readFile(t, name)
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestInstallDelta installs v2 by delta onto the v1 disk, whose slot a
// has no index (the build that made it kept none): the slot's squashfs is
// chunked. The disk must come out byte for byte as a full install leaves
// it. Then, with slot b blessed, a v3 of the same bytes installs into slot
// a from slot b's index alone.
func TestInstallDelta(t *testing.T) {
	f := getDeltaFixture(t)
	for _, kind := range []struct {
		name  string
		order []string
		arts  [][]byte
		edit  func(m *bundle.Manifest)
	}{
		{"kernel and initrd", bundle.InstallOrder, f.arts[:], nil},
		{"unified kernel image", bundle.UKIOrder, f.uki[:], func(m *bundle.Manifest) { m.Verity = ukiVerity(f.uki[0]) }},
		{"no index", nil, f.arts[:], nil},
	} {
		t.Run(kind.name, func(t *testing.T) {
			var bb []byte
			if kind.order == nil {
				bb = f.bundleWith(t, f.key, nil, f.arts)
			} else {
				bb = f.indexed(t, f.key, kind.edit, kind.order, kind.arts)
			}
			want := f.fullInstall(t, bb)

			name := f.copyDisk(t)
			d := open(t, name)
			before := snapshot(t, &d.Target, "a")
			srv := serve(t, bb)
			res, err := install.InstallDelta(context.Background(), d.Target, srv.source(), []ed25519.PublicKey{f.pub}, fast)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("bundle %d bytes: fetched %d (%.1f%%) in %d requests (server: %d bytes, %d requests), reused %d",
				len(bb), res.Fetched, 100*float64(res.Fetched)/float64(len(bb)), res.Requests, srv.sent.Load(), srv.requests.Load(), res.Reused)
			if res.Slot != "b" || res.Generation != 2 || res.Image.Version != "2.0.0" {
				t.Errorf("result %+v", res)
			}
			if res.Fetched != srv.sent.Load() || int64(res.Requests) != srv.requests.Load() {
				t.Errorf("counted %d bytes in %d requests, the server sent %d in %d", res.Fetched, res.Requests, srv.sent.Load(), srv.requests.Load())
			}
			if kind.order == nil {
				if res.Fetched != int64(len(bb)) || res.Requests != 3 || res.Reused != 0 {
					t.Errorf("without an index: fetched %d of %d, reused %d", res.Fetched, len(bb), res.Reused)
				}
			} else {
				// Every byte once: fetched (head, index, the byte at the
				// end, missing chunks) or reused.
				br, err := bundle.OpenUnverified(bytes.NewReader(bb))
				if err != nil {
					t.Fatal(err)
				}
				ia, _ := br.Manifest.Artifact(bundle.Index)
				if res.Fetched+res.Reused != int64(len(bb))+1 || res.Fetched < br.HeadSize()+ia.Size+1 {
					t.Errorf("fetched %d + reused %d, want the bundle's %d + 1", res.Fetched, res.Reused, len(bb))
				}
				// The kernel is v1's, in slot a's vmlinuz or inside the
				// unified kernel image; v2 changed 64 KiB of 3 MiB of files.
				if res.Reused < int64(len(f.arts[1])-int(delta.DefaultParams.Max))+int64(len(f.arts[0])/2) {
					t.Errorf("reused %d bytes: the unchanged chunks were not", res.Reused)
				}
			}
			d.Close()
			if got := readFile(t, name); !bytes.Equal(got, want) {
				t.Fatal("the disk after a delta install differs from the disk after a full install")
			}
			d = open(t, name)
			snapshot(t, &d.Target, "a").diff(t, before)
			fsckESP(t, d.File, d.Layout, false)
			if kind.order == nil {
				return
			}
			// Slot b keeps the index; a v3 of the same bytes then needs
			// nothing but its header, manifest and index.
			idx, err := d.ESP.ReadFile(install.IndexPath("b"))
			if err != nil || !bytes.Equal(idx, artifact(t, bb, bundle.Index)) {
				t.Fatalf("/keel/b/index is not the bundle's index (%v)", err)
			}
			if err := (systemdboot.Entries{}).MarkGood(d.ESP, "b"); err != nil {
				t.Fatal(err)
			}
			es, err := d.Loader.Entries(d.ESP)
			if err != nil {
				t.Fatal(err)
			}
			e, _ := install.NewestGood(es)
			d.Booted = e.Slot
			if d.Running, err = install.ReadImage(d.ESP, "b", e); err != nil || e.Slot != "b" || d.Running.RootBytes != int64(len(kind.arts[0])) {
				t.Fatalf("slot b's image.json: %+v (%v), want root_bytes %d", d.Running, err, len(kind.arts[0]))
			}
			v3 := f.indexed(t, f.key, func(m *bundle.Manifest) {
				if kind.edit != nil {
					kind.edit(m)
				}
				m.Version = "3.0.0"
			}, kind.order, kind.arts)
			res, err = install.InstallDelta(context.Background(), d.Target, serve(t, v3).source(), []ed25519.PublicKey{f.pub}, fast)
			if err != nil {
				t.Fatal(err)
			}
			var payload int64
			for _, a := range kind.arts {
				payload += int64(len(a))
			}
			headAndIndex := int64(len(v3)) - payload
			t.Logf("v3 from slot b: fetched %d bytes (head and index %d) in %d requests, reused %d", res.Fetched, headAndIndex, res.Requests, res.Reused)
			if res.Slot != "a" || res.Fetched != headAndIndex+1 || res.Reused != payload || res.Requests != 4 {
				t.Errorf("v3: %+v; want everything from slot b, 4 requests (header, manifest, end, index)", res)
			}
			got := make([]byte, len(kind.arts[0]))
			part, _ := d.Layout.Slot("a")
			if _, err := d.File.ReadAt(got, part.Start); err != nil || !bytes.Equal(got, kind.arts[0]) {
				t.Errorf("slot a does not hold v3's rootfs (%v)", err)
			}
		})
	}
}

// missingChunk is the first chunk of the rootfs that idx (an index of v2)
// lists and the v1 disk's slot a does not have: one a delta install
// fetches.
func (f *fixture) missingChunk(t *testing.T, idx []byte) delta.Chunk {
	t.Helper()
	x, err := delta.Parse(idx)
	if err != nil {
		t.Fatal(err)
	}
	d := open(t, f.copyDisk(t))
	defer d.Close()
	v1root, _ := f.v1.Artifact(bundle.Rootfs)
	part, _ := d.Layout.Slot("a")
	sec, err := delta.Split(context.Background(), delta.DefaultParams, "rootfs", io.NewSectionReader(d.File, part.Start, v1root.Size), v1root.Size)
	if err != nil {
		t.Fatal(err)
	}
	have := map[[32]byte]bool{}
	for _, c := range sec.Chunks {
		have[c.Sum] = true
	}
	for _, c := range x.Sections[0].Chunks {
		if !have[c.Sum] {
			return c
		}
	}
	t.Fatal("v2's rootfs has every chunk of v1's")
	return delta.Chunk{}
}

// TestDeltaRefusals: every bundle that Install refuses before writing is
// refused by InstallDelta with the disk byte for byte as it was, and so is
// one whose index does not match the manifest or its artifacts; a chunk
// with a flipped bit fails the install after slot b was written, as a
// hash mismatch does in Install's step 2, with the booted slot and every
// entry as they were.
func TestDeltaRefusals(t *testing.T) {
	f := getDeltaFixture(t)
	order, arts := bundle.InstallOrder, f.arts[:]
	good := f.indexed(t, f.key, nil, order, arts)
	br, err := bundle.OpenUnverified(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	head := int(br.HeadSize())
	idx := artifact(t, good, bundle.Index)
	rootAt := head + len(idx)
	flip := func(off int) []byte {
		b := bytes.Clone(good)
		b[off] ^= 0x08
		return b
	}
	fetched := f.missingChunk(t, idx)
	// An index that hashes right but describes other sizes.
	otherIdx, err := delta.MakeIndex(context.Background(), delta.DefaultParams, sources(order, [][]byte{arts[0][:len(arts[0])-1], arts[1], arts[2]}))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		bundle  []byte
		want    error
		written bool // slot b was written: a failure, not a refusal
		// stream: Install, reading the same bytes as a stream, gives the
		// same verdict. (It finds a truncated bundle, or one that goes on
		// after its initrd, only after writing slot b.)
		stream bool
	}{
		{"flipped bit in a fetched chunk", flip(rootAt + int(fetched.Offset+fetched.Size/2)), bundle.ErrHashMismatch, true, true},
		// The kernel is slot a's: its chunks are not fetched, so a bit
		// flipped there in the bundle is never read.
		{"flipped bit in the kernel", flip(rootAt + len(arts[0]) + 100), nil, true, false},
		{"flipped bit in the initrd", flip(len(good) - 100), bundle.ErrHashMismatch, true, true},
		{"flipped bit in the index", flip(head + 40), bundle.ErrHashMismatch, false, true},
		{"flipped bit in the index's last byte", flip(rootAt - 1), bundle.ErrHashMismatch, false, true},
		{"index of other artifacts", f.bundleOf(t, f.key, nil, bundle.IndexedInstallOrder, [][]byte{otherIdx, arts[0], arts[1], arts[2]}), delta.ErrCorrupt, false, true},
		{"index that is not one", f.bundleOf(t, f.key, nil, bundle.IndexedInstallOrder, [][]byte{[]byte("not an index"), arts[0], arts[1], arts[2]}), bundle.ErrCorrupt, false, true},
		{"wrong key", f.indexed(t, f.other, nil, order, arts), bundle.ErrUnknownKey, false, true},
		{"flipped bit in the manifest", flip(head - 80), bundle.ErrBadSignature, false, true},
		{"other compatible", f.indexed(t, f.key, func(m *bundle.Manifest) { m.Compatible = "other" }, order, arts), install.ErrIncompatible, false, true},
		{"older version", f.indexed(t, f.key, func(m *bundle.Manifest) { m.Version = "0.1" }, order, arts), install.ErrDowngrade, false, true},
		{"truncated", good[:len(good)-1], bundle.ErrTruncated, false, false},
		{"truncated in the header", good[:10], bundle.ErrTruncated, false, true},
		{"a byte after the initrd", append(bytes.Clone(good), 0), bundle.ErrCorrupt, false, false},
		{"not a bundle", []byte("<html>not found</html>"), bundle.ErrCorrupt, false, true},
	}
	name := f.copyDisk(t)
	pristine := readFile(t, name)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, stream := range []bool{false, true} {
				if stream && !tt.stream {
					continue
				}
				d := open(t, name)
				before := snapshot(t, &d.Target, "a")
				var err error
				if stream { // the same bundle through Install
					var b *bundle.Reader
					if b, err = install.OpenBundle(bytes.NewReader(tt.bundle), []ed25519.PublicKey{f.pub}); err == nil {
						_, err = install.Install(context.Background(), d.Target, b, install.Options{})
					}
				} else {
					_, err = install.InstallDelta(context.Background(), d.Target, serve(t, tt.bundle).source(), []ed25519.PublicKey{f.pub}, fast)
				}
				t.Logf("stream %v: %v", stream, err)
				if !errors.Is(err, tt.want) {
					t.Errorf("stream %v: error %v, want %v", stream, err, tt.want)
				}
				if install.IsRefused(err) == tt.written {
					t.Errorf("stream %v: refused (nothing written) %v, want %v", stream, install.IsRefused(err), !tt.written)
				}
				d.Close()
				if !tt.written && !bytes.Equal(readFile(t, name), pristine) {
					t.Fatalf("stream %v: the disk changed", stream)
				}
				d = open(t, name)
				snapshot(t, &d.Target, "a").diff(t, before)
				es, _ := d.Loader.Entries(d.ESP)
				for _, e := range es {
					if e.Slot == "b" && tt.want != nil {
						t.Errorf("slot b has an entry after a failed install: %s", e.File)
					}
				}
				if names, err := d.ESP.ReadDir("/keel/b"); err == nil {
					for _, n := range names {
						if strings.HasSuffix(n, ".tmp") {
							t.Errorf("/keel/b/%s left behind", n)
						}
					}
				}
				fsckESP(t, d.File, d.Layout, false)
				d.Close()
				if err := os.WriteFile(name, pristine, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestDeltaNoRanges: from a server that ignores range requests (every
// answer the whole file, 200), a delta install would fetch the bytes
// before each chunk again; InstallDelta sees the first range come back
// from the start and reads the rest of the bundle as one stream instead.
func TestDeltaNoRanges(t *testing.T) {
	f := getDeltaFixture(t)
	bb := f.indexed(t, f.key, nil, bundle.InstallOrder, f.arts[:])
	want := f.fullInstall(t, bb)
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(bb)))
		n, _ := w.Write(bb)
		sent.Add(int64(n))
	}))
	defer srv.Close()
	name := f.copyDisk(t)
	d := open(t, name)
	res, err := install.InstallDelta(context.Background(), d.Target, fetch.URL(srv.Client(), srv.URL, nil), []ed25519.PublicKey{f.pub}, fast)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bundle %d bytes: fetched %d in %d requests, reused %d; the server sent %d", len(bb), res.Fetched, res.Requests, res.Reused, sent.Load())
	if res.Reused != 0 || res.Fetched < int64(len(bb)) || res.Fetched > int64(len(bb))+2*int64(len(bb)-len(f.arts[0])-len(f.arts[1])-len(f.arts[2])) {
		t.Errorf("fetched %d, reused %d: want the bundle once (and its head again)", res.Fetched, res.Reused)
	}
	d.Close()
	if !bytes.Equal(readFile(t, name), want) {
		t.Fatal("the disk differs from the disk after a full install")
	}
}

// TestDeltaSlotIndex: the running slot's index on the ESP is a hint, not
// trusted. One that is not an index is ignored (the slot is chunked); one
// that lies (the new bundle's own index, as if slot a held v2) sends the
// install to read chunks that are not there, which are fetched instead.
// Either way the disk comes out as a full install leaves it.
func TestDeltaSlotIndex(t *testing.T) {
	f := getDeltaFixture(t)
	bb := f.indexed(t, f.key, nil, bundle.InstallOrder, f.arts[:])
	for _, tt := range []struct {
		name  string
		index []byte
	}{
		{"garbage", []byte("not an index")},
		{"lies", artifact(t, bb, bundle.Index)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := f.copyDisk(t)
			d := open(t, name)
			if err := d.ESP.WriteFile(install.IndexPath("a"), bytes.NewReader(tt.index), int64(len(tt.index))); err != nil {
				t.Fatal(err)
			}
			d.Close()
			before := readFile(t, name)
			d = open(t, name)
			res, err := install.InstallDelta(context.Background(), d.Target, serve(t, bb).source(), []ed25519.PublicKey{f.pub}, fast)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("fetched %d of %d, reused %d", res.Fetched, len(bb), res.Reused)
			if res.Fetched+res.Reused != int64(len(bb))+1 {
				t.Errorf("fetched %d + reused %d, want the bundle's %d + 1", res.Fetched, res.Reused, len(bb))
			}
			d.Close()
			// The same install onto the same disk, whole.
			name2 := f.copyDisk(t)
			if err := os.WriteFile(name2, before, 0o644); err != nil {
				t.Fatal(err)
			}
			d2 := open(t, name2)
			b, err := install.OpenBundle(bytes.NewReader(bb), []ed25519.PublicKey{f.pub})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := install.Install(context.Background(), d2.Target, b, install.Options{}); err != nil {
				t.Fatal(err)
			}
			d2.Close()
			if !bytes.Equal(readFile(t, name), readFile(t, name2)) {
				t.Fatal("the disk differs from the disk after a full install")
			}
		})
	}
}

// TestDeltaResume cuts the connection in the middle of three ranges a
// delta install fetches (the index, a run of rootfs chunks, the initrd):
// each is opened again where it broke off, the install completes with the
// disk a full install leaves, and it fetches no more than without cuts.
func TestDeltaResume(t *testing.T) {
	f := getDeltaFixture(t)
	bb := f.indexed(t, f.key, nil, bundle.InstallOrder, f.arts[:])
	want := f.fullInstall(t, bb)
	br, err := bundle.OpenUnverified(bytes.NewReader(bb))
	if err != nil {
		t.Fatal(err)
	}
	idx := artifact(t, bb, bundle.Index)
	head, rootAt := br.HeadSize(), br.HeadSize()+int64(len(idx))
	c := f.missingChunk(t, idx)
	cuts := []int64{head + int64(len(idx))/2, rootAt + c.Offset + c.Size/2, int64(len(bb) - len(f.arts[2])/2)}

	o := install.Options{Fetch: fetch.Options{Backoff: time.Millisecond, Retries: 3}}
	var fetched [2]int64
	var requests [2]int
	for i, cut := range []bool{false, true} {
		name := f.copyDisk(t)
		d := open(t, name)
		var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "bundle.keel", time.Unix(1700000000, 0), bytes.NewReader(bb))
		})
		var done atomic.Int64
		if cut {
			// The Cutter forgets a cut once a response starts after
			// it: the request for the last byte (the end check) goes
			// around it.
			cutter := fetchtest.NewCutter(h, cuts, func(int64) { done.Add(1) })
			whole := h
			end := fmt.Sprintf("bytes=%d-", len(bb)-1)
			h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.Header.Get("Range"), end) {
					whole.ServeHTTP(w, r)
					return
				}
				cutter.ServeHTTP(w, r)
			})
		}
		srv := httptest.NewServer(h)
		res, err := install.InstallDelta(context.Background(), d.Target, fetch.URL(srv.Client(), srv.URL, nil), []ed25519.PublicKey{f.pub}, o)
		srv.Close()
		if err != nil {
			t.Fatalf("cut %v: %v", cut, err)
		}
		d.Close()
		if !bytes.Equal(readFile(t, name), want) {
			t.Fatalf("cut %v: the disk differs from the disk after a full install", cut)
		}
		fetched[i], requests[i] = res.Fetched, res.Requests
		t.Logf("cut %v: fetched %d bytes in %d requests", cut, res.Fetched, res.Requests)
		if cut && (done.Load() != int64(len(cuts)) || res.Requests != requests[0]+len(cuts)) {
			t.Errorf("%d of the %d cuts made; %d requests, %d without cuts", done.Load(), len(cuts), res.Requests, requests[0])
		}
	}
	if fetched[1] > fetched[0]*11/10 {
		t.Errorf("fetched %d bytes with cuts, %d without", fetched[1], fetched[0])
	}
}
