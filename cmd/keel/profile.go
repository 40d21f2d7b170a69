package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"keel/profiles"
	"keel/profiles/builtin"
)

// loadProfile loads the profile a command names: a file, or a built-in
// profile's name, or, with no argument, the default built-in. It returns
// the lock file that goes with it: PROFILE.lock beside a file (its .yaml
// or .yml extension replaced), NAME.lock in the working directory for a
// built-in.
func loadProfile(args []string) (*profiles.Profile, string, error) {
	name := builtin.Default
	if len(args) > 0 {
		name = args[0]
	}
	if _, err := os.Stat(name); err == nil || strings.ContainsAny(name, "/.") {
		p, err := profiles.Load(name)
		if err != nil {
			return nil, "", err
		}
		return p, lockPathFor(name), nil
	}
	if !slices.Contains(builtin.Names(), name) {
		return nil, "", usagef("%s: no such profile file, and no built-in profile of that name (built in: %s)", name, strings.Join(builtin.Names(), ", "))
	}
	p, err := builtin.Load(name)
	if err != nil {
		return nil, "", err
	}
	return p, name + ".lock", nil
}

func lockPathFor(profile string) string {
	ext := filepath.Ext(profile)
	if ext == ".yaml" || ext == ".yml" {
		profile = strings.TrimSuffix(profile, ext)
	}
	return profile + ".lock"
}

// addSSHKeys adds keys (files, or key lines) to the authorized keys of the
// profile's user named user.
func addSSHKeys(p *profiles.Profile, keys []string, user string) error {
	if len(keys) == 0 {
		return nil
	}
	i := slices.IndexFunc(p.Users, func(u profiles.User) bool { return u.Name == user })
	if i < 0 {
		return usagef("--ssh-key: the profile has no user %q (name one with --ssh-user)", user)
	}
	for _, k := range keys {
		line := k
		if !strings.HasPrefix(k, "ssh-") && !strings.HasPrefix(k, "ecdsa-") && !strings.HasPrefix(k, "sk-") {
			b, err := os.ReadFile(k)
			if err != nil {
				return usagef("--ssh-key: %v", err)
			}
			line = strings.TrimSpace(string(b))
		}
		for _, l := range strings.Split(line, "\n") {
			l = strings.TrimSpace(l)
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			if strings.Contains(l, "PRIVATE KEY") {
				return usagef("--ssh-key %s: that is a private key; give the .pub file", k)
			}
			p.Users[i].SSHAuthorizedKeys = append(p.Users[i].SSHAuthorizedKeys, l)
		}
	}
	return nil
}

// checkOutput refuses an output that would replace one of the build's
// inputs (the profile, an included file, the lock file) or a directory,
// before anything is built.
func checkOutput(out string, inputs []string, lockPath string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		return usagef("output %s is a directory; name the image file (-o %s/NAME.img)", out, strings.TrimSuffix(out, "/"))
	}
	for _, in := range append(slices.Clone(inputs), lockPath) {
		if in == "" {
			continue
		}
		a, err := filepath.Abs(in)
		if err != nil {
			continue
		}
		same := a == abs
		if fa, err := os.Stat(a); err == nil {
			if fo, err := os.Stat(abs); err == nil && os.SameFile(fa, fo) {
				same = true
			}
		}
		if same {
			return usagef("output %s is an input of the build (%s): choose another -o", out, in)
		}
	}
	return nil
}

// maxArgs is cobra.MaximumNArgs with a usage error.
func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.MaximumNArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
