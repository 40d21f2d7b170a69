package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"keel/bootloader"
	"keel/image/install"
)

// newMarkCmd is mark-good (good) or mark-bad.
func newMarkCmd(g *globals, good bool) *cobra.Command {
	use, short, long := "mark-good [SLOT]", "Bless a slot's entry (default: the booted one)",
		`Bless a slot's boot entry (default: the booted slot's): drop its try counter,
so the loader keeps booting it. keel-init does this by itself once the
profile's required services stayed up for the grace period.`
	if !good {
		use, short, long = "mark-bad [SLOT]", "Leave a slot's entry no tries (default: the booted one)",
			`Mark a slot's boot entry bad (default: the booted slot's): no tries left, so
the loader boots the other slot's entry from the next boot on.`
	}
	return &cobra.Command{
		Use: use, Short: short, Long: long,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 || (len(args) == 1 && args[0] != "a" && args[0] != "b") {
				return usageError{fmt.Errorf("want no argument or a slot, a or b")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			sys, err := openSystem(g, false)
			if err != nil {
				return err
			}
			defer sys.close()
			slot := sys.Booted
			if len(args) == 1 {
				slot = args[0]
			}
			verb := "good"
			if good {
				err = sys.Loader.MarkGood(sys.ESP, slot)
			} else {
				verb = "bad"
				err = sys.Loader.MarkBad(sys.ESP, slot)
			}
			if err != nil {
				return err
			}
			return printSlot(cmd, sys, slot, "marked slot %s "+verb)
		},
	}
}

func newRollbackCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rollback",
		Short: "Make the other slot the default, if it is good",
		Long: `Write a new, blessed generation of the other slot's entry, so the loader
boots it from the next boot on. Refused unless the other slot's entry is
good: a trial, a bad slot or an empty one is not something to go back to.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			sys, err := openSystem(g, false)
			if err != nil {
				return err
			}
			defer sys.close()
			e, err := install.Rollback(sys.ESP, sys.Loader, sys.Booted)
			if err != nil {
				return err
			}
			return printSlot(cmd, sys, e.Slot, "slot %s is the default from the next boot on")
		},
	}
}

func printSlot(cmd *cobra.Command, sys *system, slot, format string) error {
	st, err := install.Status(sys.ESP, sys.Loader, sys.Booted)
	if err != nil {
		return err
	}
	for _, s := range st {
		if s.Slot == slot {
			fmt.Fprintf(cmd.OutOrStdout(), format+": %s, generation %d, %s (%s)\n", slot, dash(s.Name+" "+s.Version), s.Generation, s.State, s.Entry)
		}
	}
	return nil
}

// newBlessCmd blesses the running boot when the loader counted it as a
// trial: what keel-init does in images it supervises, and what a systemd
// image runs once its health check passed under a loader systemd-bless-boot
// does not know (GRUB, U-Boot).
func newBlessCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "bless",
		Short: "Bless the running boot's entry if the loader counted it as a trial",
		Long: `Bless the entry the boot loader counted this boot with, if it did: the
loader keeps booting it. A boot that is not a trial is left as it is, and so
is an entry an install or rollback replaced since this boot (blessing it
would bless what this boot did not test). Under systemd with GRUB or U-Boot,
keel-health.service runs this once the profile's required units stayed up.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sys, err := openSystem(g, false)
			if err != nil {
				return err
			}
			defer sys.close()
			t := sys.Boot.Trial
			if t == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "slot %s: not a trial boot, nothing to bless\n", sys.Booted)
				return nil
			}
			if err := bootloader.BlessTrial(sys.Loader, sys.ESP, *t); err != nil {
				return err
			}
			return printSlot(cmd, sys, t.Slot, "blessed slot %s")
		},
	}
}
