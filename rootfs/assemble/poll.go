package assemble

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	"keel/image/poll"
	"keel/profiles"
	"keel/rootfs/services"
)

// PollService is the service that checks the profile's update.source and
// installs what it finds (keelctl poll). It is not among the services a
// boot must keep up to be judged healthy, unless the profile names it.
const PollService = "keel-update"

// addPolicy writes the update policy (and its CA and credentials) into
// /etc/keel and returns the service that follows it.
func addPolicy(p *profiles.Profile, add func(p string, mode uint32, uid, gid uint32, b []byte) error) (services.Service, error) {
	u := p.Update
	if slices.ContainsFunc(p.Services, func(s profiles.Service) bool { return s.Name == PollService }) {
		return services.Service{}, p.Errorf("services", "%q is the name of the service update.source runs: pick another", PollService)
	}
	c := poll.Config{
		Source: u.Source, Interval: poll.Duration(u.Interval), Jitter: poll.Duration(time.Duration(u.Interval) / 10),
		Reboot: u.Reboot, Rate: int64(u.Rate), Tries: u.Tries, Insecure: u.Insecure,
	}
	for _, f := range []struct {
		src, dst, field string
		mode            uint32
		set             *string
	}{{u.CA, poll.CAPath, "update.ca", 0o644, &c.CA}, {u.Auth, poll.AuthPath, "update.auth", 0o600, &c.Auth}} {
		if f.src == "" {
			continue
		}
		b, err := os.ReadFile(f.src)
		if err != nil {
			return services.Service{}, p.At(f.field, err)
		}
		if err := add(f.dst, f.mode, 0, 0, b); err != nil {
			return services.Service{}, err
		}
		*f.set = f.dst
	}
	if err := c.Check(); err != nil {
		return services.Service{}, p.Errorf("update", "%v", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return services.Service{}, fmt.Errorf("update policy: %w", err)
	}
	if err := add(poll.ConfigPath, 0o644, 0, 0, append(b, '\n')); err != nil {
		return services.Service{}, err
	}
	return services.Service{
		Name: PollService, Command: []string{KeelctlPath, "poll"}, Restart: services.Always,
		Env: map[string]string{"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
	}, nil
}
