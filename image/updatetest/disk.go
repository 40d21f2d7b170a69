package updatetest

import (
	"fmt"
	"os"
	"strings"
	"time"

	"keel/image/disk"
	"keel/image/install"
	"keel/image/updatetest/wire"
)

// prepareDisk makes dst the copy of the disk image src that keel test
// boots: byte for byte, but every boot entry's command line gets
// keel.test=ControlPort, which wakes keel-init's test agent. An install
// keeps the parameter: a new slot's entry takes the booted entry's command
// line. src is only read.
func prepareDisk(src, dst string) error {
	if err := disk.CopySparse(src, dst); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	d, err := install.OpenFile(dst, time.Unix(0, 0).UTC())
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	defer d.Close()
	es, err := d.Loader.Entries(d.ESP)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	param := wire.Param + "=" + ControlPort
	for _, e := range es {
		if e.EFI != "" {
			return fmt.Errorf("%s: slot %s boots a unified kernel image, whose command line is inside the signed image: keel test needs an image whose entries name a kernel and initrd (no boot.uki)", src, e.Slot)
		}
		if strings.Contains(" "+e.Options+" ", " "+param+" ") {
			continue
		}
		e.Options = strings.TrimSpace(e.Options + " " + param)
		if err := d.Loader.WriteEntry(d.ESP, e.Entry); err != nil {
			return fmt.Errorf("%s: slot %s's entry: %w", dst, e.Slot, err)
		}
	}
	if err := d.ESP.Sync(); err != nil {
		return err
	}
	return d.File.Sync()
}

// copyPadded copies a bundle to dst, padded with zeros to whole 4 KiB
// sectors, as on a disk: keelctl reads a bundle on a block device to its
// last artifact and ignores the rest.
func copyPadded(src, dst string) error {
	if err := disk.CopySparse(src, dst); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	fi, err := os.Stat(dst)
	if err != nil {
		return err
	}
	if r := fi.Size() % 4096; r != 0 {
		return os.Truncate(dst, fi.Size()+4096-r)
	}
	return nil
}
