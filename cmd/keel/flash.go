package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"keel/image/flash"
	"keel/image/format"
)

type flashOptions struct {
	yes      bool
	noVerify bool
}

func newFlashCmd() *cobra.Command {
	o := &flashOptions{}
	cmd := &cobra.Command{
		Use:   "flash IMAGE DEVICE",
		Short: "Write a raw or qcow2 disk image onto a block device, and verify it",
		Long: `Write the disk in IMAGE (raw, or qcow2 as keel build --format qcow2 or
qemu-img writes it) onto DEVICE, a whole block device such as /dev/sdb, or
an existing regular file standing for one. Only the image's data is
written: its zero ranges are zeroed by the device (BLKZEROOUT; a punched
hole in a file), never left holding the device's old bytes. The first MiB
(MBR and primary GPT) is cleared first and written last, so a flash cut
short leaves no partition table over half-written partitions. The device is
then read back (past the page cache) and compared with the image, unless
--no-verify.

Refused, with nothing written: a device that is mounted (or any of its
partitions, or a device mapper, RAID or loop device on it), the disk this
machine runs from, a device used as swap or held by LVM, RAID or LUKS, a
partition rather than a disk, a read-only device, one smaller than the
image, a missing device (no file is created in its place).

Without --yes, keel flash shows the device (size, model, partitions) and
asks to type yes; when stdin is not a terminal it refuses instead.

` + flashExitCodes,
		Example: `  keel flash out/busybox.img /dev/sdb
  keel flash --yes out/busybox.qcow2 /dev/mmcblk0`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := format.OpenImage(args[0])
			if err != nil {
				// Missing, unsupported (vmdk, a qcow2 feature) or broken:
				// the image is the caller's to fix.
				return usageError{err}
			}
			defer img.Close()
			dev := args[1]
			tgt, err := flash.Check(dev, img.Size())
			if err != nil {
				return flashErr(err)
			}
			if same(args[0], dev) || (tgt.Backing != "" && same(args[0], tgt.Backing)) {
				return refusedError{fmt.Errorf("%w: %s is the image itself", flash.ErrRefused, dev)}
			}
			if !o.yes {
				if err := confirm(cmd.ErrOrStderr(), tgt); err != nil {
					return err
				}
			}
			opts := flash.Options{NoVerify: o.noVerify}
			if p := progress(os.Stderr); p != nil {
				opts.Progress = labelled(p, "writing "+dev)
				opts.VerifyProgress = labelled(p, "verifying "+dev)
			}
			st, err := flash.Flash(cmd.Context(), img, dev, opts)
			if err != nil {
				return flashErr(err)
			}
			secs := st.Duration.Seconds()
			verified := ", not verified"
			if !o.noVerify {
				verified = fmt.Sprintf(", verified in %.1fs", st.Verify.Seconds())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "flashed %s (%s, %s) onto %s in %.1fs (%.0f MB/s): %s written, %s of zeros skipped%s\n",
				args[0], img.Format(), human(st.Size), dev, secs, float64(st.Size)/1e6/max(secs, 1e-3),
				human(st.Written), human(st.Zeroed), verified)
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.yes, "yes", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&o.noVerify, "no-verify", false, "do not read the device back")
	return cmd
}

// labelled prints label on a line of its own before the first progress
// report of p.
func labelled(p func(done, total int64), label string) func(done, total int64) {
	var once sync.Once
	return func(done, total int64) {
		once.Do(func() { fmt.Fprintln(os.Stderr, label) })
		p(done, total)
	}
}

// same tells whether two paths name the same file.
func same(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// flashErr makes a refusal exit 3.
func flashErr(err error) error {
	if errors.Is(err, flash.ErrRefused) {
		return refusedError{fmt.Errorf("%w: %w", flash.ErrRefused, err)}
	}
	return err
}

// confirm shows what a flash would destroy and asks for "yes" on a
// terminal; without one it refuses.
func confirm(w io.Writer, t *flash.Target) error {
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return refusedError{fmt.Errorf("%w: stdin is not a terminal to confirm on: pass --yes to overwrite %s", flash.ErrRefused, t.Path)}
	}
	what := "file"
	if t.Device {
		what = "device " + t.Name
	}
	fmt.Fprintf(w, "%s: %s, %s", t.Path, what, human(t.Size))
	if t.Model != "" {
		fmt.Fprintf(w, ", %s", t.Model)
	}
	if len(t.Partitions) > 0 {
		fmt.Fprintf(w, ", partitions %s", strings.Join(t.Partitions, " "))
	}
	fmt.Fprintf(w, "\nEverything on %s will be destroyed. Type yes to go on: ", t.Path)
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return refusedError{fmt.Errorf("%w: not confirmed", flash.ErrRefused)}
	}
	return nil
}

// flashExitCodes ends keel flash's help: root.go's exit codes, with what
// each means for a flash.
const flashExitCodes = `Exit codes:
  0  flashed (and verified, unless --no-verify)
  1  failed: reading the image, writing, or the read-back differs; the
     device may hold part of the image, with no valid primary GPT unless
     the write itself completed
  2  bad usage: flags, arguments, an image that does not open, a format
     other than raw and qcow2
  3  refused, nothing written: the device is mounted, the host's disk,
     swap, held, a partition, read-only, smaller than the image or
     missing; or not confirmed`
