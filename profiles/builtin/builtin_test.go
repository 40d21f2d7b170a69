package builtin

import (
	"strings"
	"testing"
)

// TestBuiltinsLoad: every built-in profile is valid, asks for its kernel
// and packages from Debian, and says what it is.
func TestBuiltinsLoad(t *testing.T) {
	names := Names()
	if len(names) < 2 || names[0] != "minimal" {
		t.Fatalf("built-ins %v", names)
	}
	for _, n := range names {
		p, err := Load(n)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if p.Name != n || p.Kernel.Package == "" || p.Debian.Suite == "" || len(p.Packages) == 0 {
			t.Errorf("%s: name %q kernel %q suite %q packages %v", n, p.Name, p.Kernel.Package, p.Debian.Suite, p.Packages)
		}
		if s := Summary(n); s == "" || strings.HasPrefix(s, "#") {
			t.Errorf("%s: summary %q", n, s)
		}
	}
	if _, err := Load("nope"); err == nil || !strings.Contains(err.Error(), "built in: minimal, server") {
		t.Errorf("unknown: %v", err)
	}
}
