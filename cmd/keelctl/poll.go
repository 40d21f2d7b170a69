package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"keel/image/poll"
)

func newPollCmd(g *globals) *cobra.Command {
	config := poll.ConfigPath
	cmd := &cobra.Command{
		Use:   "poll",
		Short: "Follow the image's update policy: check the source, install, reboot",
		Long: `Run the update policy keel build wrote from the profile's update section
(` + poll.ConfigPath + `): check its source (an oci:// tag, a channel, or an
https URL) after a random part of the jitter, then every interval plus a
random part of it; when the source holds a newer version for this image,
install it as keelctl update does (streamed, resumed, signature first);
then reboot into the trial as the policy says: immediate, in a window
HH:MM-HH:MM (local time), or manual (never by itself). After an install it
checks no more until the reboot. A failed check or install is logged and
tried again after 15 s, then 30 s, doubling up to the interval.

The image runs it as the service keel-update when the profile has an
update.source; it is not one of the services a boot must keep up.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := os.ReadFile(config)
			if err != nil {
				return fmt.Errorf("update policy: %w", err)
			}
			c, err := poll.Parse(b)
			if err != nil {
				return err
			}
			o := &updateOptions{ca: c.CA, authFile: c.Auth, insecure: c.Insecure}
			o.tries = c.Tries
			if c.Rate > 0 {
				o.rate = strconv.FormatInt(c.Rate, 10)
			}
			u := &pollUpdater{g: g, o: o, source: c.Source, out: cmd.OutOrStdout(), errw: cmd.ErrOrStderr()}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			return poll.Run(cmd.Context(), c, u, poll.RealClock, rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), log)
		},
	}
	cmd.Flags().StringVar(&config, "config", config, "the update policy to follow")
	return cmd
}

// pollUpdater is poll.Updater over keelctl update.
type pollUpdater struct {
	g         *globals
	o         *updateOptions
	source    string
	out, errw io.Writer
}

func (u *pollUpdater) Check(ctx context.Context) (bool, string, error) {
	c, err := checkSource(ctx, u.g, u.errw, u.source, u.o)
	if err != nil {
		return false, "", err
	}
	return c.newer, c.version, nil
}

func (u *pollUpdater) Install(ctx context.Context) error {
	_, err := update(ctx, u.g, u.out, u.errw, u.source, u.o)
	return err
}

// Reboot asks the init system for a clean reboot: systemd through
// systemctl, keel-init (or busybox init) with SIGTERM, as busybox's reboot
// does.
func (u *pollUpdater) Reboot() error {
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		out, err := exec.Command("systemctl", "reboot").CombinedOutput()
		if err != nil {
			return fmt.Errorf("systemctl reboot: %v: %s", err, out)
		}
		return nil
	}
	return unix.Kill(1, unix.SIGTERM)
}
