package build

import (
	"context"
	"crypto/sha256"
	"slices"

	"keel/image/disk"
	"keel/profiles"
	"keel/rootfs/verity"
)

// writeVerity writes slot a's hash tree after its squashfs of n bytes, in
// the same partition: one slot stays one stream to install, and the A/B
// layout gains no partitions (rootfs/verity says more). The squashfs is
// zero-padded to a whole block first.
func writeVerity(ctx context.Context, w disk.ReadWriterAt, n int64, seed []byte, p *profiles.Profile, workers int) (*verity.Info, error) {
	data := (n + verity.BlockSize - 1) / verity.BlockSize * verity.BlockSize
	if pad := data - n; pad > 0 {
		if _, err := w.WriteAt(make([]byte, pad), n); err != nil {
			return nil, err
		}
	}
	// Salt and UUID come from the image's name: reproducible, distinct
	// between products (what a salt is for), and the same from one
	// version to the next, so the tree's blocks over unchanged data stay
	// the same and a delta update fetches only the changed ones.
	salt := sha256.Sum256(append(append([]byte{}, seed...), "\x00verity salt"...))
	v, err := verity.Write(ctx, w, data, w, data, salt[:], uuid16(seed, "verity"), workers)
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// initrdModules is the profile's module list, plus what keel-init needs for
// the boot the profile asks for: dm-verity for a verity root, efivarfs to
// read which entry systemd-boot booted when the command line (a UKI's,
// shared by both slots) does not say. Only a modular kernel (one with a
// module list) gets them added; a kernel without modules has them built in
// or cannot boot such an image anyway.
func initrdModules(p *profiles.Profile) []string {
	mods := slices.Clone(p.Kernel.Modules)
	if len(mods) == 0 {
		return mods
	}
	add := func(m string) {
		if !slices.Contains(mods, m) {
			mods = append(mods, m)
		}
	}
	if p.Disk.Verity {
		add("dm_verity")
	}
	if p.Boot.UKI {
		add("efivarfs")
	}
	return mods
}
