package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// newCleanupCmd removes install leftovers from the ESP. keel-init does this
// at every boot of an image it supervises; in a systemd image
// keel-esp-cleanup.service runs this command instead.
func newCleanupCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "cleanup",
		Short: "Remove what an interrupted install, bless or rollback left on the ESP",
		Long: `Remove what an interrupted install, bless or rollback left on the ESP:
temporary files, entries taken out of use, empty or damaged entries, and all
but the newest entry of a slot. A leftover that may share clusters with a live
file (vfat is not crash-atomic) is renamed *.stale, never deleted. Boots run
this before judging the boot (keel-init, or keel-esp-cleanup.service under
systemd).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return usageError{fmt.Errorf("cleanup takes no argument")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			sys, err := openSystem(g, false)
			if err != nil {
				return err
			}
			defer sys.close()
			done, err := sys.Loader.Cleanup(sys.ESP)
			for _, d := range done {
				fmt.Fprintf(cmd.OutOrStdout(), "ESP cleanup: %s\n", d)
			}
			return err
		},
	}
}
