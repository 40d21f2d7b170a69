package main

import (
	"crypto/ed25519"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"keel/image/bundle"
	"keel/image/install"
)

type updateOptions struct {
	keys           []string
	allowDowngrade bool
	tries          int
}

func newUpdateCmd(g *globals) *cobra.Command {
	o := &updateOptions{}
	cmd := &cobra.Command{
		Use:   "update DISK BUNDLE",
		Short: "Install an update bundle into the inactive slot of a disk image",
		Long: `Apply a signed update bundle to a keel disk image file, offline: the same
install that keelctl runs on a device. DISK may also be a block device
holding a keel disk that is not running (a card in a reader). The slot that is not the newest good
entry's gets the bundle's root filesystem and its kernel and initrd (or
unified kernel image), and a trial
entry keel-<slot>+<tries>.conf with the next generation, so the next boot
tries it and falls back by itself if it does not come up healthy.

The bundle's signature must verify with one of the --key public keys, and its
compatible string and architecture must match the image's, and its version
must not be older (unless --allow-downgrade), before anything is written.
The running slot's partition, kernel, initrd and entry are never touched.
A bundle ends with its last artifact (the initrd or the unified kernel
image): one with anything after it is refused (after
the other slot was written, exit 1). The disk image is locked while it is
updated: a second update of the same disk is refused (exit 3). Files written
to the ESP are stamped with SOURCE_DATE_EPOCH (0 when unset), as keel build
stamps them.

` + updateExitCodes, Example: `  keel update out/busybox.img out/busybox-2.0.0.keel --key release.pub`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(o.keys) == 0 {
				return usagef("no --key: name the public key(s) the bundle must be signed with")
			}
			var trusted []ed25519.PublicKey
			for _, k := range o.keys {
				pub, err := bundle.ReadPublicKey(k)
				if err != nil {
					return usageError{err}
				}
				trusted = append(trusted, pub)
			}
			bf, err := os.Open(args[1])
			if err != nil {
				return usageError{err}
			}
			defer bf.Close()
			fi, err := bf.Stat()
			if err != nil {
				return err
			}
			b, err := install.OpenBundle(bf, trusted)
			if err != nil {
				return fmt.Errorf("bundle %s refused: %w", args[1], err)
			}
			b.Padded = bundle.IsDevice(fi)
			when, err := install.FileTime(os.Getenv)
			if err != nil {
				return usageError{err}
			}
			d, err := install.OpenFile(args[0], when)
			if err != nil {
				return err
			}
			defer d.Close()
			res, err := install.Install(cmd.Context(), d.Target, b, install.Options{
				Tries: o.tries, AllowDowngrade: o.allowDowngrade, Logger: g.logger(), Progress: stageProgress(),
			})
			if install.IsRefused(err) {
				return fmt.Errorf("bundle %s refused: %w", args[1], err)
			}
			if err != nil {
				return fmt.Errorf("update %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "installed %s %s into slot %s of %s: entry %s, generation %d (was running %s %s from slot %s)\n",
				res.Image.Name, res.Image.Version, res.Slot, args[0], res.Entry, res.Generation, d.Running.Name, d.Running.Version, d.Booted)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&o.keys, "key", nil, "trusted public key file (repeatable)")
	cmd.Flags().BoolVar(&o.allowDowngrade, "allow-downgrade", false, "install a version older than the image's")
	cmd.Flags().IntVar(&o.tries, "tries", 0, "trial boots before the loader falls back (default: the image's update.tries, else 3)")
	return cmd
}

// updateExitCodes ends keel update's help: the table of root.go's
// exitCodesHelp, with what each code means for an update.
const updateExitCodes = `Exit codes:
  0  installed
  1  failed: the bundle was found bad (a tampered or truncated artifact, data
     after the initrd) or writing failed after writing the other slot began;
     parts of the other slot may have been written, never the running slot,
     and no entry points at what was written
  2  bad usage: flags, arguments, a key or bundle file that does not read
  3  refused, nothing written: the bundle (no or a bad signature, an
     untrusted key, a corrupt or truncated header or manifest, another
     compatible string or architecture, an older version, a root filesystem
     larger than the slot), the disk's state (no good entry, a damaged boot
     entry), or another update of the disk running`
