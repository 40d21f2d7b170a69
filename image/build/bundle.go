package build

import (
	"context"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"

	"keel/image/bundle"
	"keel/profiles"
)

// BundlePath is where a build's bundle goes by default: NAME-VERSION.keel
// beside the disk image.
func BundlePath(output string, p *profiles.Profile) string {
	return filepath.Join(filepath.Dir(output), p.Name+"-"+p.Version+".keel")
}

// writeBundle writes the signed update bundle of a finished build. Its
// rootfs is read back from slot A of the disk just written, and its kernel
// and initrd are the files copied to the ESP, so the bundle carries exactly
// the bytes this build booted from.
func writeBundle(ctx context.Context, p *profiles.Profile, o Options, res *Result, kernel, initrd, ukiFile string) error {
	name := o.Bundle
	if name == "" {
		name = BundlePath(o.Output, p)
	}
	f, err := os.Open(o.Output)
	if err != nil {
		return err
	}
	defer f.Close()
	srcs, err := slotSources(io.NewSectionReader(f, res.RootOffset, res.RootBytes), res, p.Boot.UKI, kernel, initrd, ukiFile)
	if err != nil {
		return err
	}
	m := bundle.Manifest{Name: p.Name, Version: p.Version, Compatible: p.Compatible, Arch: p.Arch}
	if v := res.Verity; v != nil {
		m.Verity = &bundle.Verity{RootHash: hex.EncodeToString(v.RootHash), Salt: hex.EncodeToString(v.Salt), DataBlocks: v.DataBlocks, HashOffset: v.HashOffset}
	}
	// The index the ESP got: the same artifacts, so the same bytes.
	srcs = append([]bundle.Source{bundle.BytesSource(bundle.Index, res.Index)}, srcs...)
	if err := bundle.WriteFile(ctx, name, m, o.SignKey, srcs); err != nil {
		return err
	}
	// Read the id back rather than recompute it: it is the one the bundle
	// carries.
	bf, err := os.Open(name)
	if err != nil {
		return err
	}
	defer bf.Close()
	br, err := bundle.OpenUnverified(bf)
	if err != nil {
		return err
	}
	res.Bundle, res.BuildID = name, br.Manifest.BuildID
	return nil
}

// slotSources are the artifacts of slot a in install order (without the
// index): the rootfs, read from root (slot a), then the kernel and initrd
// or the unified kernel image, from the files the ESP got.
func slotSources(root io.ReaderAt, res *Result, useUKI bool, kernel, initrd, ukiFile string) ([]bundle.Source, error) {
	srcs := []bundle.Source{bundle.SectionSource(bundle.Rootfs, root, 0, res.RootBytes)}
	files := [][2]string{{bundle.Kernel, kernel}, {bundle.Initrd, initrd}}
	if useUKI {
		files = [][2]string{{bundle.UKI, ukiFile}}
	}
	for _, f := range files {
		s, err := bundle.FileSource(f[0], f[1])
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, s)
	}
	return srcs, nil
}
