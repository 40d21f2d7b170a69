package services

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"keel/rootfs"
)

// HealthFile holds the rule by which keel-init judges a boot: the
// profile's update.health. Without it keel-init never judges (no blessing).
const HealthFile = "/etc/keel/health.json"

// DefaultGrace is how long required services must stay up when Grace is 0.
const DefaultGrace = 10 * time.Second

// StartTimeout is how long beyond the grace period a boot may take to
// become healthy: a boot not healthy by Deadline is bad, even if no
// required service has failed for good (one that keeps restarting within
// its budget never passes). keel-health.service in a systemd image has
// the same limit (its TimeoutStartSec).
const StartTimeout = 90 * time.Second

// Health says when a boot is healthy: every Require'd service has stayed
// up for Grace. A required service that fails for good first (its restart
// budget spent, or its restart policy does not restart it), or a boot
// still not healthy at Deadline, makes the boot bad. In JSON:
//
//	{"require": ["web", "db"], "grace": "10s"}
type Health struct {
	Require []string      `json:"require"`
	Grace   time.Duration `json:"-"`
}

type healthJSON struct {
	Require []string `json:"require"`
	Grace   string   `json:"grace,omitempty"`
}

// MarshalJSON writes Grace as a Go duration string ("1m30s"), as profiles do.
func (h Health) MarshalJSON() ([]byte, error) {
	j := healthJSON{Require: h.Require}
	if j.Require == nil {
		j.Require = []string{}
	}
	if h.Grace != 0 {
		j.Grace = h.Grace.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes, strictly.
func (h *Health) UnmarshalJSON(b []byte) error {
	var j healthJSON
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&j); err != nil {
		return err
	}
	var g time.Duration
	if j.Grace != "" {
		var err error
		if g, err = time.ParseDuration(j.Grace); err != nil || g < 0 {
			return fmt.Errorf("grace %q: want a duration such as 10s or 1m30s", j.Grace)
		}
	}
	*h = Health{Require: j.Require, Grace: g}
	return nil
}

// EffectiveGrace is Grace, or DefaultGrace when unset.
func (h Health) EffectiveGrace() time.Duration {
	if h.Grace == 0 {
		return DefaultGrace
	}
	return h.Grace
}

// Deadline is how long after the services start the boot must be
// healthy: the grace period plus StartTimeout.
func (h Health) Deadline() time.Duration { return h.EffectiveGrace() + StartTimeout }

// WriteHealth adds HealthFile to t. Every required service must be one of
// svcs, so a typo cannot make every boot bad.
func WriteHealth(t *rootfs.Tree, h Health, svcs []Service) error {
	known := map[string]bool{}
	for _, s := range svcs {
		known[s.Name] = true
	}
	for _, r := range h.Require {
		if !known[r] {
			return fmt.Errorf("writing health rule: required service %q is not defined", r)
		}
	}
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return fmt.Errorf("writing health rule: %w", err)
	}
	if err := t.MkdirAll("/etc/keel", 0o755); err != nil {
		return fmt.Errorf("writing health rule: %w", err)
	}
	if err := t.Add(HealthFile, rootfs.NewFile(0o644, append(b, '\n'))); err != nil {
		return fmt.Errorf("writing health rule: %w", err)
	}
	return nil
}

// LoadHealth reads HealthFile from fsys (a leading "/" is dropped, as in
// Load). ok is false when there is none.
func LoadHealth(fsys fs.FS) (h Health, ok bool, err error) {
	b, err := fs.ReadFile(fsys, strings.TrimPrefix(HealthFile, "/"))
	if errors.Is(err, fs.ErrNotExist) {
		return Health{}, false, nil
	}
	if err != nil {
		return Health{}, false, fmt.Errorf("reading %s: %w", HealthFile, err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&h); err != nil {
		return Health{}, false, fmt.Errorf("%s: %w", HealthFile, err)
	}
	if err := d.Decode(new(json.RawMessage)); err != io.EOF {
		return Health{}, false, fmt.Errorf("%s: data after the JSON object", HealthFile)
	}
	return h, true, nil
}
