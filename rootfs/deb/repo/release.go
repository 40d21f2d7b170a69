package repo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"pault.ag/go/debian/control"
)

// keyring is the set of keys an InRelease may be signed by, and how to
// name it in messages.
type keyring struct {
	keys openpgp.EntityList
	desc string
}

// loadKeyring reads the keyring files (binary, as .gpg files and
// /usr/share/keyrings are, or armored, as .asc files are) and the inline
// key data. Every file must hold at least one usable key: a keyring that
// silently contributes nothing is a configuration mistake worth hearing
// about.
func loadKeyring(paths []string, data []byte) (*keyring, error) {
	kr := &keyring{}
	var names []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("reading keyring: %w", err)
		}
		keys, err := parseKeys(b)
		if err != nil {
			return nil, fmt.Errorf("keyring %s: %w", p, err)
		}
		kr.keys = append(kr.keys, keys...)
		names = append(names, p)
	}
	if len(data) > 0 {
		keys, err := parseKeys(data)
		if err != nil {
			return nil, fmt.Errorf("inline keyring: %w", err)
		}
		kr.keys = append(kr.keys, keys...)
		names = append(names, "the inline keyring")
	}
	if len(names) == 0 {
		return nil, errors.New("no keyring: InRelease cannot be verified")
	}
	kr.desc = strings.Join(names, ", ")
	return kr, nil
}

// parseKeys reads public keys from a binary keyring or from one or more
// armored key blocks.
func parseKeys(b []byte) (openpgp.EntityList, error) {
	trimmed := bytes.TrimLeft(b, " \t\r\n")
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN PGP")) {
		keys, err := openpgp.ReadKeyRing(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("not an OpenPGP keyring: %w", err)
		}
		if len(keys) == 0 {
			return nil, errors.New("no keys in it")
		}
		return keys, nil
	}
	var all openpgp.EntityList
	r := bytes.NewReader(trimmed)
	for {
		block, err := armor.Decode(r)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("armored keyring: %w", err)
		}
		if block.Type != openpgp.PublicKeyType {
			return nil, fmt.Errorf("armored block is %q, not a public key", block.Type)
		}
		keys, err := openpgp.ReadKeyRing(block.Body)
		if err != nil {
			return nil, fmt.Errorf("armored keyring: %w", err)
		}
		all = append(all, keys...)
	}
	if len(all) == 0 {
		return nil, errors.New("no keys in it")
	}
	return all, nil
}

// verifyInRelease checks a clearsigned InRelease against the keyring and
// returns the signed text: the only bytes the Release fields may be read
// from. The file must be exactly one clearsigned message; text before or
// after it is refused, as apt refuses it, since a parser that read it would
// be reading unsigned data.
func verifyInRelease(data []byte, kr *keyring, suite string, now time.Time) ([]byte, error) {
	const begin = "-----BEGIN PGP SIGNED MESSAGE-----"
	if !bytes.HasPrefix(data, []byte(begin+"\n")) && !bytes.HasPrefix(data, []byte(begin+"\r\n")) {
		return nil, verifyErrorf("InRelease of %s is not a clearsigned message", suite)
	}
	block, rest := clearsign.Decode(data)
	if block == nil || block.ArmoredSignature == nil {
		return nil, verifyErrorf("InRelease of %s is not a well-formed clearsigned message", suite)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, verifyErrorf("InRelease of %s has data after its signature", suite)
	}
	sig, err := io.ReadAll(block.ArmoredSignature.Body)
	if err != nil {
		return nil, verifyErrorf("InRelease of %s: reading its signature: %v", suite, err)
	}
	cfg := &packet.Config{Time: func() time.Time { return now }}
	_, err = openpgp.CheckDetachedSignature(kr.keys, bytes.NewReader(block.Bytes), bytes.NewReader(sig), cfg)
	switch {
	case err == nil:
		return block.Plaintext, nil
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return nil, verifyErrorf("InRelease of %s is not signed by a key in %s (it is signed by %s)",
			suite, kr.desc, issuers(sig))
	default:
		return nil, verifyErrorf("InRelease of %s: bad signature (keyring %s): %v", suite, kr.desc, err)
	}
}

// issuers names the keys that made the signatures, for messages.
func issuers(sig []byte) string {
	var ids []string
	r := packet.NewReader(bytes.NewReader(sig))
	for {
		p, err := r.Next()
		if err != nil {
			break
		}
		if s, ok := p.(*packet.Signature); ok {
			switch {
			case s.IssuerFingerprint != nil:
				ids = append(ids, fmt.Sprintf("%X", s.IssuerFingerprint))
			case s.IssuerKeyId != nil:
				ids = append(ids, fmt.Sprintf("%016X", *s.IssuerKeyId))
			}
		}
	}
	if len(ids) == 0 {
		return "no key keel can identify"
	}
	return "key " + strings.Join(ids, " and key ")
}

// release is what keel reads of a verified Release text.
type release struct {
	Suite, Codename, Date string
	date, validUntil      time.Time
	Architectures         []string
	Components            []string
	AcquireByHash         bool
	files                 map[string]fileSum // by path under dists/SUITE/, from the SHA256 field
}

// fileSum is one line of a Release file's SHA256 field.
type fileSum struct {
	name   string
	size   int64
	sha256 string
}

func parseRelease(text []byte) (*release, error) {
	pr, err := control.NewParagraphReader(bytes.NewReader(text), nil)
	if err != nil {
		return nil, err
	}
	para, err := pr.Next()
	if err != nil {
		return nil, fmt.Errorf("no Release fields: %w", err)
	}
	f := para.Values
	r := &release{
		Suite: f["Suite"], Codename: f["Codename"], Date: f["Date"],
		Architectures: strings.Fields(f["Architectures"]),
		Components:    strings.Fields(f["Components"]),
		AcquireByHash: f["Acquire-By-Hash"] == "yes",
		files:         map[string]fileSum{},
	}
	if r.date, err = parseDate(r.Date); err != nil {
		return nil, fmt.Errorf("Date: %w", err)
	}
	if v := f["Valid-Until"]; v != "" {
		if r.validUntil, err = parseDate(v); err != nil {
			return nil, fmt.Errorf("Valid-Until: %w", err)
		}
	}
	for _, line := range strings.Split(f["SHA256"], "\n") {
		fs := strings.Fields(line)
		if len(fs) == 0 {
			continue
		}
		if len(fs) != 3 || !isSHA256(fs[0]) {
			return nil, fmt.Errorf("SHA256: bad line %q", line)
		}
		size, err := strconv.ParseInt(fs[1], 10, 64)
		if err != nil || size < 0 {
			return nil, fmt.Errorf("SHA256: bad size in %q", line)
		}
		r.files[fs[2]] = fileSum{name: fs[2], size: size, sha256: strings.ToLower(fs[0])}
	}
	if len(r.files) == 0 {
		return nil, errors.New("no SHA256 field: keel checks index files by sha256")
	}
	return r, nil
}

// parseDate reads a Release date: RFC 2822 in UTC, "Sat, 10 Feb 2024
// 10:09:37 UTC" (or "+0000").
func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC1123, time.RFC1123Z, "Mon, 2 Jan 2006 15:04:05 MST", "Mon, 2 Jan 2006 15:04:05 -0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 2822 date", s)
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
