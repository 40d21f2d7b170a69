package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"keel/image/install"
	"keel/image/verdict"
)

// statusJSON is keelctl status --json.
type statusJSON struct {
	Booted string `json:"booted"`
	// SecureBoot is on, off or unknown on a device; empty for a disk
	// image file (--disk), which has no firmware of its own.
	SecureBoot string               `json:"secure_boot,omitempty"`
	Slots      []install.SlotStatus `json:"slots"`
	Verdicts   []verdict.Record     `json:"verdicts,omitempty"`
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
trial generation. On a device, whether the firmware enforces Secure Boot
(on, off, or unknown when efivarfs does not say). Under the table, each
slot's dm-verity root hash when its image has one, and, for a slot that is
bad or on trial, what is known of why: the verdict keel-init recorded on its
last trial boot (/keel/SLOT/verdict.json on the ESP), or that none was
recorded.`,
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
			rep := statusJSON{Booted: sys.Booted, Slots: st, Verdicts: v.Records}
			if g.disk == "" {
				rep.SecureBoot = secureBoot(g.efivarsDir())
			}
			w := cmd.OutOrStdout()
			if asJSON {
				e := json.NewEncoder(w)
				e.SetIndent("", "  ")
				return e.Encode(rep)
			}
			return writeStatus(w, rep, v.Notes)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// writeStatus prints the status table: the booted slot, Secure Boot (on a
// device), one line per slot, each slot's root hash, then the notes.
func writeStatus(w io.Writer, rep statusJSON, notes []string) error {
	fmt.Fprintf(w, "booted: slot %s\n", rep.Booted)
	if rep.SecureBoot != "" {
		fmt.Fprintf(w, "secure boot: %s\n", rep.SecureBoot)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "slot\timage\tgeneration\tstate\tbuild\tentry")
	for _, s := range rep.Slots {
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
	for _, s := range rep.Slots {
		if s.RootHash != "" {
			fmt.Fprintf(w, "slot %s root hash: %s\n", s.Slot, s.RootHash)
		}
	}
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
	return nil
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
