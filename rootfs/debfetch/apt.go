package debfetch

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// run runs an external tool in dir and returns its stdout. The error
// carries the command line and stderr. LC_ALL=C keeps apt's field labels
// ("Candidate:") untranslated, since they are parsed.
func run(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		cmdline := strings.Join(append([]string{name}, args...), " ")
		if s := strings.TrimSpace(stderr.String()); s != "" {
			return stdout.Bytes(), fmt.Errorf("%s: %w\n%s", cmdline, err, s)
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w", cmdline, err)
	}
	return stdout.Bytes(), nil
}

// parsePolicy reads `apt-cache policy NAME` output for one package: known
// says whether apt knows the name at all (it prints nothing for an unknown
// one), candidate is the version apt would install ("" if none, as for a
// purely virtual package).
func parsePolicy(out []byte) (known bool, candidate string) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if line != "" && line[0] != ' ' && strings.HasSuffix(line, ":") {
			known = true
			continue
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Candidate:"); ok {
			candidate = strings.TrimSpace(v)
		}
	}
	if candidate == "(none)" {
		candidate = ""
	}
	return known, candidate
}

// stanza is one paragraph of `apt-cache show`: field name → value, with
// continuation lines joined by newlines.
type stanza map[string]string

// parseStanzas splits `apt-cache show` output (deb822 paragraphs) into
// stanzas.
func parseStanzas(out []byte) []stanza {
	var all []stanza
	var cur stanza
	var last string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			cur, last = nil, ""
		case line[0] == ' ' || line[0] == '\t':
			if cur != nil && last != "" {
				cur[last] += "\n" + strings.TrimSpace(line)
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			if cur == nil {
				cur = stanza{}
				all = append(all, cur)
			}
			last = k
			cur[k] = strings.TrimSpace(v)
		}
	}
	return all
}

// dep is one alternative of a Depends field: `name (op version)`.
type dep struct {
	Name, Op, Version string
}

// parseDepends splits a Depends value into its comma-separated groups, each
// a list of '|'-separated alternatives. Architecture qualifiers
// (":any") and restrictions ("[amd64]", "<!nocheck>") are dropped.
func parseDepends(s string) [][]dep {
	var groups [][]dep
	for _, g := range strings.Split(s, ",") {
		var alts []dep
		for _, a := range strings.Split(g, "|") {
			a = strings.TrimSpace(a)
			if i := strings.IndexAny(a, "[<"); i >= 0 {
				a = strings.TrimSpace(a[:i])
			}
			if a == "" {
				continue
			}
			var d dep
			name, rel, hasRel := strings.Cut(a, "(")
			d.Name = strings.TrimSpace(name)
			d.Name, _, _ = strings.Cut(d.Name, ":")
			if hasRel {
				rel = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rel), ")"))
				i := strings.IndexFunc(rel, func(r rune) bool { return !strings.ContainsRune("<>=", r) })
				if i > 0 {
					d.Op, d.Version = rel[:i], strings.TrimSpace(rel[i:])
				}
			}
			alts = append(alts, d)
		}
		if len(alts) > 0 {
			groups = append(groups, alts)
		}
	}
	return groups
}

// escapeVersion writes a version the way apt names .deb files: the epoch's
// ':' becomes "%3a", which keeps paths free of colons.
func escapeVersion(v string) string {
	return strings.ReplaceAll(v, ":", "%3a")
}
