package verity

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func randomData(blocks int, seed uint64) []byte {
	b := make([]byte, blocks*BlockSize)
	rng := rand.New(rand.NewPCG(seed, 0))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func TestHashSize(t *testing.T) {
	for _, tc := range []struct {
		blocks int64
		want   int64 // in blocks, the superblock's included
	}{
		{1, 1},
		{2, 1 + 1},
		{128, 1 + 1},
		{129, 1 + 2 + 1},
		{128 * 128, 1 + 128 + 1},
		{128*128 + 1, 1 + 129 + 2 + 1},
		{102400, 1 + 800 + 7 + 1}, // 400 MiB
	} {
		if got := HashSize(tc.blocks * BlockSize); got != tc.want*BlockSize {
			t.Errorf("HashSize(%d blocks) = %d, want %d blocks", tc.blocks, got, tc.want)
		}
	}
}

// TestReproducible writes the same data with several worker counts, twice
// each, onto a zeroed and a dirty device: the hash area must be the same
// bytes every time (Write zeros the rest of the superblock's block, which
// veritysetup leaves as it was).
func TestReproducible(t *testing.T) {
	const blocks = 1000 // not a whole number of read chunks
	data := randomData(blocks, 4)
	salt := []byte("reproducible")
	var want []byte
	var wantRoot []byte
	for _, workers := range []int{1, 1, 2, 4, 4, 7, 0} {
		for _, dirty := range []bool{false, true} {
			out := &memFile{}
			if dirty {
				out.b = bytes.Repeat([]byte{0xff}, blocks*BlockSize+int(HashSize(blocks*BlockSize)))
			}
			info, err := Write(context.Background(), bytes.NewReader(data), blocks*BlockSize, out, blocks*BlockSize, salt, testUUID, workers)
			if err != nil {
				t.Fatal(err)
			}
			area := out.b[blocks*BlockSize:]
			if int64(len(area)) != info.HashSize {
				t.Fatalf("workers %d: wrote %d bytes, Info.HashSize %d", workers, len(area), info.HashSize)
			}
			if want == nil {
				want, wantRoot = area, info.RootHash
				continue
			}
			if !bytes.Equal(area, want) || !bytes.Equal(info.RootHash, wantRoot) {
				t.Errorf("workers %d, dirty %v: hash area or root hash %x differs from the first write's (%x)", workers, dirty, info.RootHash, wantRoot)
			}
		}
	}
}

// errWriter fails every write.
type errWriter struct{}

func (errWriter) WriteAt([]byte, int64) (int, error) { return 0, errors.New("device gone") }

func TestWriteRefuses(t *testing.T) {
	data := randomData(10, 5)
	for _, tc := range []struct {
		name       string
		r          io.ReaderAt
		dataSize   int64
		w          io.WriterAt
		hashOffset int64
		salt       []byte
		want       string
	}{
		{"no data", bytes.NewReader(data), 0, &memFile{}, 0, nil, "data size 0"},
		{"negative data size", bytes.NewReader(data), -BlockSize, &memFile{}, 0, nil, "data size -4096"},
		{"data not in whole blocks", bytes.NewReader(data), BlockSize + 1, &memFile{}, 2 * BlockSize, nil, "data size 4097"},
		{"hash offset in the data", bytes.NewReader(data), 2 * BlockSize, &memFile{}, BlockSize, nil, "hash offset 4096"},
		{"hash offset not aligned", bytes.NewReader(data), 2 * BlockSize, &memFile{}, 2*BlockSize + 512, nil, "hash offset 8704"},
		{"salt too long", bytes.NewReader(data), 2 * BlockSize, &memFile{}, 2 * BlockSize, make([]byte, 257), "salt of 257 bytes"},
		{"hash area past 2^63", bytes.NewReader(data), 2 * BlockSize, &memFile{}, math.MaxInt64 - BlockSize + 1, nil, "overflows"},
		{"data shorter than its size", bytes.NewReader(data), 11 * BlockSize, &memFile{}, 11 * BlockSize, nil, "unexpected EOF"},
		{"one block, no data", bytes.NewReader(nil), BlockSize, &memFile{}, BlockSize, nil, "unexpected EOF"},
		{"write fails", bytes.NewReader(data), 10 * BlockSize, errWriter{}, 10 * BlockSize, nil, "device gone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Write(context.Background(), tc.r, tc.dataSize, tc.w, tc.hashOffset, tc.salt, testUUID, 2)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

func TestWriteCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	data := randomData(600, 6)
	out := &memFile{}
	_, err := Write(ctx, bytes.NewReader(data), int64(len(data)), out, int64(len(data)), nil, testUUID, 2)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	if len(out.b) != 0 {
		t.Errorf("a cancelled Write wrote %d bytes", len(out.b))
	}
}

// discard is an io.WriterAt that keeps nothing.
type discard struct{}

func (discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// BenchmarkWrite hashes 64 MiB of random data in memory with GOMAXPROCS
// workers (-cpu sets them); bench/verity.sh compares a file with
// veritysetup.
func BenchmarkWrite(b *testing.B) {
	data := randomData(64*256, 7)
	salt := bytes.Repeat([]byte{0x5a}, 32)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Write(context.Background(), bytes.NewReader(data), int64(len(data)), discard{}, int64(len(data)), salt, testUUID, 0); err != nil {
			b.Fatal(err)
		}
	}
}
