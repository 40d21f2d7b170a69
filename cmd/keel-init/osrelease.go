package main

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// parseOSRelease reads os-release(5) KEY=value lines. Values may be quoted
// in shell style; unquoting is the small subset os-release allows.
func parseOSRelease(r io.Reader) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		m[k] = unquoteShell(v)
	}
	return m
}

func unquoteShell(v string) string {
	if len(v) >= 2 {
		switch {
		case v[0] == '"' && v[len(v)-1] == '"':
			if u, err := strconv.Unquote(v); err == nil {
				return u
			}
			return v[1 : len(v)-1]
		case v[0] == '\'' && v[len(v)-1] == '\'':
			return v[1 : len(v)-1]
		}
	}
	return v
}

// readyLine is the one line that tells a watcher (a QEMU test, an operator)
// the system is up: image name, version and slot. Missing parts read
// "unknown" so the line's shape never changes.
func readyLine(osRelease map[string]string, slot string) string {
	name := firstNonEmpty(osRelease["IMAGE_ID"], osRelease["ID"], "unknown")
	version := firstNonEmpty(osRelease["IMAGE_VERSION"], osRelease["VERSION_ID"], "unknown")
	return "keel: ready " + name + " " + version + " slot=" + firstNonEmpty(slot, "unknown")
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
