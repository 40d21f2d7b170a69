package profiles

import (
	"fmt"
	"slices"

	"keel/image/disk"
	"keel/image/poll"
)

// setDefaults fills in what the profile left out (the values are the
// Default* constants, and in the field docs). Fields whose zero value is a
// valid choice (a mode of 0000, gid 0, xz level 0) are defaulted only when
// they were not written at all, which is what Where tells.
func (p *Profile) setDefaults() {
	has := func(field string) bool { _, ok := p.pos[field]; return ok }
	if p.Keel == 0 {
		p.Keel = Version
	}
	if p.Arch == "" {
		p.Arch = DefaultArch
	}
	if p.Compatible == "" {
		p.Compatible = p.Name
	}
	if p.Hostname == "" {
		p.Hostname = p.Name
	}
	if p.UsesDebian() {
		deb := &p.Debian
		if len(deb.Components) == 0 {
			deb.Components = []string{"main"}
		}
		if deb.Architecture == "" {
			deb.Architecture = DebianArch(p.Arch)
		}
		if deb.Base == "" {
			deb.Base = "none"
		}
	}
	p.Packages = dedupe(p.Packages)

	for i := range p.Sources {
		s := &p.Sources[i]
		f := fmt.Sprintf("sources[%d]", i)
		switch {
		case s.Dir != "" && s.To == "":
			s.To = "/"
		case s.File != "" && !has(f+".mode"):
			s.Mode = DefaultFileMode
		}
	}
	for i := range p.Users {
		u := &p.Users[i]
		if !has(fmt.Sprintf("users[%d].gid", i)) {
			u.GID = u.UID
		}
		if u.Home == "" {
			u.Home = "/home/" + u.Name
			if u.Name == "root" {
				u.Home = "/root"
			}
		}
		if u.Shell == "" {
			u.Shell = DefaultShell
		}
		if u.Password == "" {
			u.Password = "!"
		}
	}
	for i := range p.Services {
		s := &p.Services[i]
		if s.User == "" {
			s.User = "root"
		}
		if s.Restart == "" {
			s.Restart = DefaultRestart
		}
	}

	d := &p.Disk
	if d.ESP == 0 {
		d.ESP = DefaultESPSize
	}
	if d.Slot == 0 {
		d.Slot = DefaultSlotSize
	}
	if d.Data == 0 {
		d.Data = DefaultDataSize
	}
	if d.Size == 0 {
		// Just big enough, as the layout planner decides; sizes it refuses
		// leave 0 here, and validation reports them.
		if l, err := disk.Plan(d.planSizes(), nil); err == nil {
			d.Size = Size(l.Size)
		}
	}
	if d.Squashfs.Compression == "" {
		d.Squashfs.Compression = DefaultCompression
	}
	if p.Kernel.InitrdCompression == "" {
		p.Kernel.InitrdCompression = "xz"
	}
	if !has("disk.squashfs.level") {
		d.Squashfs.Level = defaultLevels[d.Squashfs.Compression]
	}
	if p.Boot.Loader == "" {
		p.Boot.Loader = DefaultLoader
	}
	// The root hash is only worth what binds it to the kernel: the UKI's
	// command line, signed with it.
	if d.Verity {
		p.Boot.UKI = true
	}

	u := &p.Update
	if !has("update.tries") {
		u.Tries = DefaultTries
	}
	if u.Source != "" && !has("update.interval") {
		u.Interval = Duration(poll.DefaultInterval)
	}
	if u.Source != "" && u.Reboot == "" {
		u.Reboot = "manual"
	}
	if !has("update.health.grace") {
		u.Health.Grace = DefaultGrace
	}
	if !has("update.health.require") {
		u.Health.Require = nil
		for _, s := range p.Services {
			u.Health.Require = append(u.Health.Require, s.Name)
		}
	}
}

// UsesDebian reports whether anything in the profile comes from the Debian
// repository: packages, the kernel, or (implicitly) the boot loader.
func (p *Profile) UsesDebian() bool {
	return len(p.Packages) > 0 || p.Kernel.Package != "" || p.Debian.Suite != ""
}

// DebianArch is Debian's name for an architecture ("amd64" for x86_64).
func DebianArch(arch string) string {
	switch arch {
	case "x86_64":
		return "amd64"
	case "aarch64":
		return "arm64"
	}
	return arch
}

// dedupe drops repeated strings, keeping the first of each: merged
// includes often name the same module twice.
func dedupe(list []string) []string {
	var out []string
	for _, s := range list {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// planSizes is the disk as image/disk's planner takes it.
func (d *Disk) planSizes() disk.Sizes {
	return disk.Sizes{Total: int64(d.Size), ESP: int64(d.ESP), Slot: int64(d.Slot), Data: int64(d.Data)}
}
