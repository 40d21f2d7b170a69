package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"keel/bootloader/secureboot"
	"keel/image/build"
)

// sbFlags are keel build's Secure Boot options.
type sbFlags struct {
	key, cert, keys string
}

func (f *sbFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.key, "sb-key", "", "Secure Boot signing key (PEM): sign systemd-boot and the slot's unified kernel image with it (turns boot.uki on); with --sb-cert")
	cmd.Flags().StringVar(&f.cert, "sb-cert", "", "the certificate (PEM) of --sb-key, as the firmware's db holds it")
	cmd.Flags().StringVar(&f.keys, "sb-keys", "", "a directory made by keel secureboot keys: sign with its db key and leave its PK, KEK and db on the ESP for systemd-boot to enroll on a machine in setup mode")
}

// options reads the keys: a bad path or key is bad usage, found before a
// build starts. nil when no flag is set.
func (f *sbFlags) options() (*build.SecureBoot, error) {
	switch {
	case f.keys != "" && (f.key != "" || f.cert != ""):
		return nil, usageError{errors.New("--sb-keys takes its key and certificate from its directory: give it alone, or --sb-key with --sb-cert")}
	case f.keys == "" && f.key == "" && f.cert == "":
		return nil, nil
	case f.keys == "" && (f.key == "" || f.cert == ""):
		return nil, usageError{errors.New("--sb-key and --sb-cert go together")}
	}
	key, cert := f.key, f.cert
	if f.keys != "" {
		key, cert = filepath.Join(f.keys, "db.key"), filepath.Join(f.keys, "db.crt")
	}
	k, c, err := secureboot.LoadKeyPair(key, cert)
	if err != nil {
		return nil, usageError{err}
	}
	sb := &build.SecureBoot{Key: k, Cert: c}
	if f.keys == "" {
		return sb, nil
	}
	sb.Enroll = map[string][]byte{}
	for _, n := range secureboot.AuthFiles {
		b, err := os.ReadFile(filepath.Join(f.keys, n))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, usageError{fmt.Errorf("--sb-keys %s: no %s (make the directory with keel secureboot keys NAME)", f.keys, n)}
		}
		if err != nil {
			return nil, usageError{err}
		}
		sb.Enroll[n] = b
	}
	return sb, nil
}
