package aptsrc

import (
	"bytes"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
)

func TestFind(t *testing.T) {
	tests := []struct {
		name, root, suite, component string

		uri        string
		components []string
		arch       []string
		keyring    []string // relative to root
		inline     bool
		where      string // suffix of Source.Where

		err []string // substrings of the error, when one is expected
	}{
		{
			name: "deb822 first suite", root: "deb822", suite: "bookworm", component: "main",
			uri: "http://mirror.example/debian", components: []string{"main", "contrib"},
			keyring: []string{"usr/share/keyrings/example-archive.gpg"}, where: "debian.sources:1",
		},
		{
			name: "deb822 second suite of a stanza", root: "deb822", suite: "bookworm-updates", component: "contrib",
			uri: "http://mirror.example/debian", components: []string{"main", "contrib"},
			keyring: []string{"usr/share/keyrings/example-archive.gpg"}, where: "debian.sources:1",
		},
		{
			name: "deb822 inline key and architectures", root: "deb822", suite: "trixie", component: "main",
			uri: "https://inline.example/debian", components: []string{"main"}, arch: []string{"amd64", "arm64"},
			inline: true, where: "inline.sources:1",
		},
		{
			// Only in a disabled stanza, a deb-src stanza, and a file
			// disabled by its name.
			name: "deb822 disabled entries are ignored", root: "deb822", suite: "bookworm-security", component: "main",
			err: []string{`no apt source for suite "bookworm-security", component "main"`,
				"sources.list (absent)", "debian.sources", "inline.sources",
				"found only http://mirror.example/debian bookworm main contrib",
				"debian.mirror", "debian.keyring", "--mirror", "--keyring", "KEEL_DEBIAN_MIRROR", "KEEL_DEBIAN_KEYRING"},
		},
		{
			name: "deb-src only", root: "deb822", suite: "sid", component: "main",
			err: []string{`no apt source for suite "sid"`},
		},
		{
			name: "component missing", root: "deb822", suite: "bookworm", component: "non-free",
			err: []string{`component "non-free"`},
		},
		{
			name: "one-line with options", root: "oneline", suite: "bookworm", component: "main",
			uri: "http://mirror.example/debian", components: []string{"main", "non-free-firmware"}, arch: []string{"amd64"},
			keyring: []string{"usr/share/keyrings/example-archive.gpg"}, where: "sources.list:4",
		},
		{
			name: "one-line default keyrings", root: "oneline", suite: "bookworm-updates", component: "main",
			uri: "http://mirror.example/debian", components: []string{"main"}, where: "sources.list:6",
			keyring: []string{"usr/share/keyrings/debian-archive-keyring.gpg",
				"etc/apt/trusted.gpg.d/a.asc", "etc/apt/trusted.gpg.d/b.gpg"},
		},
		{
			// sources.list comes first, then sources.list.d sorted: a.list
			// before b.sources.
			name: "sources.list.d in order", root: "oneline", suite: "bookworm", component: "contrib",
			uri: "http://second.example/debian", components: []string{"contrib"}, where: "a.list:1",
			keyring: []string{"usr/share/keyrings/debian-archive-keyring.gpg",
				"etc/apt/trusted.gpg.d/a.asc", "etc/apt/trusted.gpg.d/b.gpg"},
		},
		{
			name: "deb822 Signed-By list", root: "oneline", suite: "trixie", component: "non-free",
			uri: "http://third.example/debian", components: []string{"contrib", "non-free"}, where: "b.sources:1",
			keyring: []string{"usr/share/keyrings/third.gpg", "usr/share/keyrings/third-extra.asc"},
		},
		{
			name: "signed-by fingerprint", root: "oneline", suite: "sid", component: "main",
			err: []string{"sources.list:7", "fingerprint", "0123456789ABCDEF", "KEEL_DEBIAN_KEYRING"},
		},
		{
			name: "no keyring anywhere", root: "nokeyring", suite: "bookworm", component: "main",
			err: []string{"sources.list:1", "no Signed-By", DefaultKeyring, "--keyring"},
		},
		{
			name: "no apt at all", root: "", suite: "bookworm", component: "main",
			err: []string{"sources.list (absent)", "sources.list.d (absent)", "KEEL_DEBIAN_MIRROR"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir() // an empty root: no etc/apt at all
			if tt.root != "" {
				root = filepath.Join("testdata", tt.root)
			}
			src, err := Find(root, tt.suite, tt.component)
			if len(tt.err) > 0 {
				if err == nil {
					t.Fatalf("found %+v, want an error", src)
				}
				for _, s := range tt.err {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var keyring []string
			for _, k := range tt.keyring {
				keyring = append(keyring, filepath.Join(root, k))
			}
			if src.URI != tt.uri || src.Suite != tt.suite || !reflect.DeepEqual(src.Components, tt.components) ||
				!reflect.DeepEqual(src.Architectures, tt.arch) || !reflect.DeepEqual(src.Keyring, keyring) {
				t.Errorf("got %+v\nwant URI %s, suite %s, components %q, architectures %q, keyring %q",
					src, tt.uri, tt.suite, tt.components, tt.arch, keyring)
			}
			if !strings.HasSuffix(src.Where, tt.where) {
				t.Errorf("Where = %q, want …%s", src.Where, tt.where)
			}
			if tt.inline {
				// The inline block must come out as an armored keyring a
				// verifier can read: deb822's escaping undone.
				keys, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(src.KeyringData))
				if err != nil || len(keys) != 1 {
					t.Fatalf("inline key: %d keys, %v\n%s", len(keys), err, src.KeyringData)
				}
			} else if src.KeyringData != nil {
				t.Errorf("unexpected inline key data")
			}
		})
	}
}

func TestFindNoSourceIsSentinel(t *testing.T) {
	_, err := Find(t.TempDir(), "bookworm", "main")
	if !errors.Is(err, ErrNoSource) {
		t.Errorf("error %v does not wrap ErrNoSource", err)
	}
}

func TestMalformed(t *testing.T) {
	tests := []struct{ name, file, text, err string }{
		{"unclosed options", "sources.list", "deb [arch=amd64 http://x.example/d bookworm main\n", "sources.list:1: unclosed ["},
		{"no suite", "sources.list", "# c\ndeb http://x.example/d\n", "sources.list:2: a deb line needs a URI and a suite"},
		{"bad option", "sources.list", "deb [trusted] http://x.example/d bookworm main\n", `option "trusted" is not key=value`},
		{"stanza without URIs", "sources.list.d/x.sources", "Types: deb\nSuites: bookworm\n", "x.sources:1: a deb stanza needs URIs and Suites"},
		{"not deb822", "sources.list.d/x.sources", "Types: deb\nthis line has no colon\n", "x.sources: stanza 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFile(t, filepath.Join(root, "etc/apt", tt.file), tt.text)
			_, err := Find(root, "bookworm", "main")
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error %v, want one saying %q", err, tt.err)
			}
		})
	}
}
