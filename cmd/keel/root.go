package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"keel/image/install"
	"keel/profiles"
	"keel/rootfs/deb/lock"
)

// Exit codes, one table for every command (README, --help and here):
// 0 success, 1 failure, 2 bad usage or bad profile, 3 refused with
// nothing written.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitRefused = 3
)

// exitCodes is the table README's "Exit codes" line and every command's
// --help print; TestExitCodesDocumented holds README to it.
var exitCodes = []struct {
	code    int
	meaning string
}{
	{exitOK, "success"},
	{exitFailure, "failure"},
	{exitUsage, "bad usage or bad profile"},
	{exitRefused, "refused with nothing written"},
}

// exitCodesHelp ends the help of keel and of the commands that can refuse.
var exitCodesHelp = func() string {
	s := "Exit codes:"
	for i, c := range exitCodes {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf(" %d %s", c.code, c.meaning)
	}
	return s + ` (a lock file the profile no longer
matches, key files that exist already, a bundle keel update turns down, a
disk another update is using).
A runtime failure at a profile field (a source that cannot be read) is
printed at the field and exits 1.`
}()

// usageError marks errors that are the caller's to fix (flags, arguments,
// profiles), which exit with code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

type globals struct {
	verbose bool
}

func (g *globals) logger() *slog.Logger {
	level := slog.LevelWarn
	if g.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "keel",
		Short: "Build immutable, bootable system images from a declarative profile",
		Long: `keel turns one declarative profile into an immutable, bootable system image:
a read-only squashfs root in A/B slots of a GPT disk, updated atomically with
automatic fallback.

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log debug output to stderr")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newBuildCmd(g),
		newBundleCmd(),
		newFlashCmd(),
		newInspectCmd(),
		newKeyCmd(),
		newLockCmd(g),
		newMksquashfsCmd(g),
		newProfilesCmd(),
		newPushCmd(g),
		newRunCmd(),
		newSchemaCmd(),
		newSecureBootCmd(),
		newTestCmd(),
		newUpdateCmd(g),
		newVersionCmd(),
	)
	return root
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	// A profile's errors are the user's to fix: print each as the file,
	// line and field it is about, without the pipeline's context around it.
	if perrs := profiles.Errors(err); len(perrs) > 0 {
		for _, e := range perrs {
			fmt.Fprintln(stderr, "keel:", e)
		}
		return exitUsage
	}
	fmt.Fprintln(stderr, "keel:", err)
	var u usageError
	switch {
	case errors.As(err, &u), strings.HasPrefix(err.Error(), "unknown command "):
		// cobra's own usage errors (an unknown subcommand) are plain errors.
		return exitUsage
	case errors.Is(err, lock.ErrDrift), install.IsRefused(err), errors.As(err, new(refusedError)):
		return exitRefused
	}
	return exitFailure
}

// exactArgs is cobra.ExactArgs with a usage error, so bad arguments exit 2.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
