package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// newHealthCmd is the check keel-health.service runs in a systemd image
// (rootfs/sysconf): the units the profile requires must be active, and stay
// active without a restart, for the grace period.
func newHealthCmd() *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "health UNIT...",
		Short: "Check that systemd units stay up for a grace period (a trial boot's verdict)",
		Long: `Check that each UNIT is active, and stays active without being restarted,
for --grace. Exit 0 when they all did; exit 1 as soon as one failed, stopped
or restarted, naming it. In a systemd image keel-health.service runs this
before boot-complete.target, so systemd-bless-boot only blesses a trial
boot whose required units stayed up; on failure keel-boot-failed.service
reboots, and the entry's try counter decides: after update.tries failed
boots the loader falls back to the other slot.`,
		Example: "  keelctl health --grace 10s ssh.service app.service",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{errors.New("name at least one unit")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			show := func(ctx context.Context) ([]unitState, error) {
				out, err := exec.CommandContext(ctx, "systemctl", append([]string{"show", "--property=Id,ActiveState,SubState,Result,NRestarts", "--"}, args...)...).Output()
				if err != nil {
					return nil, fmt.Errorf("systemctl show: %w", err)
				}
				return parseShow(strings.NewReader(string(out)))
			}
			return watchHealth(cmd.Context(), show, grace, time.Second, func(format string, a ...any) {
				fmt.Fprintf(cmd.ErrOrStderr(), "keelctl: "+format+"\n", a...)
			})
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", 10*time.Second, "how long every unit must stay up")
	return cmd
}

// unitState is what systemctl show says of one unit.
type unitState struct {
	ID, Active, Sub, Result string
	Restarts                string
}

// parseShow reads `systemctl show --property=...` output: one block of
// KEY=VALUE lines per unit, blocks separated by an empty line.
func parseShow(r io.Reader) ([]unitState, error) {
	var out []unitState
	var cur *unitState
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			cur = nil
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("systemctl show: unexpected line %q", line)
		}
		if cur == nil {
			out = append(out, unitState{})
			cur = &out[len(out)-1]
		}
		switch k {
		case "Id":
			cur.ID = v
		case "ActiveState":
			cur.Active = v
		case "SubState":
			cur.Sub = v
		case "Result":
			cur.Result = v
		case "NRestarts":
			cur.Restarts = v
		}
	}
	return out, sc.Err()
}

// watchHealth polls the units every interval until grace has passed. A
// unit still starting is waited for; one that failed, stopped or
// restarted ends the watch with an error.
func watchHealth(ctx context.Context, show func(context.Context) ([]unitState, error), grace, interval time.Duration, logf func(string, ...any)) error {
	deadline := time.Now().Add(grace)
	first := map[string]string{}
	for {
		states, err := show(ctx)
		if err != nil {
			return err
		}
		up := 0
		for _, s := range states {
			if r, ok := first[s.ID]; !ok {
				first[s.ID] = s.Restarts
			} else if r != s.Restarts {
				return fmt.Errorf("%s restarted during the grace period (%s → %s restarts)", s.ID, r, s.Restarts)
			}
			switch s.Active {
			case "active", "reloading":
				up++
			case "activating":
			case "failed":
				return fmt.Errorf("%s failed (%s, result %s)", s.ID, s.Sub, s.Result)
			default:
				if s.Result != "" && s.Result != "success" {
					return fmt.Errorf("%s is %s (result %s)", s.ID, s.Active, s.Result)
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("%s is %s, not running", s.ID, s.Active)
				}
			}
		}
		if time.Now().After(deadline) {
			if up == len(states) {
				logf("healthy: %d unit(s) up for %v", up, grace)
				return nil
			}
			return fmt.Errorf("only %d of %d units up after %v", up, len(states), grace)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
