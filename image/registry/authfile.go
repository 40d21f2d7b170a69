package registry

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// FileKeychain reads credentials from one auth file in docker's
// config.json format, which is also podman's auth.json:
//
//	{"auths": {"REGISTRY[:PORT]": {"auth": "<base64 of user:password>"}}}
//
// An entry may give "username" and "password" instead of "auth", or an
// "identitytoken" or "registrytoken". Its key is a registry host
// ("https://" and a path after the host are dropped, as docker does) or,
// as podman allows, a host and a repository path; the longest key that
// matches wins. Credential helpers (credsStore, credHelpers) are not run:
// a device has none. The file is read at each lookup, so a device picks up
// a rotated password without a restart.
func FileKeychain(path string) authn.Keychain { return fileKeychain{path} }

type fileKeychain struct{ path string }

type authEntry struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// Resolve implements authn.Keychain.
func (k fileKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	auth, _, err := k.lookup(r)
	return auth, err
}

// lookup returns the authenticator for r and the key of the entry it came
// from (authn.Anonymous and "" when no entry matches).
func (k fileKeychain) lookup(r authn.Resource) (authn.Authenticator, string, error) {
	b, err := os.ReadFile(k.path)
	if err != nil {
		return nil, "", fmt.Errorf("reading auth file: %w", err)
	}
	var f struct {
		Auths map[string]authEntry `json:"auths"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, "", fmt.Errorf("auth file %s: %w", k.path, err)
	}
	target := r.String() // REGISTRY/REPO, or REGISTRY for a registry
	best, bestKey := -1, ""
	var entry authEntry
	for key, e := range f.Auths {
		p := authKey(key)
		if p == "" || (p != target && !strings.HasPrefix(target, p+"/")) {
			continue
		}
		// Longest first; among equal lengths the smallest key, so the
		// choice does not depend on the map's order.
		if len(p) > best || (len(p) == best && key < bestKey) {
			best, bestKey, entry = len(p), key, e
		}
	}
	if best < 0 || entry == (authEntry{}) {
		return authn.Anonymous, "", nil
	}
	if entry.Auth != "" {
		// As docker reads it: "auth" is user:password, and wins.
		b, err := base64.StdEncoding.DecodeString(entry.Auth)
		user, pass, ok := strings.Cut(string(b), ":")
		if err != nil || !ok {
			return nil, "", fmt.Errorf("auth file %s: entry %q: auth is not the base64 of user:password", k.path, bestKey)
		}
		entry.Username, entry.Password = user, pass
	}
	return authn.FromConfig(authn.AuthConfig{
		Username: entry.Username, Password: entry.Password,
		IdentityToken: entry.IdentityToken, RegistryToken: entry.RegistryToken,
	}), bestKey, nil
}

// authKey normalises an auth file key to REGISTRY[/PATH] as
// go-containerregistry spells references, so "docker.io" and its
// canonical host name match alike.
func authKey(key string) string {
	k, scheme := strings.CutPrefix(key, "https://")
	if !scheme {
		k, scheme = strings.CutPrefix(key, "http://")
	}
	host, path, _ := strings.Cut(k, "/")
	if scheme {
		path = "" // docker's "https://host/v1/": the path is the API's, not a repository
	}
	reg, err := name.NewRegistry(host, name.WeakValidation)
	if err != nil {
		return ""
	}
	if path = strings.Trim(path, "/"); path != "" {
		return reg.RegistryStr() + "/" + path
	}
	return reg.RegistryStr()
}
