package format

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// rawImage writes a sparse raw image of size bytes with data at each
// offset given (written zeros too: they are data to SEEK_DATA but must not
// be stored).
func rawImage(t *testing.T, size int64, writes map[int64][]byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "src.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for off, b := range writes {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func fill(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7+i/251)
	}
	return b
}

func convert(t *testing.T, src string, f Format) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	st, _ := in.Stat()
	out := filepath.Join(t.TempDir(), "out."+f.String())
	o, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := Write(context.Background(), o, in, st.Size(), f); err != nil {
		t.Fatal(err)
	}
	return out
}

func qemuImg(t *testing.T, args ...string) []byte {
	t.Helper()
	return tool(t, "qemu-img", args...)
}

func tool(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// TestQEMUReadsBack converts raw images to each format and has qemu-img
// check the result, report its format and size, and convert it back to
// the same bytes.
func TestQEMUReadsBack(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img not installed (.ci/run installs it: qemu-utils)")
	}
	const mib = 1 << 20
	// big is more than 4 GiB: vhdx's BAT interleaves a sector bitmap
	// entry after 4096 blocks of 1 MiB, which this disk crosses.
	const big = 4<<30 + 8*mib + 1536
	images := []struct {
		name   string
		size   int64
		writes map[int64][]byte
		// patterned: each write is one byte repeated; qemu-io checks
		// them and the zeros around them instead of a byte-by-byte
		// comparison, which for vhdx (no block status in QEMU) would
		// read every byte of the big sparse disk.
		patterned bool
		maxOut    int64 // most bytes any output may take
	}{
		{"holes and odd places", 20*mib + 1536, map[int64][]byte{
			0:                 fill(4096, 1),
			12345:             fill(100, 2),
			cluster - 3:       fill(10, 3),             // across a cluster boundary
			3*mib + 512:       make([]byte, 2*cluster), // written zeros
			5*mib + 7:         fill(300000, 4),
			20*mib + 1536 - 1: {0xff}, // the very last byte, in a partial cluster
		}, false, 8 * mib},
		{"all zero", 8 * mib, map[int64][]byte{mib: make([]byte, mib)}, false, 5 * mib},
		{"one sector", 512, map[int64][]byte{0: fill(512, 5)}, false, 5 * mib},
		{"4GiB sparse", big, map[int64][]byte{
			0:                  bytes.Repeat([]byte{0x11}, mib),
			2<<30 + 3*cluster:  bytes.Repeat([]byte{0x22}, 5000),
			4<<30 + 3*mib + 17: bytes.Repeat([]byte{0x33}, 3000),
			big - 512:          bytes.Repeat([]byte{0x44}, 512),
		}, true, 12 * mib},
	}
	for _, im := range images {
		src := rawImage(t, im.size, im.writes)
		var raw []byte
		if !im.patterned {
			var err error
			if raw, err = os.ReadFile(src); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range []Format{QCOW2, VMDK, VHDX} {
			t.Run(im.name+"/"+f.String(), func(t *testing.T) {
				out := convert(t, src, f)
				qemuImg(t, "check", "-f", f.String(), out)
				var info struct {
					Format      string `json:"format"`
					VirtualSize int64  `json:"virtual-size"`
				}
				if err := json.Unmarshal(qemuImg(t, "info", "-f", f.String(), "--output", "json", out), &info); err != nil {
					t.Fatal(err)
				}
				if info.Format != f.String() || info.VirtualSize != im.size {
					t.Errorf("qemu-img info: %s of %d bytes, want %s of %d", info.Format, info.VirtualSize, f, im.size)
				}
				if st, err := os.Stat(out); err != nil || st.Size() > im.maxOut {
					t.Errorf("output is %d bytes, more than %d: are zeros stored? (%v)", st.Size(), im.maxOut, err)
				}
				if im.patterned {
					tool(t, "qemu-io", qemuIOChecks(f, out, im.size, im.writes)...)
				} else {
					back := filepath.Join(t.TempDir(), "back.raw")
					qemuImg(t, "convert", "-f", f.String(), "-O", "raw", out, back)
					b, err := os.ReadFile(back)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(b, raw) {
						t.Errorf("converted back, %d bytes differ from the %d-byte source", len(b), len(raw))
					}
				}
				if f == VMDK {
					checkVMDKRedundant(t, out)
				}
				again := convert(t, src, f)
				if a, b := digest(t, out), digest(t, again); a != b {
					t.Error("two conversions of one image differ")
				}
			})
		}
	}
}

// qemuIOChecks are qemu-io's arguments to read each of writes back and
// the zeros between them (the first MiB of each gap and its last sector).
func qemuIOChecks(f Format, img string, size int64, writes map[int64][]byte) []string {
	args := []string{"-r", "-f", f.String()}
	offs := slices.Sorted(maps.Keys(writes))
	at := int64(0)
	for _, off := range append(offs, size) {
		if gap := off - at; gap > 0 {
			args = append(args, "-c", fmt.Sprintf("read -P 0 %d %d", at, min(gap, 1<<20)))
			args = append(args, "-c", fmt.Sprintf("read -P 0 %d %d", off-min(gap, 512), min(gap, 512)))
		}
		if off < size {
			b := writes[off]
			args = append(args, "-c", fmt.Sprintf("read -P %d %d %d", b[0], off, len(b)))
			at = off + int64(len(b))
		}
	}
	return append(args, img)
}

func digest(t *testing.T, p string) string {
	t.Helper()
	out, err := exec.Command("sha256sum", p).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))[0]
}

// TestReaderSource: a source that is no file (so no SEEK_DATA) converts
// to the same bytes as the file, and other content gets other
// identifiers.
func TestReaderSource(t *testing.T) {
	writes := map[int64][]byte{100: fill(1000, 9), 3 << 20: fill(70000, 10)}
	src := rawImage(t, 5<<20, writes)
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []Format{Raw, QCOW2, VMDK, VHDX} {
		var fromReader bytes.Buffer
		if err := Write(t.Context(), &fromReader, bytes.NewReader(raw), int64(len(raw)), f); err != nil {
			t.Fatal(err)
		}
		fromFile, err := os.ReadFile(convert(t, src, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fromReader.Bytes(), fromFile) {
			t.Errorf("%s: converting from a reader and from the file differ", f)
		}
		if f == Raw && !bytes.Equal(fromFile, raw) {
			t.Error("raw: not the source's bytes")
		}
		raw2 := bytes.Clone(raw)
		raw2[101] ^= 1
		var other bytes.Buffer
		if err := Write(t.Context(), &other, bytes.NewReader(raw2), int64(len(raw2)), f); err != nil {
			t.Fatal(err)
		}
		// The metadata before the data: for vmdk (the descriptor) and
		// vhdx (the headers) it holds the identifiers derived from the
		// content; in qcow2 nothing depends on the content but where the
		// data is.
		meta := map[Format][2]int{QCOW2: {0, 192 << 10}, VMDK: {0, 64 << 10}, VHDX: {64 << 10, 128 << 10}}[f]
		if f != Raw {
			same := bytes.Equal(other.Bytes()[meta[0]:meta[1]], fromFile[meta[0]:meta[1]])
			if want := f == QCOW2; same != want {
				t.Errorf("%s: metadata of other content: same %v, want %v", f, same, want)
			}
		}
	}
}

func TestDetect(t *testing.T) {
	src := rawImage(t, 1<<20, map[int64][]byte{0: fill(512, 1)})
	for _, f := range []Format{QCOW2, VMDK, VHDX} {
		fd, err := os.Open(convert(t, src, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := Detect(fd)
		fd.Close()
		if err != nil || got != f {
			t.Errorf("Detect(%s image) = %v, %v", f, got, err)
		}
	}
	for _, b := range [][]byte{nil, []byte("QFI"), fill(4096, 1)} {
		if got, err := Detect(bytes.NewReader(b)); err != nil || got != Raw {
			t.Errorf("Detect(% x...) = %v, %v, want raw", b[:min(len(b), 8)], got, err)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    Format
		wantErr bool
	}{
		{"raw", Raw, false}, {"qcow2", QCOW2, false}, {"VMDK", VMDK, false}, {"vhdx", VHDX, false},
		{"vhd", 0, true}, {"", 0, true}, {"qcow", 0, true},
	} {
		got, err := ParseFormat(c.in)
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("ParseFormat(%q) = %v, %v", c.in, got, err)
		}
		if err == nil && got.String() != strings.ToLower(c.in) {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
}

// shortReader is a 1 MiB source that claims nothing about its size.
type shortReader struct{ *bytes.Reader }

func TestWriteErrors(t *testing.T) {
	src := bytes.NewReader(make([]byte, 1<<20))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		name    string
		ctx     context.Context
		size    int64
		f       Format
		want    string
		wantErr error
	}{
		{"zero size", nil, 0, QCOW2, "a disk needs at least one sector", ErrSize},
		{"negative size", nil, -512, VMDK, "a disk needs at least one sector", ErrSize},
		{"not sectors", nil, 1000, VHDX, "1000 bytes is not a whole number of 512-byte sectors", ErrSize},
		{"half a sector short", nil, 1<<20 - 256, QCOW2, "not a whole number", ErrSize},
		{"vmdk too big", nil, 4 << 40, VMDK, "more than vmdk holds", ErrSize},
		{"vhdx too big", nil, 128 << 40, VHDX, "more than vhdx holds", ErrSize},
		{"unknown format", nil, 1 << 20, Format(9), "unknown image format 9", nil},
		{"source too short", nil, 2 << 20, QCOW2, "source ends at 1048576, before the disk's size", nil},
		{"cancelled", cancelled, 1 << 20, VHDX, "context canceled", context.Canceled},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := c.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			err := Write(ctx, &bytes.Buffer{}, shortReader{src}, c.size, c.f)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if c.wantErr != nil && !errors.Is(err, c.wantErr) {
				t.Errorf("err = %v, not %v", err, c.wantErr)
			}
		})
	}
	// A file shorter than the size is refused before anything is read.
	p := rawImage(t, 1<<20, nil)
	fd, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if err := Write(t.Context(), &bytes.Buffer{}, fd, 2<<20, QCOW2); err == nil || !strings.Contains(err.Error(), fmt.Sprint("shorter than the disk's ", 2<<20)) {
		t.Errorf("short file: %v", err)
	}
}

// checkVMDKRedundant: the redundant grain directory's tables map every
// grain where the primary's do (qemu-img reads only the primary).
func checkVMDKRedundant(t *testing.T, img string) {
	t.Helper()
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	capacity, grain, gtes := int64(le.Uint64(b[12:])), int64(le.Uint64(b[20:])), int64(le.Uint32(b[44:]))
	rgd, gd := int64(le.Uint64(b[48:])), int64(le.Uint64(b[56:]))
	if le.Uint32(b[8:])&2 == 0 || rgd == 0 || rgd == gd {
		t.Fatalf("no redundant grain directory: flags %#x, rgd %d, gd %d", le.Uint32(b[8:]), rgd, gd)
	}
	nGT := (capacity/grain + gtes - 1) / gtes
	for i := range nGT {
		r, p := int64(le.Uint32(b[rgd*512+i*4:])), int64(le.Uint32(b[gd*512+i*4:]))
		if r == 0 || p == 0 || r == p {
			t.Fatalf("grain table %d: redundant at sector %d, primary at %d", i, r, p)
		}
		if !bytes.Equal(b[r*512:r*512+gtes*4], b[p*512:p*512+gtes*4]) {
			t.Fatalf("grain table %d: redundant copy differs", i)
		}
	}
}
