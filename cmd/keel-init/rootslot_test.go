package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keel/rootfs/verity"
)

func TestCheckVerity(t *testing.T) {
	const data = 300 * verity.BlockSize
	img := filepath.Join(t.TempDir(), "slot")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte("keel"), data/4), 0); err != nil {
		t.Fatal(err)
	}
	info, err := verity.Write(context.Background(), f, data, f, data, []byte("salt"), [16]byte{1}, 2)
	if err != nil {
		t.Fatal(err)
	}
	other := bytes.Clone(info.RootHash)
	other[0] ^= 1
	for _, tc := range []struct {
		name   string
		params bootParams
		want   string // "" for success
	}{
		{"the image's own", bootParams{RootHash: info.RootHash, VerityOffset: data}, ""},
		{"another root hash", bootParams{RootHash: other, VerityOffset: data}, "does not hold the root this kernel was built for"},
		{"the tree elsewhere", bootParams{RootHash: info.RootHash, VerityOffset: data - verity.BlockSize}, "verity superblock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb, err := checkVerity(f, "/dev/vda2", tc.params)
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want == "" && sb.DataBlocks != data/verity.BlockSize:
				t.Errorf("superblock: %d data blocks", sb.DataBlocks)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
