package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"keel/bootloader/secureboot"
)

func newSecureBootCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secureboot",
		Short: "Manage UEFI Secure Boot keys",
	}
	cmd.AddCommand(newSecureBootKeysCmd())
	return cmd
}

func newSecureBootKeysCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "keys NAME",
		Short: "Make a Secure Boot key hierarchy (PK, KEK, db) and its enrollment files",
		Long: `Write into DIR (default ./NAME-secureboot, created with mode 0700):
PK.key KEK.key db.key (RSA 2048 private keys, mode 0600: keep them off
devices and out of version control), PK.crt KEK.crt db.crt (self-signed
certificates, common names "NAME PK", "NAME KEK", "NAME db"), and PK.auth
KEK.auth db.auth: the authenticated variables that enroll them in firmware
in setup mode (PK.auth and KEK.auth signed by PK, db.auth by KEK), as
efitools' sign-efi-sig-list writes them. Images are signed with db.key.

Existing files are never overwritten: if any of the nine exists, nothing
is written and keel exits 3.

` + exitCodesHelp,
		Example: `  keel secureboot keys acme
  keel secureboot keys acme -o ~/.config/keel/acme-secureboot`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if dir == "" {
				if name != filepath.Base(name) || name == "." || name == ".." {
					return usagef("key name %q: want a plain name, or give -o DIR", name)
				}
				dir = name + "-secureboot"
			}
			// The certificates' validity and the variables' timestamps
			// start now; firmware only needs the timestamp of a later
			// update of the same variable to be newer.
			err := secureboot.GenerateKeys(name, dir, time.Now())
			if errors.Is(err, fs.ErrExist) {
				return refusedError{err}
			}
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "wrote Secure Boot keys %q into %s:\n", name, dir)
			fmt.Fprintf(w, "  PK.key KEK.key db.key     private keys (secret)\n")
			fmt.Fprintf(w, "  PK.crt KEK.crt db.crt     certificates\n")
			fmt.Fprintf(w, "  PK.auth KEK.auth db.auth  enrollment for firmware in setup mode\n")
			fmt.Fprintf(w, "signature owner GUID %s\n", secureboot.OwnerGUID(name))
			fmt.Fprintf(w, "sign images and enroll the keys: keel build --sb-keys %s PROFILE\n", shellQuote(dir))
			fmt.Fprintf(w, "sign only: keel build --sb-key %s --sb-cert %s PROFILE\n",
				shellQuote(filepath.Join(dir, "db.key")), shellQuote(filepath.Join(dir, "db.crt")))
			return nil
		},
	}
	cmd.Flags().StringVarP(&dir, "output", "o", "", "directory to write the keys into (default ./NAME-secureboot)")
	return cmd
}

// refusedError marks a command's error that refused with nothing written,
// which exits 3 (install.RefusedError is the update path's own).
type refusedError struct{ err error }

func (r refusedError) Error() string { return r.err.Error() }
func (r refusedError) Unwrap() error { return r.err }
