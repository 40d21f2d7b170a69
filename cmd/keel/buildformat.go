package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"keel/image/disk"
	"keel/image/format"
	"keel/profiles"
)

// setDiskSize applies keel build --size to the profile: the partitions
// keep their sizes, the disk grows (or shrinks) around them. A size that
// cannot hold them is a usage error naming the flag.
func setDiskSize(p *profiles.Profile, size string) error {
	if size == "" {
		return nil
	}
	n, err := profiles.ParseSize(size)
	if err != nil {
		return usagef("--size %s: %v", size, err)
	}
	d := &p.Disk
	sizes := disk.Sizes{Total: int64(n), ESP: int64(d.ESP), Slot: int64(d.Slot), Data: int64(d.Data), Arch: p.Arch}
	if _, err := disk.Plan(sizes, nil); err != nil {
		var se *disk.SizeError
		if errors.As(err, &se) && se.Field == "disk.size" {
			return usagef("--size %s: %s", size, se.Explain(func(n int64) string { return profiles.Size(n).String() }))
		}
		return usagef("--size %s: %v", size, err)
	}
	d.Size = n
	return nil
}

// tempBeside reserves a temporary file name in out's directory (hidden,
// ending in ext) for a file that is renamed or removed before keel exits.
func tempBeside(out, ext string) (string, error) {
	dir, base := filepath.Split(out)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*"+ext)
	if err != nil {
		return "", err
	}
	name := f.Name()
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// convertImage writes the raw disk image raw as f at out: to a temporary
// file beside out, synced and renamed into place when complete, so that a
// failure leaves whatever was at out before.
func convertImage(ctx context.Context, raw, out string, f format.Format, progress func(stage string, done, total int64)) (err error) {
	src, err := os.Open(raw)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	tmp, err := tempBeside(out, "")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	dst, err := os.OpenFile(tmp, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	defer dst.Close()
	stage := "converting to " + f.String()
	o := format.Options{Name: filepath.Base(out)}
	if progress != nil {
		progress(stage, 0, 0)
		o.Progress = func(done, total int64) { progress(stage, done, total) }
	}
	if err := format.WriteWith(ctx, dst, src, st.Size(), f, o); err != nil {
		return fmt.Errorf("%s: %w", out, err)
	}
	if err := dst.Chmod(0o644); err != nil {
		return err
	}
	if err := dst.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", out, err)
	}
	if err := dst.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}
