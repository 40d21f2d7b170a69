package systemd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrInvalidName is returned for a string that is not a unit name.
var ErrInvalidName = errors.New("invalid unit name")

// unitTypes are the suffixes a unit name may end in.
var unitTypes = map[string]bool{
	"service": true, "socket": true, "target": true, "device": true, "mount": true,
	"automount": true, "swap": true, "timer": true, "path": true, "slice": true, "scope": true,
}

// ValidName reports whether name is a unit name systemd accepts: a plain
// name ("ssh.service"), a template ("getty@.service") or an instance
// ("getty@tty1.service"). Names come from package scripts, so this is also
// what keeps a name from escaping the unit directories: no "/" and no
// name of "." or "..".
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > 255 {
		return false
	}
	dot := strings.LastIndexByte(name, '.')
	if dot <= 0 || !unitTypes[name[dot+1:]] {
		return false
	}
	for _, c := range name[:dot] {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.ContainsRune(":-_.\\@", c)
		if !ok {
			return false
		}
	}
	prefix, _, isTemplate := strings.Cut(name[:dot], "@")
	if prefix == "" {
		return false
	}
	if isTemplate && strings.Count(name[:dot], "@") != 1 {
		return false
	}
	return true
}

// name is a unit name split into its parts.
type name struct {
	prefix   string // "getty"
	instance string // "tty1"; "" for a template or a plain name
	template bool   // has an "@"
	suffix   string // "service"
}

func parseName(s string) (name, error) {
	if !ValidName(s) {
		return name{}, fmt.Errorf("%q: %w", s, ErrInvalidName)
	}
	dot := strings.LastIndexByte(s, '.')
	n := name{suffix: s[dot+1:]}
	n.prefix, n.instance, n.template = strings.Cut(s[:dot], "@")
	return n, nil
}

func (n name) String() string {
	if n.template {
		return n.prefix + "@" + n.instance + "." + n.suffix
	}
	return n.prefix + "." + n.suffix
}

// isTemplate is true for "getty@.service", false for its instances.
func (n name) isTemplate() bool { return n.template && n.instance == "" }

func (n name) isInstance() bool { return n.template && n.instance != "" }

// templateName is the template an instance comes from.
func (n name) templateName() string { return n.prefix + "@." + n.suffix }

func (n name) withInstance(instance string) string {
	return n.prefix + "@" + instance + "." + n.suffix
}

// Install is a unit's [Install] section.
type Install struct {
	WantedBy, RequiredBy, UpheldBy []string
	Alias, Also                    []string
	DefaultInstance                string
}

// Empty reports whether the section asks for nothing, which makes the unit
// "static" for systemctl.
func (in Install) Empty() bool {
	return len(in.WantedBy)+len(in.RequiredBy)+len(in.UpheldBy)+len(in.Alias)+len(in.Also) == 0
}

// ParseInstall reads a unit file and returns its [Install] section. It
// follows systemd's syntax: "#" and ";" comments, a trailing backslash
// continuing a line, lists split at whitespace with quotes removed, and an
// empty assignment ("WantedBy=") clearing the list set so far. Other
// sections are skipped; an unknown key in [Install] is ignored, as
// systemctl does with a warning.
func ParseInstall(r io.Reader) (Install, error) {
	var in Install
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	section := ""
	var cont strings.Builder
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if cont.Len() > 0 {
			trimmed := strings.TrimSpace(line)
			// Comment lines inside a continuation are skipped, as systemd does.
			if strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, ";") {
				continue
			}
			cont.WriteString(" ")
			cont.WriteString(line)
			line = cont.String()
			cont.Reset()
		}
		if strings.HasSuffix(line, "\\") && !strings.HasSuffix(line, "\\\\") {
			cont.WriteString(strings.TrimSuffix(line, "\\"))
			continue
		}
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				return in, fmt.Errorf("line %d: bad section header %q", lineNo, line)
			}
			section = line[1 : len(line)-1]
			continue
		}
		if section != "Install" {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return in, fmt.Errorf("line %d: not an assignment: %q", lineNo, line)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		var list *[]string
		switch key {
		case "WantedBy":
			list = &in.WantedBy
		case "RequiredBy":
			list = &in.RequiredBy
		case "UpheldBy":
			list = &in.UpheldBy
		case "Alias":
			list = &in.Alias
		case "Also":
			list = &in.Also
		case "DefaultInstance":
			words, err := splitWords(value)
			if err != nil {
				return in, fmt.Errorf("line %d: %w", lineNo, err)
			}
			in.DefaultInstance = strings.Join(words, " ")
			continue
		default:
			continue
		}
		if value == "" {
			*list = nil
			continue
		}
		words, err := splitWords(value)
		if err != nil {
			return in, fmt.Errorf("line %d: %w", lineNo, err)
		}
		*list = append(*list, words...)
	}
	if err := sc.Err(); err != nil {
		return in, err
	}
	return in, nil
}

// splitWords splits a list value at whitespace, removing single and double
// quotes and backslash escapes (systemd's extract_first_word with
// EXTRACT_UNQUOTE).
func splitWords(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	var quote rune
	esc := false
	for _, c := range s {
		switch {
		case esc:
			cur.WriteRune(c)
			esc = false
		case c == '\\':
			esc, inWord = true, true
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteRune(c)
			}
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unbalanced quote in %q", s)
	}
	if esc {
		return nil, fmt.Errorf("trailing backslash in %q", s)
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// expand resolves the specifiers systemctl knows in [Install] values for
// the unit n: %n full name, %N name without type suffix, %p prefix, %i
// instance, %j last dash-separated part of the prefix, %% a percent sign.
// Specifiers that depend on the running machine (%H, %m, %b, ...) have no
// meaning in an image being built and are refused.
func expand(s string, n name) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) {
			return "", fmt.Errorf("%q: trailing %%", s)
		}
		i++
		switch s[i] {
		case '%':
			b.WriteByte('%')
		case 'n':
			b.WriteString(n.String())
		case 'N':
			full := n.String()
			b.WriteString(strings.TrimSuffix(full, "."+n.suffix))
		case 'p':
			b.WriteString(n.prefix)
		case 'i':
			b.WriteString(n.instance)
		case 'j':
			j := n.prefix
			if k := strings.LastIndexByte(j, '-'); k >= 0 {
				j = j[k+1:]
			}
			b.WriteString(j)
		default:
			return "", fmt.Errorf("%q: specifier %%%c is not supported at build time", s, s[i])
		}
	}
	return b.String(), nil
}
