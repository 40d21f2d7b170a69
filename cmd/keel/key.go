package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"keel/image/bundle"
)

func newKeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage the keys that sign update bundles",
	}
	cmd.AddCommand(newKeyGenerateCmd())
	return cmd
}

func newKeyGenerateCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "generate NAME",
		Short: "Make an ed25519 key pair for signing update bundles",
		Long: `Write NAME.key (the private key, mode 0600: keep it off devices and out of
version control) and NAME.pub (the public key) into the directory, and print
the public key's id. Existing files are never overwritten.

List NAME.pub in a profile's update.keys so its images trust bundles signed
with NAME.key, and sign with: keel build --sign-key NAME.key PROFILE.`,
		Example: `  keel key generate --dir ~/.config/keel release`,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			pub, priv, err := bundle.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			if err := bundle.WriteKeyPair(dir, args[0], pub, priv); err != nil {
				if errors.Is(err, fs.ErrExist) {
					return refusedError{err} // as keel secureboot keys: nothing written
				}
				return err
			}
			base := filepath.Join(dir, args[0])
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "wrote %s.key (secret) and %s.pub\n", base, base)
			fmt.Fprintf(w, "key id %s\n", bundle.KeyID(pub))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".", "directory to write the key files into")
	return cmd
}
