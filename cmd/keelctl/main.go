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
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"keel/bootloader"
	_ "keel/bootloader/all" // the loaders keelctl looks up by name
	"keel/image/install"
)

var version = "dev"

// Exit codes, one table for every command (README, --help and here).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitRefused = 3
)

// exitCodesHelp ends every command's help.
const exitCodesHelp = `Exit codes:
  0  done
  1  failed. For install: the bundle was found bad (a tampered or truncated
     artifact) or writing failed after writing the other slot began; parts
     of the other slot may have been written, never the running slot, and
     no entry points at what was written
  2  bad usage: flags, arguments, a key file that does not read
  3  refused, nothing written: the bundle (no or a bad signature, an
     untrusted key, a corrupt or truncated header or manifest, another
     compatible string or architecture, an older version, a root filesystem
     larger than the slot), the slots' state (the running slot not blessed,
     no good slot to roll back to, a damaged boot entry), or another keelctl
     or update of the disk running`

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
	root.AddCommand(newInstallCmd(g), newUpdateCmd(g), newPollCmd(g), newStatusCmd(g), newMarkCmd(g, true), newMarkCmd(g, false), newRollbackCmd(g), newBlessCmd(g), newHealthCmd(), newCleanupCmd(g))
	root.Long += "\n\n" + exitCodesHelp
	for _, c := range root.Commands() {
		c.Long += "\n\n" + exitCodesHelp
	}
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
	case errors.As(err, &u), strings.HasPrefix(err.Error(), "unknown command "):
		// cobra's own usage errors (an unknown subcommand) are plain errors.
		return exitUsage
	case refused(err):
		return exitRefused
	}
	return exitFailure
}

// refused reports whether err turned something down before anything was
// written: an install refused as such (install.RefusedError, which
// install.OpenBundle and install.Install return only before writing), or a
// change of entries refused for the slots' state.
func refused(err error) bool {
	if install.IsRefused(err) {
		return true
	}
	for _, e := range []error{install.ErrNotGood, bootloader.ErrNoEntry, bootloader.ErrDamagedEntry} {
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
