package profiles

import (
	"fmt"
	"regexp"
	"strings"
)

// expandEnv replaces ${NAME} by the environment variable NAME (see the
// package documentation for where this applies).
func expandEnv(s string, env func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("%q: unterminated ${", s)
		}
		name := s[i+2 : i+j]
		if !envName.MatchString(name) {
			return "", fmt.Errorf("%q: ${%s} is not a variable name", s, name)
		}
		val, ok := env(name)
		if !ok {
			return "", fmt.Errorf("%q: environment variable %s is not set", s, name)
		}
		b.WriteString(val)
		s = s[i+j+1:]
	}
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
