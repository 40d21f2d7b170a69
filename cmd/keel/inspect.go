package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"keel/image/inspect"
	"keel/profiles"
)

func newInspectCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect DISK",
		Short: "Show a disk image's partitions, slots and boot entries",
		Long: `Read a keel disk image and show its partitions, what each root slot holds,
and the boot entries on the ESP with their generation and state (good, trial
with tries left, or bad).`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := inspect.File(args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			fmt.Fprintf(w, "disk %s, %s, GUID %s\n", args[0], profiles.Size(r.Size), r.DiskGUID)
			if r.GPTWarning != "" {
				fmt.Fprintf(w, "warning: %s\n", r.GPTWarning)
			}
			fmt.Fprintln(w)
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "#\tlabel\tstart\tsize\tpartition GUID")
			for _, p := range r.Partitions {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", p.Number, p.Label, profiles.Size(p.Start), profiles.Size(p.Size), p.GUID)
			}
			tw.Flush()
			fmt.Fprintln(w)
			tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "slot\tfilesystem\tsize\tcompression\tinodes\tverity root hash")
			for _, s := range r.Slots {
				size := ""
				if s.Bytes > 0 {
					size = profiles.Size(s.Bytes).String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", s.Name, s.Filesystem, size, s.Compression, s.Inodes, s.RootHash)
			}
			tw.Flush()
			fmt.Fprintln(w)
			fmt.Fprintf(w, "boot loader: %s\n\n", r.Loader)
			tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "entry\tslot\tgeneration\tstate\tboots\ttitle")
			for _, e := range r.Entries {
				state := e.State
				if e.State == "trial" {
					state = fmt.Sprintf("trial (%d tries left)", e.TriesLeft)
				}
				boots := e.Linux
				if e.EFI != "" {
					boots = e.EFI
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", e.File, e.Slot, e.Generation, state, boots, e.Title)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}
