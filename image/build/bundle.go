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
	root := bundle.Source{Name: bundle.Rootfs, Size: res.RootBytes, Open: func() (io.ReadCloser, error) {
		f, err := os.Open(o.Output)
		if err != nil {
			return nil, err
		}
		return section{io.NewSectionReader(f, res.RootOffset, res.RootBytes), f}, nil
	}}
	m := bundle.Manifest{Name: p.Name, Version: p.Version, Compatible: p.Compatible, Arch: p.Arch}
	if v := res.Verity; v != nil {
		m.Verity = &bundle.Verity{RootHash: hex.EncodeToString(v.RootHash), Salt: hex.EncodeToString(v.Salt), DataBlocks: v.DataBlocks, HashOffset: v.HashOffset}
	}
	srcs := []bundle.Source{root}
	if p.Boot.UKI {
		u, err := bundle.FileSource(bundle.UKI, ukiFile)
		if err != nil {
			return err
		}
		srcs = append(srcs, u)
	} else {
		k, err := bundle.FileSource(bundle.Kernel, kernel)
		if err != nil {
			return err
		}
		i, err := bundle.FileSource(bundle.Initrd, initrd)
		if err != nil {
			return err
		}
		srcs = append(srcs, k, i)
	}
	if err := bundle.WriteFile(ctx, name, m, o.SignKey, srcs); err != nil {
		return err
	}
	// Read the id back rather than recompute it: it is the one the bundle
	// carries.
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	br, err := bundle.OpenUnverified(f)
	if err != nil {
		return err
	}
	res.Bundle, res.BuildID = name, br.Manifest.BuildID
	return nil
}

// section is a slot of an open disk image, closed with the file.
type section struct {
	*io.SectionReader
	io.Closer
}
