package bundle

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"testing"
)

// recorder keeps what is written and each write's length; it fails the
// write that would pass failAt bytes (0: never).
type recorder struct {
	bytes.Buffer
	writes []int
	failAt int
}

var errDisk = errors.New("disk on fire")

func (r *recorder) Write(p []byte) (int, error) {
	if r.failAt > 0 && r.Len()+len(p) > r.failAt {
		return 0, errDisk
	}
	r.writes = append(r.writes, len(p))
	return r.Buffer.Write(p)
}

// TestWriteTo copies artifacts with io.Copy, which takes the artifact's
// WriteTo (hashing beside the copy): the same bytes and verdicts as Read,
// in writes of whole buffers.
func TestWriteTo(t *testing.T) {
	pub, priv := testKey(t, 1)
	good, content := writeBundle(t, priv)
	head, err := HeadSize(good)
	if err != nil {
		t.Fatal(err)
	}
	rootLen := len(content[Rootfs])
	flipped := bytes.Clone(good)
	flipped[head+int64(rootLen)-1] ^= 1 // the rootfs's last byte
	tests := []struct {
		name   string
		bundle []byte
		failAt int   // the rootfs's writer fails past this many bytes
		err    error // from copying the rootfs
	}{
		{"good", good, 0, nil},
		{"flipped last byte", flipped, 0, ErrHashMismatch},
		{"truncated", good[:head+int64(rootLen)/2], 0, ErrTruncated},
		{"write error", good, copyBufferSize + 10, errDisk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br, err := Open(bytes.NewReader(tt.bundle), []ed25519.PublicKey{pub})
			if err != nil {
				t.Fatal(err)
			}
			a, r, err := br.Next()
			if err != nil || a.Name != Rootfs {
				t.Fatal(a.Name, err)
			}
			if _, ok := r.(io.WriterTo); !ok {
				t.Fatal("an artifact reader is not an io.WriterTo")
			}
			w := &recorder{failAt: tt.failAt}
			n, err := io.Copy(w, r)
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("io.Copy: %v, want %v", err, tt.err)
			}
			if n != int64(w.Len()) {
				t.Errorf("WriteTo says %d bytes, the writer got %d", n, w.Len())
			}
			for i, l := range w.writes {
				if l != copyBufferSize && i != len(w.writes)-1 {
					t.Errorf("write %d of %d bytes, want %d", i, l, copyBufferSize)
				}
			}
			switch tt.err {
			case nil:
				if !bytes.Equal(w.Bytes(), content[Rootfs]) {
					t.Fatal("copied bytes differ")
				}
				got, err := readAll(br)
				if err != nil || !bytes.Equal(got[Kernel], content[Kernel]) {
					t.Fatalf("after the rootfs: %v", err)
				}
			case errDisk:
				// What was written is the start; the rest still reads,
				// and the verdict covers every byte.
				if !bytes.Equal(w.Bytes(), content[Rootfs][:w.Len()]) {
					t.Fatal("written bytes differ")
				}
				if _, err := io.ReadAll(r); err != nil {
					t.Fatalf("reading on after a write error: %v", err)
				}
			default:
				if _, _, err := br.Next(); !errors.Is(err, tt.err) {
					t.Errorf("Next after a bad artifact: %v", err)
				}
			}
		})
	}
}
