package repo

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// TestHostKeyring checks that go-crypto reads Debian's real archive
// keyring (binary, RSA-4096 keys), and, where apt has downloaded real
// InRelease files, that their signatures (two per file) verify against it.
// Hermetic: it reads only local files.
func TestHostKeyring(t *testing.T) {
	const path = "/usr/share/keyrings/debian-archive-keyring.gpg"
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		t.Skip(path + " absent: apt-get install debian-archive-keyring")
	}
	if err != nil {
		t.Fatal(err)
	}
	keys, err := openpgp.ReadKeyRing(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 2 {
		t.Errorf("%s: %d keys", path, len(keys))
	}
	t.Logf("%s: %d keys", path, len(keys))

	lists, _ := filepath.Glob("/var/lib/apt/lists/*_InRelease")
	sort.Strings(lists)
	if len(lists) == 0 {
		t.Log("no InRelease under /var/lib/apt/lists: only the keyring was checked")
	}
	for i, l := range lists {
		data, err := os.ReadFile(l)
		if err != nil {
			t.Fatal(err)
		}
		if err := verifyHost(data, path); err != nil {
			// A third-party repository's file is signed by its own key.
			if errors.Is(err, ErrVerify) && strings.Contains(err.Error(), "not signed by a key in") {
				t.Logf("InRelease %d of %d in apt's lists: %v", i+1, len(lists), err)
				continue
			}
			t.Errorf("%s: %v", filepath.Base(l), err)
			continue
		}
		t.Logf("InRelease %d of %d in apt's lists: verified", i+1, len(lists))
		// The same file against a keyring without Debian's keys: refused.
		other := filepath.Join(t.TempDir(), "other.gpg")
		e, err := openpgp.NewEntity("not debian", "", "x@example.invalid", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		e.Serialize(&buf)
		os.WriteFile(other, buf.Bytes(), 0o644)
		if err := verifyHost(data, other); !errors.Is(err, ErrVerify) {
			t.Errorf("%s against another keyring: %v", filepath.Base(l), err)
		}
	}
}

// verifyHost checks a real InRelease's signature and that its Release
// parses; the suite name is only for messages, and Valid-Until is not
// checked (apt's copy may be older than a week).
func verifyHost(data []byte, keyring string) error {
	kr, err := loadKeyring([]string{keyring}, nil)
	if err != nil {
		return err
	}
	text, err := verifyInRelease(data, kr, "the host's", time.Now())
	if err != nil {
		return err
	}
	_, err = parseRelease(text)
	return err
}
