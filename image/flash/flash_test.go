package flash

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"keel/image/format"
)

// pattern is n bytes that are nowhere zero.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i%251) | 1
	}
	return b
}

// testImage writes a sparse raw image: data in the first MiB (where the
// partition table goes), zeros written as data in the middle of data (to
// be zeroed, not written), holes, data not on a 64 KiB boundary, and data
// in the last sector. Its size is whole sectors but not whole blocks.
func testImage(t *testing.T) (string, []byte) {
	t.Helper()
	const size = 24<<20 + 3*512
	b := make([]byte, size)
	for off, w := range map[int64][]byte{
		0:                  pattern(34*512, 1),
		512 << 10:          pattern(4096, 2),
		1<<20 - 512:        pattern(1024, 3), // across the head's end
		3 << 20:            pattern(2<<20, 4),
		3<<20 + 512<<10:    make([]byte, 256<<10), // zeros inside the data
		9<<20 + 4096*3:     pattern(4096, 5),
		20<<20 + 100:       pattern(70000, 6),
		size - 512:         pattern(512, 7),
		size - 512<<10 - 1: {9},
	} {
		copy(b[off:], w)
	}
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	// Written in pieces, with holes between, as a sparse image is.
	for off := int64(0); off < size; off += 1 << 20 {
		piece := b[off:min(off+1<<20, size)]
		if bytes.Count(piece, []byte{0}) == len(piece) {
			continue
		}
		if _, err := f.WriteAt(piece, off); err != nil {
			t.Fatal(err)
		}
	}
	return p, b
}

// ffFile makes a target file of size bytes, all 0xFF: a device's old
// content, which no byte of the flashed range may keep.
func ffFile(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(p, bytes.Repeat([]byte{0xff}, int(size)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// sources are the test image as raw, as keel's qcow2 and as qemu-img's
// qcow2, plain and compressed.
func sources(t *testing.T, raw string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	in, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	st, _ := in.Stat()
	keel := filepath.Join(dir, "keel.qcow2")
	out, err := os.Create(keel)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := format.Write(context.Background(), out, in, st.Size(), format.QCOW2); err != nil {
		t.Fatal(err)
	}
	srcs := map[string]string{"raw": raw, "keel qcow2": keel}
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img not installed (.ci/run installs it: qemu-utils)")
	}
	for name, args := range map[string][]string{"qemu-img qcow2": nil, "qemu-img qcow2 -c": {"-c"}} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		cmd := exec.Command("qemu-img", append(append([]string{"convert", "-f", "raw", "-O", "qcow2"}, args...), raw, p)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, b)
		}
		srcs[name] = p
	}
	return srcs
}

// TestFlashFile flashes each source onto a file full of 0xFF, larger than
// the image: the image's range must read back as the image, zeros
// included; the target's last MiB (an old backup GPT) is zeroed; the
// bytes between are left alone.
func TestFlashFile(t *testing.T) {
	raw, want := testImage(t)
	size := int64(len(want))
	const extra = 5 << 20
	for name, p := range sources(t, raw) {
		t.Run(name, func(t *testing.T) {
			img, err := format.OpenImage(p)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			dst := ffFile(t, size+extra)
			var last, calls int64
			st, err := Flash(context.Background(), img, dst, Options{Progress: func(done, total int64) {
				if done < last || total != size {
					t.Errorf("progress %d/%d after %d", done, total, last)
				}
				last, calls = done, calls+1
			}})
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(dst)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(got)) != size+extra {
				t.Fatalf("target is %d bytes, was %d", len(got), size+extra)
			}
			if i := firstDiff(got[:size], want); i >= 0 {
				t.Fatalf("target differs from the image at %d: %#x, want %#x", i, got[i], want[i])
			}
			if !bytes.Equal(got[size+extra-1<<20:], make([]byte, 1<<20)) {
				t.Error("the target's last MiB (where an old backup GPT is) was not zeroed")
			}
			if !bytes.Equal(got[size:size+extra-1<<20], bytes.Repeat([]byte{0xff}, extra-1<<20)) {
				t.Error("bytes past the image, before the target's last MiB, were changed")
			}
			if st.Size != size || st.Written+st.Zeroed != size || last != size {
				t.Errorf("stats %+v, progress ended at %d: want %d bytes, written and zeroed", st, last, size)
			}
			// Data is 3.5 MiB of the 24 MiB, in 64 KiB blocks.
			if st.Written > 4<<20 || st.Zeroed < 20<<20 {
				t.Errorf("wrote %d bytes and zeroed %d: zeros were written", st.Written, st.Zeroed)
			}
			if st.Verify == 0 {
				t.Error("not verified")
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}

// cutSource fails reading at or past an offset: a flash cut there.
type cutSource struct {
	Source
	at int64
}

var errCut = errors.New("cut")

func (c cutSource) ReadAt(b []byte, off int64) (int, error) {
	if off+int64(len(b)) > c.at {
		return 0, errCut
	}
	return c.Source.ReadAt(b, off)
}

// TestFlashCut: a flash cut while the body is written leaves the first
// MiB zero, so no partition table (old or new) points into the
// half-written disk; the old backup GPT at the target's end is gone too.
func TestFlashCut(t *testing.T) {
	raw, want := testImage(t)
	img, err := format.OpenImage(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	dst := ffFile(t, int64(len(want))+4<<20)
	_, err = Flash(context.Background(), cutSource{img, 9 << 20}, dst, Options{})
	if !errors.Is(err, errCut) {
		t.Fatalf("Flash = %v, want the cut", err)
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:1<<20], make([]byte, 1<<20)) {
		t.Error("after a cut the first MiB holds a partition table")
	}
	if !bytes.Equal(got[3<<20:5<<20], want[3<<20:5<<20]) {
		t.Error("the body before the cut was not written")
	}
	if !bytes.Equal(got[len(got)-1<<20:], make([]byte, 1<<20)) {
		t.Error("the old backup GPT at the target's end is still there")
	}
}

// TestFlashRefused: a target too small is refused with nothing written.
func TestFlashRefused(t *testing.T) {
	raw, want := testImage(t)
	img, err := format.OpenImage(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	dst := ffFile(t, int64(len(want))-512)
	_, err = Flash(context.Background(), img, dst, Options{})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "smaller than the image's") {
		t.Fatalf("Flash = %v, want refused as too small", err)
	}
	got, _ := os.ReadFile(dst)
	if !bytes.Equal(got, bytes.Repeat([]byte{0xff}, len(got))) {
		t.Error("a refused flash wrote to the target")
	}
}

// TestVerifyFails: the read-back finds a byte the target does not hold,
// and names its offset.
func TestVerifyFails(t *testing.T) {
	raw, want := testImage(t)
	img, err := format.OpenImage(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	dst := ffFile(t, int64(len(want)))
	if _, err := Flash(context.Background(), img, dst, Options{NoVerify: true}); err != nil {
		t.Fatal(err)
	}
	if err := verify(context.Background(), dst, img, nil); err != nil {
		t.Fatalf("verify after a good flash: %v", err)
	}
	for _, off := range []int64{0, 5<<20 + 17, int64(len(want)) - 1} {
		f, err := os.OpenFile(dst, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte{want[off] ^ 0x40}, off); err != nil {
			t.Fatal(err)
		}
		f.Close()
		err = verify(context.Background(), dst, img, nil)
		if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), fmt.Sprintf("at byte %d ", off)) {
			t.Errorf("verify with byte %d changed = %v", off, err)
		}
		f, _ = os.OpenFile(dst, os.O_WRONLY, 0)
		f.WriteAt(want[off:off+1], off)
		f.Close()
	}
}
