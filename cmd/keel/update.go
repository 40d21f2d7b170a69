package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"time"

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
install that keelctl runs on a device. The slot that is not the newest good
entry's gets the bundle's root filesystem, kernel and initrd, and a trial
entry keel-<slot>+<tries>.conf with the next generation, so the next boot
tries it and falls back by itself if it does not come up healthy.

The bundle's signature must verify with one of the --key public keys, and its
compatible string and architecture must match the image's, and its version
must not be older (unless --allow-downgrade), before anything is written.
The running slot's partition, kernel, initrd and entry are never touched.

Exit codes: 0 installed, 1 refused or failed, 2 bad usage.`,
		Example: `  keel update out/busybox.img out/busybox-2.0.0.keel --key release.pub`,
		Args:    exactArgs(2),
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
			b, err := bundle.Open(bf, trusted)
			if err != nil {
				return fmt.Errorf("bundle %s refused: %w", args[1], err)
			}
			epoch, err := sourceDateEpoch()
			if err != nil {
				return usageError{err}
			}
			d, err := install.OpenFile(args[0], time.Unix(max(epoch, 0), 0).UTC())
			if err != nil {
				return err
			}
			defer d.Close()
			res, err := install.Install(cmd.Context(), d.Target, b, install.Options{
				Tries: o.tries, AllowDowngrade: o.allowDowngrade, Logger: g.logger(), Progress: stageProgress(),
			})
			if errors.Is(err, install.ErrIncompatible) || errors.Is(err, install.ErrWrongArch) || errors.Is(err, install.ErrDowngrade) {
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
