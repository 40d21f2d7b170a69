package squashfs_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"keel/rootfs"
	"keel/rootfs/squashfs"
)

// TestLevelsDistinct writes the same tree at every level keel accepts and
// wants a different image from each: a level that silently meant the same as
// another would promise a trade-off that is not there.
func TestLevelsDistinct(t *testing.T) {
	tree := textTree(t)
	for _, c := range squashfs.Compressions {
		t.Run(string(c), func(t *testing.T) {
			seen := map[string]int{}
			for _, level := range squashfs.Levels(c) {
				img, st := writeMem(t, tree, squashfs.Options{Compression: c, Level: level, Workers: 2}, nil)
				data := string(afterOptions(t, img))
				if prev, ok := seen[data]; ok {
					t.Errorf("level %d writes the same image as level %d", level, prev)
				}
				seen[data] = level
				t.Logf("level %d: %d bytes", level, st.Bytes)
			}
		})
	}
}

// TestLevelsRefused checks that every level outside Levels is refused, with
// a message that names the accepted ones, and that 0 means the default.
func TestLevelsRefused(t *testing.T) {
	cases := []struct {
		comp squashfs.Compression
		want string // in the error for every refused level
		dflt int
	}{
		{squashfs.Zstd, "use 1, 3, 7, 11 (keel's pure-Go zstd encoder has four strengths)", squashfs.DefaultZstdLevel},
		{squashfs.XZ, "use 6 (keel's pure-Go LZMA2 encoder has one strength)", squashfs.DefaultXZLevel},
		{squashfs.Gzip, "use 1 to 9", squashfs.DefaultGzipLevel},
	}
	for _, tc := range cases {
		t.Run(string(tc.comp), func(t *testing.T) {
			accepted := map[int]bool{}
			for _, l := range squashfs.Levels(tc.comp) {
				accepted[l] = true
			}
			if !accepted[tc.dflt] {
				t.Errorf("default level %d is not among the accepted %v", tc.dflt, squashfs.Levels(tc.comp))
			}
			for level := -1; level <= 23; level++ {
				err := squashfs.Options{Compression: tc.comp, Level: level}.Validate()
				switch {
				case level == 0 || accepted[level]:
					if err != nil {
						t.Errorf("level %d: %v", level, err)
					}
				case err == nil:
					t.Errorf("level %d accepted, want refused", level)
				case !strings.Contains(err.Error(), fmt.Sprintf("%s level %d is not supported: %s", tc.comp, level, tc.want)):
					t.Errorf("level %d: error %q does not contain %q", level, err, tc.want)
				}
			}
		})
	}
}

// afterOptions returns the image after the superblock and the compressor
// options, which record the level and so always differ.
func afterOptions(t *testing.T, img []byte) []byte {
	t.Helper()
	const superblockSize, flagCompOpts = 96, 0x0400
	if binary.LittleEndian.Uint16(img[24:])&flagCompOpts == 0 {
		return img[superblockSize:]
	}
	n := int(binary.LittleEndian.Uint16(img[superblockSize:]) &^ 0x8000)
	return img[superblockSize+2+n:]
}

// textTree is a tree of compressible, not trivially repetitive text and a
// little binary, about 1 MiB: enough matches at every distance for encoder
// strengths to show.
func textTree(t *testing.T) *rootfs.Tree {
	rng := rand.New(rand.NewPCG(13, 13))
	words := make([]string, 3000)
	for i := range words {
		w := make([]byte, 2+rng.IntN(9))
		for j := range w {
			w[j] = byte('a' + rng.IntN(26))
		}
		words[i] = string(w)
	}
	tree := rootfs.New()
	for i := range 12 {
		var b bytes.Buffer
		size := 1000 + rng.IntN(200<<10)
		for b.Len() < size {
			// A skewed choice, as in real text: a few words are common.
			b.WriteString(words[int(float64(len(words))*rng.Float64()*rng.Float64()*rng.Float64())])
			if rng.IntN(12) == 0 {
				b.WriteString(".\n")
			} else {
				b.WriteByte(' ')
			}
			if rng.IntN(50) == 0 {
				b.WriteByte(byte(rng.Uint32()))
			}
		}
		add(t, tree, fmt.Sprintf("/f%02d.txt", i), rootfs.NewFile(0o644, b.Bytes()))
	}
	return tree
}
