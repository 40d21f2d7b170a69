package registrytest

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The token server's names, which the registry's configuration checks
// each token's claims against.
const (
	tokenService = "keel-registrytest"
	tokenIssuer  = "keel-registrytest-issuer"
)

// TokenRequests is the requests the token server got so far.
func (r *Registry) TokenRequests() []TokenRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]TokenRequest(nil), r.tokens...)
}

// startTokenServer starts the server of the registry's token realm, as
// the distribution registry's token auth specifies it: GET
// REALM?service=…&scope=repository:NAME:ACTIONS with basic credentials
// answers {"token": JWT}; the JWT is signed (ES256) with the registry's
// own certificate's key, sent in its x5c header, which the registry
// verifies against the test CA. Good credentials get every action asked
// for; no credentials get a token that grants nothing, as hosted
// registries give anonymous clients; wrong ones get 401.
func (r *Registry) startTokenServer(t testing.TB, leaf tls.Certificate, o Options) string {
	key := leaf.PrivateKey.(*ecdsa.PrivateKey)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		user, pass, hasAuth := req.BasicAuth()
		scopes := req.URL.Query()["scope"]
		status := http.StatusOK
		if hasAuth && (user != r.User || pass != r.Password) {
			status = http.StatusUnauthorized
		}
		r.mu.Lock()
		r.tokens = append(r.tokens, TokenRequest{User: user, Scopes: scopes, Status: status})
		r.mu.Unlock()
		if status != http.StatusOK {
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"wrong user or password"}]}`, status)
			return
		}
		type access struct {
			Type    string   `json:"type"`
			Name    string   `json:"name"`
			Actions []string `json:"actions"`
		}
		grants := []access{}
		for _, s := range scopes {
			// TYPE:NAME:ACTIONS, with comma-separated actions.
			typ, rest, ok1 := strings.Cut(s, ":")
			i := strings.LastIndex(rest, ":")
			if !ok1 || i < 0 || !hasAuth {
				continue
			}
			grants = append(grants, access{Type: typ, Name: rest[:i], Actions: strings.Split(rest[i+1:], ",")})
		}
		now := time.Now()
		tok, err := signJWT(key, leaf.Certificate[0], map[string]any{
			"iss": tokenIssuer, "sub": user, "aud": tokenService,
			"exp": now.Add(5 * time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(),
			"jti": randomHex(8), "access": grants,
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"token": tok, "access_token": tok, "expires_in": 300, "issued_at": now.UTC().Format(time.RFC3339)})
	}))
	if o.PlainHTTP {
		srv.Start()
	} else {
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
		srv.StartTLS()
	}
	t.Cleanup(srv.Close)
	// go-containerregistry refuses a realm at a private or loopback IP
	// address other than the registry's own host:port (against a registry
	// sending clients to internal services); a name is let through.
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return r.scheme + "://localhost:" + port + "/token"
}

// signJWT makes a compact JWS (ES256) of claims with key, whose
// certificate (DER) goes in the x5c header.
func signJWT(key *ecdsa.PrivateKey, certDER []byte, claims map[string]any) (string, error) {
	enc := base64.RawURLEncoding
	h, err := json.Marshal(map[string]any{"typ": "JWT", "alg": "ES256", "x5c": []string{base64.StdEncoding.EncodeToString(certDER)}})
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signed := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	sum := sha256.Sum256([]byte(signed))
	rr, ss, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		return "", err
	}
	// JWS's ES256 signature is r and s, 32 bytes each, not ASN.1.
	sig := make([]byte, 64)
	rr.FillBytes(sig[:32])
	ss.FillBytes(sig[32:])
	return signed + "." + enc.EncodeToString(sig), nil
}
