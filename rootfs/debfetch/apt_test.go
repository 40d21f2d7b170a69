package debfetch

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		file      string
		known     bool
		candidate string
	}{
		{"policy-busybox-static.txt", true, "1:1.35.0-4+deb12u1+b1"},
		{"policy-linux-image-amd64.txt", true, "6.1.192-2"},
		{"policy-kmod.txt", true, "30+20221128-1"},
		{"policy-awk.txt", true, ""},
		{"policy-no-such-package-keel.txt", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			known, candidate := parsePolicy(readFixture(t, tt.file))
			if known != tt.known || candidate != tt.candidate {
				t.Errorf("parsePolicy = %v, %q; want %v, %q", known, candidate, tt.known, tt.candidate)
			}
		})
	}
}

func TestParseStanzas(t *testing.T) {
	tests := []struct {
		file    string
		n       int
		pkg     string
		version string
		arch    string
		depends string
	}{
		{"show-busybox-static.txt", 1, "busybox-static", "1:1.35.0-4+deb12u1+b1", "amd64", ""},
		{"show-linux-image-amd64.txt", 2, "linux-image-amd64", "6.1.192-2", "amd64", "linux-image-6.1.0-56-amd64 (= 6.1.192-2)"},
		{"show-linux-image-6.1.0-56-amd64.txt", 1, "linux-image-6.1.0-56-amd64", "6.1.192-2", "amd64",
			"kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			all := parseStanzas(readFixture(t, tt.file))
			if len(all) != tt.n {
				t.Fatalf("%d stanzas, want %d", len(all), tt.n)
			}
			st := all[0]
			if st["Package"] != tt.pkg || st["Version"] != tt.version || st["Architecture"] != tt.arch || st["Depends"] != tt.depends {
				t.Errorf("first stanza: Package %q Version %q Architecture %q Depends %q", st["Package"], st["Version"], st["Architecture"], st["Depends"])
			}
		})
	}
	// The older version is the second stanza, with its own kernel.
	if st := parseStanzas(readFixture(t, "show-linux-image-amd64.txt"))[1]; st["Version"] != "6.1.176-1" || st["Depends"] != "linux-image-6.1.0-50-amd64 (= 6.1.176-1)" {
		t.Errorf("second stanza: %q %q", st["Version"], st["Depends"])
	}
	// Continuation lines are kept, joined by newlines.
	if tag := parseStanzas(readFixture(t, "show-busybox-static.txt"))[0]["Tag"]; tag != "admin::recovery, interface::shell, role::program, scope::utility,\nuse::login, works-with::file" {
		t.Errorf("Tag = %q", tag)
	}
}

func TestParseDepends(t *testing.T) {
	tests := []struct {
		in   string
		want [][]dep
	}{
		{"", nil},
		{"linux-image-6.1.0-56-amd64 (= 6.1.192-2)", [][]dep{{{"linux-image-6.1.0-56-amd64", "=", "6.1.192-2"}}}},
		{"kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool", [][]dep{
			{{"kmod", "", ""}},
			{{"linux-base", ">=", "4.3~"}},
			{{"initramfs-tools", ">=", "0.120+deb8u2"}, {"linux-initramfs-tool", "", ""}},
		}},
		{"libc6:any (>>2.36), foo [amd64] <!nocheck>", [][]dep{
			{{"libc6", ">>", "2.36"}},
			{{"foo", "", ""}},
		}},
	}
	for _, tt := range tests {
		if got := parseDepends(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseDepends(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestKernelDep(t *testing.T) {
	tests := []struct {
		depends string
		want    string
		ok      bool
	}{
		{"linux-image-6.1.0-56-amd64 (= 6.1.192-2)", "linux-image-6.1.0-56-amd64", true},
		{"firmware-linux-free, linux-image-6.1.0-50-amd64-unsigned | linux-image-6.1.0-50-amd64", "linux-image-6.1.0-50-amd64-unsigned", true},
		{"kmod, linux-base", "", false},
	}
	for _, tt := range tests {
		d, ok := kernelDep(parseDepends(tt.depends))
		if d.Name != tt.want || ok != tt.ok {
			t.Errorf("kernelDep(%q) = %q, %v; want %q, %v", tt.depends, d.Name, ok, tt.want, tt.ok)
		}
	}
}

func TestEscapeVersion(t *testing.T) {
	if got := escapeVersion("1:1.35.0-4+deb12u1+b1"); got != "1%3a1.35.0-4+deb12u1+b1" {
		t.Errorf("escapeVersion = %q", got)
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv(CacheEnv, "/x/keel-cache")
	if d, err := DefaultDir(); err != nil || d != "/x/keel-cache" {
		t.Errorf("with %s: %q, %v", CacheEnv, d, err)
	}
	t.Setenv(CacheEnv, "")
	t.Setenv("XDG_CACHE_HOME", "/y/cache")
	if d, err := DefaultDir(); err != nil || d != "/y/cache/keel" {
		t.Errorf("with XDG_CACHE_HOME: %q, %v", d, err)
	}
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/z")
	if d, err := DefaultDir(); err != nil || d != "/z/.cache/keel" {
		t.Errorf("with HOME: %q, %v", d, err)
	}
}
