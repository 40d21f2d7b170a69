package postinst

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Effect 1: dpkg's database, so that dpkg-query, dpkg -L and apt see the
// packages as installed at runtime. Files and formats are dpkg's:
//
//	/var/lib/dpkg/status          every package's control paragraph, fields in
//	                              dpkg's order, "Status: install ok installed"
//	                              and Conffiles with their md5sums, sorted by name
//	/var/lib/dpkg/info/P.list     the package's paths, "/." first
//	/var/lib/dpkg/info/P.conffiles, P.md5sums, P.postinst, ...
//	                              the control members dpkg keeps
//	/var/lib/dpkg/triggers/File   file trigger interests; triggers/NAME for
//	                              named ones; Unincorp empty
//	/var/lib/dpkg/arch            the native architecture
//	/var/lib/dpkg/info/format     "1", the multiarch database layout
//	available, diversions, statoverride (filled by effect 4): empty
//
// P is "name:arch" for Multi-Arch: same packages, as dpkg names them.

const dpkgDir = "/var/lib/dpkg"

// dpkgFieldOrder is the order dpkg writes the fields it knows in
// (lib/dpkg/parse.c); other fields follow in the order they came in.
var dpkgFieldOrder = []string{
	"Package", "Essential", "Protected", "Status", "Priority", "Section", "Installed-Size",
	"Origin", "Maintainer", "Bugs", "Architecture", "Multi-Arch", "Source", "Version",
	"Config-Version", "Replaces", "Provides", "Depends", "Pre-Depends", "Recommends",
	"Suggests", "Breaks", "Conflicts", "Enhances", "Conffiles", "Description",
	"Triggers-Pending", "Triggers-Awaited",
}

var dependencyFields = map[string]bool{
	"Replaces": true, "Provides": true, "Depends": true, "Pre-Depends": true, "Recommends": true,
	"Suggests": true, "Breaks": true, "Conflicts": true, "Enhances": true,
}

func (c *configurator) dpkgDatabase() error {
	sorted := append([]*Package(nil), c.pkgs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Name != sorted[j].Name {
			return sorted[i].Name < sorted[j].Name
		}
		return sorted[i].Architecture < sorted[j].Architecture
	})
	var status strings.Builder
	for i, p := range sorted {
		if i > 0 {
			status.WriteString("\n")
		}
		status.WriteString(c.statusParagraph(p))
	}
	if err := c.writeFile(dpkgDir+"/status", 0o644, 0, 0, []byte(status.String())); err != nil {
		return err
	}
	for _, p := range c.pkgs {
		if err := c.infoFiles(p); err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
	}
	for _, d := range []string{"updates", "parts", "alternatives", "info", "triggers"} {
		if err := c.mkdir(dpkgDir+"/"+d, 0o755); err != nil {
			return err
		}
	}
	arch := c.opts.Arch
	if arch == "" && len(c.pkgs) > 0 {
		for _, p := range c.pkgs {
			if p.Architecture != "all" {
				arch = p.Architecture
				break
			}
		}
	}
	files := map[string]string{
		"available":         "",
		"diversions":        "",
		"statoverride":      "",
		"info/format":       "1\n",
		"triggers/Unincorp": "",
	}
	if arch != "" {
		files["arch"] = arch + "\n"
	}
	for _, name := range sortedKeys(files) {
		if err := c.writeFile(dpkgDir+"/"+name, 0o644, 0, 0, []byte(files[name])); err != nil {
			return err
		}
	}
	return c.triggerFiles()
}

// statusParagraph renders a package as dpkg writes it into status.
func (c *configurator) statusParagraph(p *Package) string {
	fields := parseControl(p.Control)
	byName := map[string]string{}
	var extra []controlField
	known := map[string]bool{}
	for _, n := range dpkgFieldOrder {
		known[strings.ToLower(n)] = true
	}
	for _, f := range fields {
		canon := f.name
		for _, n := range dpkgFieldOrder {
			if strings.EqualFold(n, f.name) {
				canon = n
			}
		}
		if known[strings.ToLower(canon)] {
			if _, dup := byName[canon]; !dup {
				byName[canon] = f.value
			}
			continue
		}
		extra = append(extra, f)
	}
	// What the package says about its own state is not believed.
	for _, n := range []string{"Status", "Config-Version", "Conffiles", "Triggers-Pending", "Triggers-Awaited"} {
		delete(byName, n)
	}
	byName["Package"], byName["Version"], byName["Architecture"] = p.Name, p.Version, p.Architecture
	byName["Status"] = "install ok installed"
	for _, b := range []string{"Essential", "Protected"} {
		if v, ok := byName[b]; ok && v != "yes" {
			delete(byName, b)
		}
	}
	if cf := c.conffileSums(p); cf != "" {
		byName["Conffiles"] = cf
	}
	var b strings.Builder
	for _, n := range dpkgFieldOrder {
		v, ok := byName[n]
		if !ok {
			continue
		}
		if dependencyFields[n] {
			v = formatRelations(v)
		}
		writeField(&b, n, v)
	}
	for _, f := range extra {
		writeField(&b, f.name, f.value)
	}
	return b.String()
}

func writeField(b *strings.Builder, name, value string) {
	b.WriteString(name)
	b.WriteString(":")
	if value != "" && !strings.HasPrefix(value, "\n") {
		b.WriteString(" ")
	}
	b.WriteString(value)
	b.WriteString("\n")
}

// conffileSums is the Conffiles field: " PATH MD5" per conffile, the md5
// of the file as unpacked. A conffile missing from the tree gets dpkg's
// "newconffile" placeholder.
func (c *configurator) conffileSums(p *Package) string {
	var b strings.Builder
	for _, cf := range p.Conffiles {
		cf = strings.TrimSpace(cf)
		if cf == "" {
			continue
		}
		// "remove-on-upgrade /etc/foo": flags come first.
		var flags []string
		if !strings.HasPrefix(cf, "/") {
			f := strings.Fields(cf)
			cf, flags = f[len(f)-1], f[:len(f)-1]
		}
		sum := "newconffile"
		if data, ok, err := c.readFile(cf); err == nil && ok {
			sum = md5hex(data)
		}
		b.WriteString("\n " + cf + " " + sum)
		for _, fl := range flags {
			b.WriteString(" " + fl)
		}
	}
	return b.String()
}

var relationRE = regexp.MustCompile(`^([^\s(]+)\s*(?:\(\s*(<<|<=|=|>=|>>|<|>)\s*([^\s)]+)\s*\))?$`)

// formatRelations writes a relationship field as dpkg does: one line,
// ", " between relations, " | " between alternatives, "name (op
// version)", the obsolete "<" and ">" as "<=" and ">=".
func formatRelations(v string) string {
	v = strings.Join(strings.Fields(v), " ")
	var rels []string
	for _, rel := range strings.Split(v, ",") {
		rel = strings.TrimSpace(rel)
		if rel == "" {
			continue
		}
		var alts []string
		for _, alt := range strings.Split(rel, "|") {
			alt = strings.TrimSpace(alt)
			m := relationRE.FindStringSubmatch(alt)
			if m == nil {
				alts = append(alts, alt)
				continue
			}
			if m[2] == "" {
				alts = append(alts, m[1])
				continue
			}
			op := m[2]
			switch op {
			case "<":
				op = "<="
			case ">":
				op = ">="
			}
			alts = append(alts, fmt.Sprintf("%s (%s %s)", m[1], op, m[3]))
		}
		rels = append(rels, strings.Join(alts, " | "))
	}
	return strings.Join(rels, ", ")
}

// listPath turns a data.tar member name into dpkg's .list form.
func listPath(name string) string {
	name = strings.TrimPrefix(name, ".")
	name = strings.TrimRight(name, "/")
	if name == "" {
		return "/."
	}
	if !strings.HasPrefix(name, "/") {
		name = "/" + name
	}
	return name
}

func (c *configurator) infoFiles(p *Package) error {
	base := dpkgDir + "/info/" + p.dbName() + "."
	var list strings.Builder
	seen := map[string]bool{}
	for i, f := range p.Files {
		if strings.ContainsAny(f, "\n\x00") {
			return fmt.Errorf("path %q has a newline", f)
		}
		lp := listPath(f)
		if i == 0 && lp != "/." {
			list.WriteString("/.\n")
			seen["/."] = true
		}
		if seen[lp] {
			continue
		}
		seen[lp] = true
		list.WriteString(lp + "\n")
	}
	if len(p.Files) == 0 {
		list.WriteString("/.\n")
	}
	if err := c.writeFile(base+"list", 0o644, 0, 0, []byte(list.String())); err != nil {
		return err
	}
	if len(p.Conffiles) > 0 {
		var b strings.Builder
		for _, cf := range p.Conffiles {
			if cf = strings.TrimSpace(cf); cf != "" {
				b.WriteString(cf + "\n")
			}
		}
		if err := c.writeFile(base+"conffiles", 0o644, 0, 0, []byte(b.String())); err != nil {
			return err
		}
	}
	if p.MD5Sums != "" {
		if err := c.writeFile(base+"md5sums", 0o644, 0, 0, []byte(p.MD5Sums)); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(p.Scripts) {
		switch name {
		case "control", "conffiles", "md5sums":
			continue // the status paragraph and the fields above hold them
		}
		mode := uint32(0o644)
		if scriptFiles[name] {
			mode = 0o755
		}
		if err := c.writeFile(base+name, mode, 0, 0, []byte(p.Scripts[name])); err != nil {
			return err
		}
	}
	return nil
}

// triggerFiles writes the trigger interests of the packages' triggers
// members: file triggers into triggers/File ("PATH PKG" or "PATH
// PKG/noawait"), named triggers into triggers/NAME.
func (c *configurator) triggerFiles() error {
	var file []string
	named := map[string][]string{}
	for _, p := range c.pkgs {
		for _, line := range strings.Split(p.Scripts["triggers"], "\n") {
			f := strings.Fields(line)
			if len(f) != 2 || strings.HasPrefix(f[0], "#") {
				continue
			}
			suffix := ""
			switch f[0] {
			case "interest", "interest-await":
			case "interest-noawait":
				suffix = "/noawait"
			default:
				continue
			}
			entry := p.dbName() + suffix
			if strings.HasPrefix(f[1], "/") {
				file = append(file, f[1]+" "+entry+"\n")
				continue
			}
			if !validTrigger.MatchString(f[1]) || f[1] == "File" || f[1] == "Unincorp" || f[1] == "Lock" {
				c.warn("triggers of %s: bad trigger name %q ignored", p.Name, f[1])
				continue
			}
			named[f[1]] = append(named[f[1]], entry+"\n")
		}
	}
	// Sorted, so the file does not depend on the install order.
	sort.Strings(file)
	if err := c.writeFile(dpkgDir+"/triggers/File", 0o644, 0, 0, []byte(strings.Join(file, ""))); err != nil {
		return err
	}
	for _, n := range sortedKeys(named) {
		sort.Strings(named[n])
		if err := c.writeFile(dpkgDir+"/triggers/"+n, 0o644, 0, 0, []byte(strings.Join(named[n], ""))); err != nil {
			return err
		}
	}
	return nil
}

var validTrigger = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._-]*$`)

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
