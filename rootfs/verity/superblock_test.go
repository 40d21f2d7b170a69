package verity

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
)

// written returns a hash area as Write writes it (superblock at 0) and the
// superblock that should be read back from it.
func written(t testing.TB, salt []byte) ([]byte, Superblock) {
	t.Helper()
	const blocks = 300
	data := bytes.Repeat([]byte("keel"), blocks*BlockSize/4)
	var out memFile
	if _, err := Write(context.Background(), bytes.NewReader(data), blocks*BlockSize, &out, blocks*BlockSize, salt, testUUID, 1); err != nil {
		t.Fatal(err)
	}
	return out.b[blocks*BlockSize:], Superblock{
		Version: 1, HashType: 1, UUID: testUUID, Algorithm: "sha256",
		DataBlockSize: BlockSize, HashBlockSize: BlockSize, DataBlocks: blocks, Salt: salt,
	}
}

func TestReadSuperblockRoundTrip(t *testing.T) {
	for _, salt := range [][]byte{{}, {0}, []byte("salt"), bytes.Repeat([]byte{0xee}, maxSalt)} {
		area, want := written(t, salt)
		// Read it at a block offset past some other bytes, as on a slot.
		disk := append(bytes.Repeat([]byte{0xff}, 2*BlockSize), area...)
		got, err := ReadSuperblock(bytes.NewReader(disk), 2*BlockSize)
		if err != nil {
			t.Fatalf("salt %x: %v", salt, err)
		}
		if got.Version != want.Version || got.HashType != want.HashType || got.UUID != want.UUID ||
			got.Algorithm != want.Algorithm || got.DataBlockSize != want.DataBlockSize ||
			got.HashBlockSize != want.HashBlockSize || got.DataBlocks != want.DataBlocks || !bytes.Equal(got.Salt, want.Salt) {
			t.Errorf("salt %x: read %+v, want %+v", salt, got, want)
		}
		if b := got.marshal(); !bytes.Equal(b, area[:superblockSize]) {
			t.Errorf("salt %x: read and encoded again, the superblock differs:\n%x\nwant\n%x", salt, b, area[:superblockSize])
		}
	}
}

func TestReadSuperblockRefuses(t *testing.T) {
	good, _ := written(t, []byte("salt"))
	le := binary.LittleEndian
	for _, tc := range []struct {
		name   string
		change func(b []byte)
		want   string // in the error
	}{
		{"magic", func(b []byte) { b[offMagic+6] = '!' }, "magic"},
		{"zero magic", func(b []byte) { copy(b, make([]byte, 8)) }, "magic"},
		{"version 0", func(b []byte) { le.PutUint32(b[offVersion:], 0) }, "version: 0, want 1"},
		{"version 2", func(b []byte) { le.PutUint32(b[offVersion:], 2) }, "version: 2"},
		{"hash type 0 (Chrome OS)", func(b []byte) { le.PutUint32(b[offHashType:], 0) }, "hash type: 0, want 1"},
		{"hash type 2", func(b []byte) { le.PutUint32(b[offHashType:], 2) }, "hash type: 2"},
		{"sha1", func(b []byte) { copy(b[offAlgorithm:], "sha1\x00\x00") }, `algorithm: "sha1"`},
		{"sha512", func(b []byte) { copy(b[offAlgorithm:], "sha512") }, `algorithm: "sha512"`},
		{"SHA256", func(b []byte) { copy(b[offAlgorithm:], "SHA256") }, `algorithm: "SHA256"`},
		{"sha256 with bytes after the NUL", func(b []byte) { b[offAlgorithm+10] = 'x' }, "algorithm"},
		{"algorithm without NUL", func(b []byte) { copy(b[offAlgorithm:], strings.Repeat("a", 32)) }, "algorithm"},
		{"data block size 512", func(b []byte) { le.PutUint32(b[offDataBlockSize:], 512) }, "data block size: 512, want 4096"},
		{"hash block size 1024", func(b []byte) { le.PutUint32(b[offHashBlockSize:], 1024) }, "hash block size: 1024, want 4096"},
		{"no data blocks", func(b []byte) { le.PutUint64(b[offDataBlocks:], 0) }, "data blocks: 0"},
		{"data blocks past 2^63 bytes", func(b []byte) { le.PutUint64(b[offDataBlocks:], math.MaxInt64/BlockSize+1) }, "data blocks"},
		{"salt size 257", func(b []byte) { le.PutUint16(b[offSaltSize:], 257) }, "salt size: 257, want at most 256"},
		{"salt size 65535", func(b []byte) { le.PutUint16(b[offSaltSize:], 65535) }, "salt size: 65535"},
		{"padding after salt size", func(b []byte) { b[offPad1+5] = 1 }, "padding after salt size: byte 87"},
		{"salt beyond its size", func(b []byte) { b[offSalt+4] = 1 }, "salt beyond salt size: byte 92"},
		{"padding after salt", func(b []byte) { b[superblockSize-1] = 0x80 }, "padding after salt: byte 511"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(good[:superblockSize])
			tc.change(b)
			_, err := ReadSuperblock(bytes.NewReader(b), 0)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrBadSuperblock) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want ErrBadSuperblock and %q", err, tc.want)
			}
		})
	}
}

// TestReadSuperblockCannotRead covers offsets and devices it cannot read a
// superblock from: errors that are not ErrBadSuperblock.
func TestReadSuperblockCannotRead(t *testing.T) {
	good, _ := written(t, nil)
	for _, tc := range []struct {
		name string
		r    io.ReaderAt
		off  int64
		want string
	}{
		{"negative offset", bytes.NewReader(good), -BlockSize, "offset -4096"},
		{"unaligned offset", bytes.NewReader(good), 512, "offset 512"},
		{"last block offset of int64", bytes.NewReader(good), math.MaxInt64 - BlockSize + 1, "unexpected EOF"},
		{"past the end", bytes.NewReader(good), int64(len(good)), "unexpected EOF"},
		{"short", bytes.NewReader(good[:superblockSize-1]), 0, "unexpected EOF"},
		{"empty", bytes.NewReader(nil), 0, "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadSuperblock(tc.r, tc.off)
			if err == nil || errors.Is(err, ErrBadSuperblock) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one with %q that is not ErrBadSuperblock", err, tc.want)
			}
		})
	}
}

func TestTable(t *testing.T) {
	sb := Superblock{
		Version: 1, HashType: 1, Algorithm: "sha256", DataBlockSize: BlockSize, HashBlockSize: BlockSize,
		DataBlocks: 102400, Salt: []byte{0x00, 0x11, 0x22, 0x33},
	}
	root := bytes.Repeat([]byte{0xab}, 32)
	for _, tc := range []struct {
		name string
		salt []byte
		want string
	}{
		{"salt", sb.Salt, "1 /dev/vda3 /dev/vda3 4096 4096 102400 102401 sha256 " + strings.Repeat("ab", 32) + " 00112233"},
		{"empty salt", nil, "1 /dev/vda3 /dev/vda3 4096 4096 102400 102401 sha256 " + strings.Repeat("ab", 32) + " -"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sb
			s.Salt = tc.salt
			if got := s.Table("/dev/vda3", 102400*BlockSize, root); got != tc.want {
				t.Errorf("Table:\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
	if got := sb.Sectors(); got != 102400*8 {
		t.Errorf("Sectors %d, want %d", got, 102400*8)
	}
}

// FuzzReadSuperblock feeds ReadSuperblock arbitrary bytes: it must never
// panic, and what it accepts must encode back to the same 512 bytes (every
// byte is either a checked field or a reserved zero) and render a table.
func FuzzReadSuperblock(f *testing.F) {
	for _, salt := range [][]byte{nil, []byte("salt"), bytes.Repeat([]byte{1}, maxSalt)} {
		area, _ := written(f, salt)
		f.Add(area[:superblockSize])
	}
	good, _ := written(f, []byte("salt"))
	bad := bytes.Clone(good[:superblockSize])
	binary.LittleEndian.PutUint16(bad[offSaltSize:], 300)
	f.Add(bad)
	f.Add(good[:100])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		sb, err := ReadSuperblock(bytes.NewReader(data), 0)
		if err != nil {
			return
		}
		if b := sb.marshal(); !bytes.Equal(b, data[:superblockSize]) {
			t.Fatalf("accepted superblock encodes to other bytes:\n%x\nread\n%x", b, data[:superblockSize])
		}
		if fields := strings.Fields(sb.Table("/dev/x", BlockSize*int64(sb.DataBlocks), make([]byte, 32))); len(fields) != 10 {
			t.Fatalf("table has %d fields: %q", len(fields), fields)
		}
	})
}
