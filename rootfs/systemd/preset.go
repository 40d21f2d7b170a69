package systemd

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"sort"
	"strings"

	"keel/rootfs"
)

// PresetPath is where systemd 252 looks for *.preset files (runtime
// directory left out), in precedence order: a file in an earlier
// directory hides one of the same name in a later one.
var PresetPath = []string{
	"/etc/systemd/system-preset",
	"/usr/local/lib/systemd/system-preset",
	"/lib/systemd/system-preset",
	"/usr/lib/systemd/system-preset",
}

// Presets are the preset rules of a tree, in the order systemd applies
// them: files sorted by name, lines in file order, first match wins.
type Presets struct {
	rules []presetRule
}

type presetRule struct {
	enable    bool
	pattern   string
	instances []string
	source    string // "90-systemd.preset:12", for messages
}

// LoadPresets reads every *.preset file of the tree's PresetPath.
func LoadPresets(t *rootfs.Tree) (*Presets, error) {
	files := map[string]string{} // base name → path, first directory wins
	for _, dir := range PresetPath {
		real, e, err := t.Resolve(dir)
		if err != nil || e.Type != rootfs.TypeDir {
			continue
		}
		for _, name := range t.Children(real) {
			if !strings.HasSuffix(name, ".preset") {
				continue
			}
			if _, ok := files[name]; !ok {
				files[name] = path.Join(dir, name)
			}
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	p := &Presets{}
	for _, n := range names {
		_, e, err := t.Resolve(files[n])
		if err != nil {
			continue // a dangling link, or /dev/null masking the file
		}
		if e.Type != rootfs.TypeFile {
			continue
		}
		b, err := readEntry(e)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", files[n], err)
		}
		p.parse(n, b)
	}
	return p, nil
}

func (p *Presets) parse(file string, b []byte) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		r := presetRule{pattern: f[1], source: fmt.Sprintf("%s:%d", file, line)}
		switch f[0] {
		case "enable":
			r.enable = true
			r.instances = f[2:]
		case "disable":
		default:
			continue // systemd warns and ignores unknown verbs
		}
		p.rules = append(p.rules, r)
	}
}

// Query returns whether the presets enable unit and, when the rule that
// decides lists instances of a template, those instances. A unit no rule
// matches is enabled: Debian ships no catch-all "disable *".
func (p *Presets) Query(unit string) (enable bool, instances []string) {
	n, nerr := parseName(unit)
	for _, r := range p.rules {
		if len(r.instances) > 0 {
			if nerr != nil {
				continue
			}
			if n.isTemplate() {
				if ok, _ := path.Match(r.pattern, unit); ok {
					return r.enable, r.instances
				}
				continue
			}
			if n.isInstance() && n.templateName() == r.pattern {
				for _, i := range r.instances {
					if i == n.instance {
						return r.enable, nil
					}
				}
			}
			continue
		}
		if ok, _ := path.Match(r.pattern, unit); ok {
			return r.enable, nil
		}
	}
	return true, nil
}
