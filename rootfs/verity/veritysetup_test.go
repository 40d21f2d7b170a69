package verity

// Checks against cryptsetup's veritysetup, the reference writer and reader:
// the same inputs must give the same bytes and root hash, and veritysetup
// verify must accept what Write wrote and refuse it once a byte changes.

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// veritysetup returns the path of veritysetup. It lives in /usr/sbin, which
// a user's PATH may lack. Missing, the test fails rather than skips: these
// are the checks that give Write's output a meaning.
func veritysetup(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("veritysetup"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/veritysetup", "/sbin/veritysetup"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("veritysetup not found (in PATH, /usr/sbin or /sbin): install cryptsetup-bin")
	return ""
}

// runVeritysetup runs veritysetup and returns its stdout and whether it
// exited 0; a failure to start at all fails the test.
func runVeritysetup(t testing.TB, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(veritysetup(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, exit := err.(*exec.ExitError); err != nil && !exit {
		t.Fatalf("%s: %v", cmd, err)
	}
	return stdout.String() + stderr.String(), err == nil
}

func mustVeritysetup(t testing.TB, args ...string) string {
	t.Helper()
	out, ok := runVeritysetup(t, args...)
	if !ok {
		t.Fatalf("veritysetup %s failed:\n%s", strings.Join(args, " "), out)
	}
	return out
}

func uuidString(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func saltArg(salt []byte) string {
	if len(salt) == 0 {
		return "-" // veritysetup's spelling of no salt
	}
	return hex.EncodeToString(salt)
}

var testUUID = [16]byte{0x6b, 0x65, 0x65, 0x6c, 0x2d, 0x76, 0x65, 0x72, 0x69, 0x74, 0x79, 0x2d, 0x74, 0x65, 0x73, 0x74}

// field returns the value veritysetup printed after "name:".
func field(t testing.TB, out, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `:\s*(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q in veritysetup output:\n%s", name, out)
	}
	return m[1]
}

// dataKind says how a test file's data blocks are filled.
type dataKind int

const (
	random dataKind = iota // every block random
	sparse                 // a hole with a few random blocks: cheap at any size
)

// makeData writes blocks data blocks to path, the same bytes for the same
// seed, and returns the path.
func makeData(t testing.TB, path string, blocks int64, kind dataKind, seed uint64) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(seed, uint64(blocks)))
	block := make([]byte, BlockSize)
	fill := func(i int64) {
		for j := range block {
			block[j] = byte(rng.Uint32())
		}
		if _, err := f.WriteAt(block, i*BlockSize); err != nil {
			t.Fatal(err)
		}
	}
	switch kind {
	case random:
		for i := range blocks {
			fill(i)
		}
	case sparse:
		if err := f.Truncate(blocks * BlockSize); err != nil {
			t.Fatal(err)
		}
		for _, i := range []int64{0, 1, blocks / 3, blocks / 2, blocks - 2, blocks - 1} {
			fill(i)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// compareFiles reports the first difference between two files, as an
// offset and which of the hash area's parts it is in.
func compareFiles(t testing.TB, got, want string, hashOffset int64) {
	t.Helper()
	g, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if len(g) != len(w) {
		t.Errorf("keel's file is %d bytes, veritysetup's %d", len(g), len(w))
	}
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			where := "data"
			switch {
			case int64(i) >= hashOffset+BlockSize:
				where = fmt.Sprintf("hash block %d", (int64(i)-hashOffset)/BlockSize)
			case int64(i) >= hashOffset:
				where = "superblock"
			}
			t.Fatalf("first difference at byte %d (%s): keel %#02x, veritysetup %#02x", i, where, g[i], w[i])
		}
	}
}

func TestMatchesVeritysetup(t *testing.T) {
	salt32 := []byte("keel verity test salt, 32 bytes!")
	salt256 := bytes.Repeat([]byte{0xa5, 0x5a, 0x01, 0xfe}, 64)
	for _, tc := range []struct {
		name   string
		blocks int64
		kind   dataKind
		salt   []byte
		gap    int64 // blocks between the data and the superblock
	}{
		{"1 block", 1, random, salt32, 0},
		{"2 blocks", 2, random, salt32, 0},
		{"127 blocks", 127, random, salt32, 0},
		{"128 blocks", 128, random, salt32, 0},
		{"129 blocks", 129, random, salt32, 0},
		{"3 MiB + 1 block", 3*256 + 1, random, salt32, 0},
		{"5 MiB", 5 * 256, random, salt32, 0},
		{"128*128 blocks, two levels", 128 * 128, sparse, salt32, 0},
		{"128*128+1 blocks, three levels", 128*128 + 1, sparse, salt32, 0},
		{"empty salt", 300, random, nil, 0},
		{"1-byte salt", 300, random, []byte{0xff}, 0},
		{"256-byte salt", 300, random, salt256, 0},
		{"gap before the hash area", 129, random, salt32, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dataSize := tc.blocks * BlockSize
			hashOffset := dataSize + tc.gap*BlockSize
			ref := makeData(t, filepath.Join(dir, "veritysetup.img"), tc.blocks, tc.kind, 1)
			out := mustVeritysetup(t, "format",
				"--data-blocks", strconv.FormatInt(tc.blocks, 10),
				"--hash-offset", strconv.FormatInt(hashOffset, 10),
				"--salt", saltArg(tc.salt), "--uuid", uuidString(testUUID), ref, ref)

			path := makeData(t, filepath.Join(dir, "keel.img"), tc.blocks, tc.kind, 1)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			info, err := Write(context.Background(), f, dataSize, f, hashOffset, tc.salt, testUUID, 2)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}

			if got, want := hex.EncodeToString(info.RootHash), field(t, out, "Root hash"); got != want {
				t.Errorf("root hash %s, veritysetup %s", got, want)
			}
			hashBlocks, err := strconv.ParseInt(field(t, out, "Hash blocks"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			// veritysetup counts the tree's blocks, without the superblock's.
			if want := (hashBlocks + 1) * BlockSize; info.HashSize != want || HashSize(dataSize) != want {
				t.Errorf("Info.HashSize %d, HashSize %d; veritysetup's %d hash blocks and a superblock make %d",
					info.HashSize, HashSize(dataSize), hashBlocks, want)
			}
			if info.DataBlocks != uint64(tc.blocks) || info.HashOffset != hashOffset || !bytes.Equal(info.Salt, tc.salt) {
				t.Errorf("Info %+v, want %d data blocks, hash offset %d, salt %x", info, tc.blocks, hashOffset, tc.salt)
			}
			compareFiles(t, path, ref, hashOffset)
			if st, err := os.Stat(path); err != nil || st.Size() != hashOffset+info.HashSize {
				t.Errorf("file size %v (%v), want the end of the hash area %d", st.Size(), err, hashOffset+info.HashSize)
			}
		})
	}
}

// TestVeritysetupVerify has veritysetup check what Write wrote, then the
// same after one byte is changed in each part: the check must then fail,
// and Write over the changed data must give another root hash.
func TestVeritysetupVerify(t *testing.T) {
	const blocks = 1000
	const dataSize = blocks * BlockSize
	const hashOffset = dataSize
	salt := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	treeStart := int64(hashOffset + BlockSize)
	for _, tc := range []struct {
		name     string
		flip     int64 // byte to change, -1 for none
		dataFlip bool  // the change is in the data: keel's root hash must change too
	}{
		{"intact", -1, false},
		{"first data byte", 0, true},
		{"one data byte in the middle", 417*BlockSize + 123, true},
		{"last data byte", dataSize - 1, true},
		{"salt in the superblock", hashOffset + offSalt, false},
		{"top level of the tree", treeStart + 5, false},
		{"a leaf hash", HashSize(dataSize) + hashOffset - BlockSize, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := makeData(t, filepath.Join(t.TempDir(), "keel.img"), blocks, random, 2)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			info, err := Write(context.Background(), f, dataSize, f, hashOffset, salt, testUUID, 2)
			if err != nil {
				t.Fatal(err)
			}
			if tc.flip >= 0 {
				b := []byte{0}
				if _, err := f.ReadAt(b, tc.flip); err != nil {
					t.Fatal(err)
				}
				b[0] ^= 0x01
				if _, err := f.WriteAt(b, tc.flip); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{"verify", "--hash-offset", strconv.Itoa(hashOffset), "--data-blocks", strconv.Itoa(blocks),
				path, path, hex.EncodeToString(info.RootHash)}
			out, ok := runVeritysetup(t, args...)
			if ok != (tc.flip < 0) {
				t.Errorf("veritysetup %s: exit ok %v, want %v:\n%s", strings.Join(args, " "), ok, tc.flip < 0, out)
			}
			if !tc.dataFlip {
				return
			}
			again, err := Write(context.Background(), f, dataSize, &memFile{}, hashOffset, salt, testUUID, 2)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(again.RootHash, info.RootHash) {
				t.Errorf("root hash %x unchanged after a data byte changed", info.RootHash)
			}
		})
	}
}

// TestVeritysetupDump has veritysetup read the superblock Write wrote.
func TestVeritysetupDump(t *testing.T) {
	const blocks = 129
	salt := []byte("dump")
	path := makeData(t, filepath.Join(t.TempDir(), "keel.img"), blocks, random, 3)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Write(context.Background(), f, blocks*BlockSize, f, blocks*BlockSize, salt, testUUID, 1); err != nil {
		t.Fatal(err)
	}
	out := mustVeritysetup(t, "dump", "--hash-offset", strconv.Itoa(blocks*BlockSize), path)
	for name, want := range map[string]string{
		"UUID":            uuidString(testUUID),
		"Hash type":       "1",
		"Data blocks":     strconv.Itoa(blocks),
		"Data block size": "4096",
		"Hash block size": "4096",
		"Hash algorithm":  "sha256",
		"Salt":            hex.EncodeToString(salt),
	} {
		if got := field(t, out, name); got != want {
			t.Errorf("veritysetup dump: %s %q, want %q", name, got, want)
		}
	}
}

// memFile is a file in memory that grows as it is written.
type memFile struct{ b []byte }

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}
