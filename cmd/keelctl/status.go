package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"keel/image/install"
	"keel/image/verdict"
)

// statusJSON is keelctl status --json.
type statusJSON struct {
	Booted   string               `json:"booted"`
	Slots    []install.SlotStatus `json:"slots"`
	Verdicts []verdict.Record     `json:"verdicts,omitempty"`
}

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the booted slot and each slot's image, generation and state",
		Long: `Show which slot runs and, for each slot, the image it holds (name, version,
build id), its entry's generation and its state: good (blessed), trial (with
the tries left before the loader falls back), bad (no tries left), or none
(no entry: empty, or being written). The loader boots the newest good or
trial generation. Under the table, a slot that is bad or on trial says what
is known of why: the verdict keel-init recorded on its last trial boot
(/keel/SLOT/verdict.json on the ESP), or that none was recorded.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			sys, err := openSystem(g, false)
			if err != nil {
				return err
			}
			defer sys.close()
			st, err := install.Status(sys.ESP, sys.Loader, sys.Booted)
			if err != nil {
				return err
			}
			v := readVerdicts(sys.ESP, st)
			w := cmd.OutOrStdout()
			if asJSON {
				e := json.NewEncoder(w)
				e.SetIndent("", "  ")
				return e.Encode(statusJSON{Booted: sys.Booted, Slots: st, Verdicts: v.Records})
			}
			fmt.Fprintf(w, "booted: slot %s\n", sys.Booted)
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "slot\timage\tgeneration\tstate\tbuild\tentry")
			for _, s := range st {
				state := s.State
				if s.State == "trial" {
					state = fmt.Sprintf("trial (%d tries left)", s.TriesLeft)
				}
				slot := s.Slot
				if s.Booted {
					slot += " *"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", slot, dash(s.Name+" "+s.Version), dash(itoaNZ(s.Generation)), state, dash(s.BuildID), dash(s.Entry))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, n := range v.Notes {
				fmt.Fprintln(w, n)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func dash(s string) string {
	if s == "" || s == " " {
		return "-"
	}
	return s
}

func itoaNZ(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprint(n)
}
