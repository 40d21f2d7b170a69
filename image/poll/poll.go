// Package poll is an image's update policy: where a device looks for
// updates, how often, and when it may reboot into one (issue #10,
// "Polling"). keel build writes it from the profile's update section to
// ConfigPath; keelctl poll, run by the image as a service, reads it.
package poll

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Where keel build puts the policy and what it refers to, in keel's own
// /etc/keel.
const (
	ConfigPath = "/etc/keel/update.json"
	CAPath     = "/etc/keel/update-ca.pem"
	AuthPath   = "/etc/keel/registry-auth.json"
)

// DefaultInterval is how often a device checks when the profile names a
// source but no interval.
const DefaultInterval = 6 * time.Hour

// MinInterval keeps a fleet from polling its registry in a loop.
const MinInterval = time.Minute

// Config is ConfigPath's content.
type Config struct {
	Source   string   `json:"source"`             // oci://REGISTRY/REPO:TAG or https://…/bundle.keel
	Interval Duration `json:"interval"`           // between checks
	Jitter   Duration `json:"jitter"`             // up to this much added to each wait, so a fleet spreads out
	Reboot   string   `json:"reboot"`             // immediate, manual, or window HH:MM-HH:MM
	CA       string   `json:"ca,omitempty"`       // PEM certificates to trust for the source
	Auth     string   `json:"auth,omitempty"`     // registry credentials (docker config.json format)
	Rate     int64    `json:"rate,omitempty"`     // bytes/s cap on downloads, 0: none
	Tries    int      `json:"tries,omitempty"`    // trial boots of what it installs, 0: the image's
	Insecure bool     `json:"insecure,omitempty"` // allow plain http (tests, closed networks)
}

// Duration is a time.Duration written as "6h0m0s" in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Parse reads and checks a Config.
func Parse(b []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("%s: %w", ConfigPath, err)
	}
	if err := c.Check(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", ConfigPath, err)
	}
	return c, nil
}

// Check reports the first thing wrong with c.
func (c Config) Check() error {
	if err := CheckSource(c.Source, c.Insecure); err != nil {
		return err
	}
	if time.Duration(c.Interval) < MinInterval {
		return fmt.Errorf("interval %v: at least %v", time.Duration(c.Interval), MinInterval)
	}
	if c.Jitter < 0 || c.Rate < 0 || c.Tries < 0 {
		return errors.New("negative jitter, rate or tries")
	}
	_, err := ParseReboot(c.Reboot)
	return err
}

// CheckSource accepts the sources a device can fetch from.
func CheckSource(s string, insecure bool) error {
	scheme, rest, ok := strings.Cut(s, "://")
	switch {
	case !ok || rest == "":
		return fmt.Errorf("source %q: want oci://REGISTRY/REPO:TAG or https://HOST/PATH", s)
	case scheme == "oci" || scheme == "https":
		return nil
	case scheme == "http" && insecure:
		return nil
	case scheme == "http":
		return fmt.Errorf("source %q: plain http only with insecure: true (the bundle's signature is still checked, but anyone on the path sees what devices fetch)", s)
	}
	return fmt.Errorf("source %q: unknown scheme %q (want oci or https)", s, scheme)
}

// Reboot is when a device may reboot into what it installed.
type Reboot struct {
	Kind     string // "immediate", "manual" or "window"
	From, To int    // with "window": minutes after local midnight; To < From wraps past midnight
}

// ParseReboot reads immediate, manual or window HH:MM-HH:MM.
func ParseReboot(s string) (Reboot, error) {
	switch s {
	case "immediate", "manual":
		return Reboot{Kind: s}, nil
	}
	w, ok := strings.CutPrefix(s, "window ")
	from, to, ok2 := strings.Cut(strings.TrimSpace(w), "-")
	if ok && ok2 {
		f, err1 := clock(from)
		t, err2 := clock(to)
		if err1 == nil && err2 == nil && f != t {
			return Reboot{Kind: "window", From: f, To: t}, nil
		}
	}
	return Reboot{}, fmt.Errorf("reboot %q: want immediate, manual or window HH:MM-HH:MM (local time, e.g. window 02:00-04:00)", s)
}

func clock(s string) (int, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		return 0, err
	}
	return t.Hour()*60 + t.Minute(), nil
}

// Wait is how long after now a reboot may happen: 0 for immediate or
// inside the window, the time to the window's start otherwise, and -1 for
// manual (never by itself).
func (r Reboot) Wait(now time.Time) time.Duration {
	switch r.Kind {
	case "immediate":
		return 0
	case "window":
		m := now.Hour()*60 + now.Minute()
		in := (r.From < r.To && m >= r.From && m < r.To) || (r.From > r.To && (m >= r.From || m < r.To))
		if in {
			return 0
		}
		midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, now.Location())
		start := midnight.Add(time.Duration(r.From) * time.Minute)
		if !start.After(now) {
			start = start.AddDate(0, 0, 1)
		}
		return start.Sub(now)
	}
	return -1
}

// Next is the wait before the next check: the interval plus a random part
// of the jitter, so devices that booted together do not poll together.
func (c Config) Next(r *rand.Rand) time.Duration {
	d := time.Duration(c.Interval)
	if c.Jitter > 0 {
		d += time.Duration(r.Int64N(int64(c.Jitter)))
	}
	return d
}
