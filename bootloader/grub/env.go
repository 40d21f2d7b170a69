package grub

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// EnvSize is the size of a grubenv file: GRUB's save_env rewrites the
// file's blocks in place and never changes its size.
const EnvSize = 1024

const envHeader = "# GRUB Environment Block\n"

// errEnv is a grubenv GRUB would not read.
var errEnv = errors.New("not a GRUB environment block")

// ParseEnv reads a grubenv file as GRUB's load_env does: the header line,
// then name=value lines, with "\\" and "\n" escaped by a backslash, and
// lines starting with '#' (comments, and the padding) skipped.
func ParseEnv(b []byte) (map[string]string, error) {
	if len(b) != EnvSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", errEnv, len(b), EnvSize)
	}
	if !bytes.HasPrefix(b, []byte(envHeader)) {
		return nil, fmt.Errorf("%w: no header", errEnv)
	}
	vars := map[string]string{}
	rest := b[len(envHeader):]
	for len(rest) > 0 {
		if rest[0] == '#' {
			// A comment (grub-editenv writes a warning), or the padding.
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				break
			}
			rest = rest[i+1:]
			continue
		}
		var line []byte
		escaped := false
		i := 0
		for ; i < len(rest); i++ {
			c := rest[i]
			if escaped {
				line = append(line, c)
				escaped = false
				continue
			}
			if c == '\\' {
				escaped = true
				continue
			}
			if c == '\n' {
				break
			}
			line = append(line, c)
		}
		if i == len(rest) {
			return nil, fmt.Errorf("%w: unterminated line", errEnv)
		}
		rest = rest[i+1:]
		name, value, ok := strings.Cut(string(line), "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%w: line %q", errEnv, line)
		}
		vars[name] = value
	}
	return vars, nil
}

// FormatEnv writes vars as a grubenv file, names sorted so that the same
// state is the same bytes.
func FormatEnv(vars map[string]string) ([]byte, error) {
	names := make([]string, 0, len(vars))
	for n := range vars {
		if n == "" || strings.ContainsAny(n, "=\n\\#") {
			return nil, fmt.Errorf("grubenv: bad variable name %q", n)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	b := []byte(envHeader)
	esc := strings.NewReplacer(`\`, `\\`, "\n", "\\\n")
	for _, n := range names {
		b = append(b, n+"="+esc.Replace(vars[n])+"\n"...)
	}
	if len(b) > EnvSize {
		return nil, fmt.Errorf("grubenv: %d bytes of variables, more than the block's %d", len(b), EnvSize)
	}
	return append(b, bytes.Repeat([]byte{'#'}, EnvSize-len(b))...), nil
}
