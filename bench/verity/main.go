// Command verity is the keel side of bench/verity.sh: it runs verity.Write
// on one file, data and hash area both in it, as
//
//	veritysetup format --data-blocks N --hash-offset X --salt HEX --uuid U FILE FILE
//
// does (and, like veritysetup, syncs the file at the end), and prints the
// root hash.
package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strings"

	"keel/rootfs/verity"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "verity:", err)
		os.Exit(1)
	}
}

func run() error {
	blocks := flag.Int64("data-blocks", 0, "data blocks of 4096 bytes")
	hashOffset := flag.Int64("hash-offset", -1, "byte offset of the superblock (default: the end of the data)")
	saltHex := flag.String("salt", "", "salt in hex, - for none")
	uuidStr := flag.String("uuid", "", "superblock UUID, 8-4-4-4-12 hex digits")
	workers := flag.Int("workers", 0, "hashing goroutines (0: GOMAXPROCS)")
	flag.Parse()
	if flag.NArg() != 1 || *blocks <= 0 {
		return fmt.Errorf("usage: verity -data-blocks N [-hash-offset X] [-salt HEX] [-uuid U] [-workers W] FILE")
	}
	if *hashOffset < 0 {
		*hashOffset = *blocks * verity.BlockSize
	}
	var salt []byte
	if *saltHex != "-" {
		var err error
		if salt, err = hex.DecodeString(*saltHex); err != nil {
			return fmt.Errorf("salt %q: %w", *saltHex, err)
		}
	}
	u, err := hex.DecodeString(strings.ReplaceAll(*uuidStr, "-", ""))
	if err != nil || len(u) != 16 {
		return fmt.Errorf("uuid %q is not 16 bytes of hex", *uuidStr)
	}
	var uuid [16]byte
	copy(uuid[:], u)
	f, err := os.OpenFile(flag.Arg(0), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := verity.Write(context.Background(), f, *blocks*verity.BlockSize, f, *hashOffset, salt, uuid, *workers)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Printf("Root hash: %x\n", info.RootHash)
	return nil
}
