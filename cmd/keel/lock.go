package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"keel/image/build"
)

func newLockCmd(g *globals) *cobra.Command {
	f := &debianFlags{}
	cmd := &cobra.Command{
		Use:   "lock [PROFILE]",
		Short: "Pin the exact Debian packages a profile builds with",
		Long: `Resolve PROFILE's Debian packages (packages, kernel.package, the boot loader)
against its repository, write them to PROFILE.lock (name, version,
architecture, sha256, and the Release date), and download them into the
cache. From then on keel build uses exactly the lock's packages, fetched by
sha256 (from the cache, with no network), and refuses a profile that asks
for something the lock was not made for, until keel lock runs again or the
build is given --update-lock. Commit the lock beside the profile.

PROFILE is a file or a built-in profile's name (the lock of a built-in goes
to NAME.lock in the working directory); default "minimal".`,
		Example: "  keel lock server.yaml     # writes server.lock\n  keel build server.yaml --offline",
		Args:    maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, lockPath, err := loadProfile(args)
			if err != nil {
				return err
			}
			d, err := f.options(lockPath)
			if err != nil {
				return err
			}
			res, err := build.Lock(cmd.Context(), p, d, build.Options{Logger: g.logger(), Progress: stageProgress()})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d packages from %s (Release of %s), %s downloaded\n",
				res.Path, res.Packages, res.Suite, res.Date, human(res.Downloaded))
			return nil
		},
	}
	f.register(cmd, false)
	return cmd
}
