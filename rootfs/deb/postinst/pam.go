package postinst

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"keel/rootfs"
)

// Effect 6: pam-auth-update. libpam-runtime's postinst and every PAM
// module package's (libpam-systemd's) run `pam-auth-update --package`,
// which writes /etc/pam.d/common-{auth,account,password,session,
// session-noninteractive} from the templates in /usr/share/pam and the
// profiles in /usr/share/pam-configs. Without those files no PAM service
// (login, sshd, su) works. On a fresh install the result is the profiles
// marked "Default: yes", highest Priority first, which is what this does,
// following pam-auth-update's own algorithm (jump counts included); it
// also writes the state pam-auth-update keeps in /var/lib/pam so a later
// run on the device merges instead of overwriting. A common-* file that
// already exists is left alone.

var pamTypes = []string{"auth", "account", "password", "session", "session-noninteractive"}

const (
	pamConfigs   = "/usr/share/pam-configs"
	pamTemplates = "/usr/share/pam"
)

type pamProfile struct {
	name      string
	fields    map[string]string
	conflicts map[string]bool
	priority  int
}

func (c *configurator) pam() error {
	invs := c.invocationsOf("pam-auth-update")
	for _, inv := range invs {
		inv.handled = true
	}
	real, e, err := c.t.Resolve(pamConfigs)
	if err != nil || e.Type != rootfs.TypeDir {
		return nil
	}
	if !c.exists(pamTemplates + "/common-auth") {
		return nil
	}
	var profiles []*pamProfile
	for _, name := range c.t.Children(real) {
		if strings.HasSuffix(name, "~") || strings.HasPrefix(name, "#") && strings.HasSuffix(name, "#") {
			continue
		}
		b, ok, err := c.readFile(pamConfigs + "/" + name)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		p := parsePamProfile(name, string(b))
		if p == nil {
			c.warn("pam-auth-update: profile %s disabled (it uses pam_tally)", name)
			continue
		}
		profiles = append(profiles, p)
	}
	byPriority := func(list []*pamProfile) {
		sort.SliceStable(list, func(i, j int) bool {
			if list[i].priority != list[j].priority {
				return list[i].priority > list[j].priority
			}
			return list[i].name > list[j].name
		})
	}
	byPriority(profiles)
	var enabled []*pamProfile
	for _, p := range profiles {
		if p.fields["Default"] == "yes" {
			enabled = append(enabled, p)
		}
	}
	// A conflict drops the lower-priority profile of the pair.
	for i := 0; i < len(enabled); i++ {
		for j := len(enabled) - 1; j >= 0; j-- {
			if j < len(enabled) && enabled[i].conflicts[enabled[j].name] {
				c.warn("pam-auth-update: %s conflicts with %s; %s left out", enabled[i].name, enabled[j].name, enabled[j].name)
				enabled = append(enabled[:j], enabled[j+1:]...)
				if j < i {
					i--
				}
			}
		}
	}
	if len(enabled) == 0 {
		c.warn("pam-auth-update: no profile is enabled by default; /etc/pam.d/common-* not written")
		return nil
	}
	var written []string
	for _, typ := range pamTypes {
		target := "/etc/pam.d/common-" + typ
		if c.lexists(target) {
			c.warn("pam-auth-update: %s exists; left as it is", target)
			continue
		}
		tmpl, ok, err := c.readFile(pamTemplates + "/common-" + typ)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		out, err := pamFromTemplate(string(tmpl), typ, enabled)
		if err != nil {
			return fmt.Errorf("%s: %w", target, err)
		}
		if err := c.writeFile(target, 0o644, 0, 0, []byte(out)); err != nil {
			return err
		}
		if err := c.writeFile("/var/lib/pam/"+typ, 0o644, 0, 0, []byte(pamSaved(typ, enabled))); err != nil {
			return err
		}
		written = append(written, "common-"+typ)
	}
	var seen strings.Builder
	for _, p := range profiles {
		seen.WriteString(p.name + "\n")
	}
	if err := c.writeFile("/var/lib/pam/seen", 0o644, 0, 0, []byte(seen.String())); err != nil {
		return err
	}
	var names []string
	for _, p := range enabled {
		names = append(names, p.name)
	}
	c.applied("pam-auth-update: /etc/pam.d/%s with %s", strings.Join(written, ", "), strings.Join(names, ", "))
	return nil
}

var pamFieldRE = regexp.MustCompile(`^(\S+):\s+(.*?)\s*$`)

// parsePamProfile reads a /usr/share/pam-configs file as pam-auth-update's
// parse_pam_profile does; nil means the profile is disabled.
func parsePamProfile(name, text string) *pamProfile {
	p := &pamProfile{name: name, fields: map[string]string{}, conflicts: map[string]bool{}}
	field := ""
	for _, line := range strings.Split(text, "\n") {
		// "Auth:" with nothing after it starts a field with an empty value.
		if m := pamFieldRE.FindStringSubmatch(line + "\n"); m != nil && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") {
			field = strings.TrimSuffix(m[1], "-Final")
			if field == "Conflicts" {
				for _, c := range strings.Split(m[2], ", ") {
					p.conflicts[c] = true
				}
			} else {
				p.fields[field] = m[2]
			}
			continue
		}
		v := strings.TrimSpace(line)
		if v != "" && field != "" {
			if p.fields[field] == "" {
				p.fields[field] = v
			} else {
				p.fields[field] += "\n" + v
			}
			if strings.Contains(p.fields[field], "pam_tally") {
				return nil
			}
		}
	}
	if _, ok := p.fields["Session-Interactive-Only"]; !ok {
		for _, k := range []string{"-Type", "", "-Initial"} {
			if v, ok := p.fields["Session"+k]; ok {
				p.fields["Session-noninteractive"+k] = v
			}
		}
	}
	p.priority, _ = strconv.Atoi(strings.TrimSpace(p.fields["Priority"]))
	return p
}

// pamLines returns a profile's lines for a type at a position in the
// stack: the -Initial variant for the first module.
func pamLines(p *pamProfile, uctype string, pos int) string {
	if pos == 0 {
		if v := p.fields[uctype+"-Initial"]; v != "" {
			return v
		}
	}
	return p.fields[uctype]
}

func ucfirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

var pamLineRE = regexp.MustCompile(`^((\[[^]]+\]|\w+)\s+\S+)\s*(.*)`)

// pamFromTemplate is pam-auth-update's create_from_template: the
// template's text, with the Primary and Additional blocks filled in and
// "end" in jump actions replaced by the number of lines left in the block.
func pamFromTemplate(tmpl, typ string, enabled []*pamProfile) (string, error) {
	uctype := ucfirst(typ)
	prefix := strings.TrimSuffix(typ, "-noninteractive")
	var out strings.Builder
	state := 0
	block := func(kind string) {
		var mods []*pamProfile
		for _, p := range enabled {
			if p.fields[uctype+"-Type"] == kind {
				mods = append(mods, p)
			}
		}
		count := 0
		for i, p := range mods {
			for _, l := range strings.Split(pamLines(p, uctype, i), "\n") {
				if l != "" {
					count++
				}
			}
		}
		if kind == "Additional" {
			count--
		}
		if kind == "Primary" && count == 0 {
			out.WriteString(prefix + "\t[default=1]\t\t\tpam_permit.so\n")
		}
		for i, p := range mods {
			for _, l := range strings.Split(pamLines(p, uctype, i), "\n") {
				if l == "" {
					continue
				}
				out.WriteString(prefix + "\t" + pamMergeLine(l, count))
				count--
			}
		}
	}
	lines := strings.SplitAfter(tmpl, "\n")
	for _, line := range lines {
		if line == "" {
			continue
		}
		switch state {
		case 1:
			if strings.HasPrefix(line, "# here's the fallback if no module succeeds") {
				out.WriteString(line)
				state++
			}
			continue
		case 3:
			if strings.HasPrefix(line, "# end of pam-auth-update config") {
				out.WriteString(line)
				state++
			}
			continue
		}
		out.WriteString(line)
		switch {
		case state == 0 && strings.HasPrefix(line, `# here are the per-package modules (the "Primary" block)`):
			block("Primary")
			state++
		case state == 2 && strings.HasPrefix(line, `# and here are more per-package modules (the "Additional" block)`):
			block("Additional")
			state++
		}
	}
	if state < 4 {
		return "", fmt.Errorf("template lacks pam-auth-update's markers")
	}
	return out.String(), nil
}

// pamMergeLine is merge_one_line without local changes to merge:
// "control module" then the options, "end" in the control replaced by
// the jump count. The space before the newline is pam-auth-update's.
func pamMergeLine(line string, count int) string {
	m := pamLineRE.FindStringSubmatch(line)
	if m == nil {
		return line + "\n"
	}
	modline := strings.ReplaceAll(m[1], "end", strconv.Itoa(count))
	return modline + " " + strings.Join(strings.Fields(m[3]), " ") + "\n"
}

// pamSaved is what pam-auth-update keeps in /var/lib/pam/TYPE: the
// Primary modules (or the null stand-in), then the Additional ones.
func pamSaved(typ string, enabled []*pamProfile) string {
	uctype := ucfirst(typ)
	var b strings.Builder
	i := 0
	for _, p := range enabled {
		t := p.fields[uctype+"-Type"]
		if t == "" || t == "Additional" {
			continue
		}
		if out := pamLines(p, uctype, i); out != "" {
			b.WriteString("Module: " + p.name + "\n" + out + "\n")
		}
		i++
	}
	if i == 0 {
		b.WriteString("Module: null\n[default=1]\t\t\tpam_permit.so\n")
	}
	i = 0
	for _, p := range enabled {
		t := p.fields[uctype+"-Type"]
		if t == "" || t == "Primary" {
			continue
		}
		if out := pamLines(p, uctype, i); out != "" {
			b.WriteString("Module: " + p.name + "\n" + out + "\n")
		}
		i++
	}
	return b.String()
}
