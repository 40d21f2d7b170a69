// Package builtin holds the profiles embedded in keel: `keel build` with no
// argument builds "minimal", and `keel build NAME` any of them. They are
// ordinary profile files; `keel profiles show NAME` prints one to start
// from.
package builtin

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"keel/profiles"
)

//go:embed *.yaml
var files embed.FS

// Default is what keel build builds when given no profile.
const Default = "minimal"

// Names lists the built-in profiles, sorted.
func Names() []string {
	ents, _ := fs.ReadDir(files, ".")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(out)
	return out
}

// Source returns the YAML text of a built-in profile.
func Source(name string) ([]byte, bool) {
	b, err := files.ReadFile(name + ".yaml")
	return b, err == nil
}

// Summary is the first line of a built-in's header comment.
func Summary(name string) string {
	b, _ := Source(name)
	first, _, _ := strings.Cut(string(b), "\n")
	first = strings.TrimPrefix(first, "# ")
	if _, rest, ok := strings.Cut(first, " profile: "); ok {
		return strings.TrimSuffix(rest, ".")
	}
	return first
}

// Load parses a built-in profile. It is named NAME.yaml in errors; it has
// no relative paths, so the directory it is said to be in does not matter.
func Load(name string) (*profiles.Profile, error) {
	b, ok := Source(name)
	if !ok {
		return nil, fmt.Errorf("no built-in profile %q (built in: %s)", name, strings.Join(Names(), ", "))
	}
	return profiles.Parse(name+".yaml", b)
}
