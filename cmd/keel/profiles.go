package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"keel/profiles/builtin"
)

func newProfilesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "profiles",
		Short: "List the built-in profiles",
		Long: `List the profiles built into keel. keel build NAME builds one; keel build with
no argument builds "` + builtin.Default + `". keel profiles show NAME prints one, to
start a profile of your own from.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			for _, n := range builtin.Names() {
				fmt.Fprintf(tw, "%s\t%s\n", n, builtin.Summary(n))
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:     "show NAME",
		Short:   "Print a built-in profile",
		Example: "  keel profiles show server > my-server.yaml",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, ok := builtin.Source(args[0])
			if !ok {
				return usagef("no built-in profile %q (try: keel profiles)", args[0])
			}
			_, err := cmd.OutOrStdout().Write(b)
			return err
		},
	})
	return cmd
}
