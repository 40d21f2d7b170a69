package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"keel/cmd/keel-init/dmverity"
	"keel/rootfs/verity"
)

// rootDevice finds the slot and its partition. A kernel+initrd entry says
// both (root=, keel.slot=). A unified kernel image's signed command line
// says neither, so one image boots from either slot: the slot is the one
// the boot loader says it booted, and its partition the one labelled
// root-<slot> on the disk the loader was started from.
func rootDevice(con *console, params *bootParams, wait time.Duration) (blockDev, error) {
	if params.Root.Kind != "" {
		return waitForDevice(sysClassBlock, params.Root, "", wait)
	}
	_, boot := bootInfo(con)
	if params.Slot == "" {
		if boot.Slot == "" {
			return blockDev{}, fmt.Errorf("no root= or keel.slot= on the kernel command line, and the boot loader names no slot (no LoaderEntrySelected: was this booted by systemd-boot?)")
		}
		params.Slot = boot.Slot
	}
	disk := ""
	if boot.ESPPartUUID != "" {
		if esp, err := waitForDevice(sysClassBlock, devSpec{"PARTUUID", boot.ESPPartUUID}, "", wait); err == nil {
			disk = esp.Disk
		} else {
			con.logf("WARNING: the ESP the loader started from: %v", err)
		}
	}
	return waitForDevice(sysClassBlock, devSpec{"PARTLABEL", "root-" + params.Slot}, disk, wait)
}

// verityRoot sets up the dm-verity device of the root partition dev and
// returns the node to mount. The tree starts at the command line's
// keel.verity= offset; its superblock gives the salt and sizes, and before
// the kernel is asked, the tree's top block is checked against roothash=,
// so that a slot holding another image fails here, with a clear message,
// rather than at the first read. Every block read later is checked by the
// kernel: a changed one is an I/O error.
func verityRoot(con *console, dev string, params bootParams) (string, error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", fmt.Errorf("verity: %w", err)
	}
	sb, err := checkVerity(f, dev, params)
	f.Close()
	if err != nil {
		return "", err
	}
	table := sb.Table(dev, params.VerityOffset, params.RootHash)
	node, _, err := dmverity.Create("keel-root", "verity", sb.Sectors(), table, "/dev")
	if err != nil {
		return "", err
	}
	con.logf("verity: %s checked against root hash %s", dev, hex.EncodeToString(params.RootHash)[:16])
	return node, nil
}

// mountRoot mounts the squashfs of the root partition at sysroot, through
// dm-verity when the command line has a root hash.
func mountRoot(con *console, root blockDev, params bootParams) (string, error) {
	src := "/dev/" + root.Name
	if params.RootHash != nil {
		node, err := verityRoot(con, src, params)
		if err != nil {
			return "", err
		}
		src = node
	}
	if err := unix.Mount(src, sysroot, "squashfs", unix.MS_RDONLY, ""); err != nil {
		return "", fmt.Errorf("mounting root %s (squashfs, read-only) on %s: %w", src, sysroot, err)
	}
	return src, nil
}

// checkVerity reads the superblock of the tree at the command line's
// offset of the partition r (named dev) and checks the tree's top block
// against the command line's root hash.
func checkVerity(r io.ReaderAt, dev string, params bootParams) (verity.Superblock, error) {
	sb, err := verity.ReadSuperblock(r, params.VerityOffset)
	if err != nil {
		return sb, fmt.Errorf("verity superblock of %s at %d: %w", dev, params.VerityOffset, err)
	}
	if int64(sb.DataBlocks)*int64(sb.DataBlockSize) != params.VerityOffset {
		return sb, fmt.Errorf("verity superblock of %s covers %d blocks of %d bytes, but the tree starts at %d", dev, sb.DataBlocks, sb.DataBlockSize, params.VerityOffset)
	}
	top := make([]byte, sb.HashBlockSize)
	if _, err := r.ReadAt(top, params.VerityOffset+int64(sb.HashBlockSize)); err != nil {
		return sb, fmt.Errorf("verity: reading the tree's top block on %s: %w", dev, err)
	}
	h := sha256.New()
	h.Write(sb.Salt)
	h.Write(top)
	if got := h.Sum(nil); !bytes.Equal(got, params.RootHash) {
		return sb, fmt.Errorf("%s does not hold the root this kernel was built for: its verity root hash is %x, the command line's %x", dev, got, params.RootHash)
	}
	return sb, nil
}
