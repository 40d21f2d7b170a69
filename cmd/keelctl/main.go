// keelctl manages a keel device's A/B slots from the running system:
// install an update bundle into the other slot, show each slot's state,
// bless or condemn the running boot, roll back. It is static and small,
// and every image carries it at /usr/bin/keelctl.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"keel/image/bundle"
	"keel/image/install"
)

var version = "dev"

// Exit codes: 0 success, 1 failure, 2 bad usage, 3 a bundle refused
// (signature, compatibility, version: nothing was written).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitRefused = 3
)

type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{}
	root := &cobra.Command{
		Use:   "keelctl",
		Short: "Install updates into the other A/B slot, show slot state, bless or roll back",
		Long: `keelctl manages the A/B slots of the keel system it runs on.

The ESP (the GPT partition labelled "esp" on the disk that holds the running
root) is mounted at /run/keel/esp with dirsync when needed. With --disk, it
works on a disk image file instead (the slot "booted" is then the one the
boot loader would pick: the newest good entry's).`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.disk, "disk", "", "work on this disk image file instead of the running system")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newInstallCmd(g), newStatusCmd(g), newMarkCmd(g, true), newMarkCmd(g, false), newRollbackCmd(g), newHealthCmd(), newCleanupCmd(g))
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "keelctl:", err)
	var u usageError
	switch {
	case errors.As(err, &u):
		return exitUsage
	case refused(err):
		return exitRefused
	}
	return exitFailure
}

// refused reports whether err is a bundle turned away before anything was
// written.
func refused(err error) bool {
	for _, e := range []error{bundle.ErrBadSignature, bundle.ErrUnknownKey, bundle.ErrNoSignature,
		install.ErrIncompatible, install.ErrWrongArch, install.ErrDowngrade, install.ErrBootedNotGood} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
