// Package registrytest starts a real OCI registry for tests: Debian's
// docker-registry (the reference distribution registry, 2.8) on a
// loopback port, with TLS from a CA made for the test and htpasswd basic
// auth, its storage in a temporary directory and everything it prints
// (its access log included) kept for the test to read.
//
// The registry listens on 127.0.0.1 only. Its certificate is also good for
// localhost, ::1 and 10.0.2.2, the address a QEMU guest on user-mode
// networking reaches the host's loopback at, so a guest can fetch from it
// with the same CA.
package registrytest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Binary is the registry's command, as Debian installs it.
const Binary = "docker-registry"

// Options change how the registry is started.
type Options struct {
	// PlainHTTP serves plain HTTP instead of TLS.
	PlainHTTP bool
	// NoAuth serves without authentication.
	NoAuth bool
	// Token makes the registry ask for bearer tokens (the flow most
	// hosted registries use) instead of basic auth: a token server on
	// another loopback port gives them for the account's basic
	// credentials, signed with the registry's certificate. Its requests
	// are kept: see TokenRequests.
	Token bool
	// Redirect makes the registry answer blob GETs with a 307 to a second
	// server (another loopback port, same CA) that serves the storage
	// directory, as a registry on object storage redirects to it. That
	// server's requests are kept: see Redirected.
	Redirect bool
	// RedirectHost is the host the redirects name (default 127.0.0.1;
	// 10.0.2.2 for a QEMU guest).
	RedirectHost string
	// Hosts are more names or IP addresses for the certificate.
	Hosts []string
}

// Registry is a running registry.
type Registry struct {
	// Host is HOST:PORT, on 127.0.0.1.
	Host string
	// User and Password are the one account (empty with NoAuth).
	User, Password string
	// CAFile is the PEM certificate of the CA that signed the registry's
	// (and the redirect server's) certificate; CA is the same as a pool.
	CAFile string
	CA     *x509.CertPool
	// AuthFile is a docker config.json holding User and Password for Host.
	AuthFile string
	// Dir is the storage root; ConfigFile the registry's configuration.
	Dir, ConfigFile string

	scheme string
	out    *syncBuffer
	mu     sync.Mutex
	redir  []Request
	tokens []TokenRequest
}

// TokenRequest is a request the token server got.
type TokenRequest struct {
	// User is the basic auth user, "" for an anonymous request.
	User string
	// Scopes are the scope parameters ("repository:fleet/t:pull,push").
	Scopes []string
	// Status is the answer: 200, or 401 for wrong credentials.
	Status int
}

// Request is a request the redirect server got.
type Request struct {
	Method, Path, Range string
	// Authorization is the header's value, which must be empty: the
	// registry's credentials are for the registry only.
	Authorization string
	Status        int
}

// Start starts a registry for t, stopped when t ends. It skips t when the
// docker-registry command is not installed.
func Start(t testing.TB, o Options) *Registry {
	t.Helper()
	bin, err := exec.LookPath(Binary)
	if err != nil {
		t.Skip(Binary + " not installed: apt-get install docker-registry")
	}
	dir := t.TempDir()
	r := &Registry{Dir: filepath.Join(dir, "storage"), ConfigFile: filepath.Join(dir, "config.yml"), scheme: "https", out: &syncBuffer{}}
	if o.PlainHTTP {
		r.scheme = "http"
	}
	if err := os.Mkdir(r.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	hosts := append([]string{"127.0.0.1", "::1", "localhost", "10.0.2.2"}, o.Hosts...)
	leaf, err := r.makeCerts(dir, hosts)
	if err != nil {
		t.Fatal(err)
	}
	if !o.NoAuth {
		r.User, r.Password = "keel", randomHex(12)
		hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(r.User+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	redirectURL, realm := "", ""
	if o.Redirect {
		redirectURL = r.startRedirect(t, leaf, o)
	}
	if o.Token {
		if o.NoAuth {
			t.Fatal("registrytest: Token needs an account: not with NoAuth")
		}
		realm = r.startTokenServer(t, leaf, o)
	}

	// The port is found free and then handed over; another process can
	// take it in between, so a start that fails to listen is retried.
	var (
		cmd  *exec.Cmd
		done chan struct{} // closed when cmd exited
	)
	for attempt := 0; ; attempt++ {
		r.Host, err = freePort()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(r.ConfigFile, r.config(dir, o, redirectURL, realm), 0o644); err != nil {
			t.Fatal(err)
		}
		r.out.Reset()
		cmd = exec.Command(bin, "serve", r.ConfigFile)
		cmd.Stdout, cmd.Stderr = r.out, r.out
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s: %v", bin, err)
		}
		done = make(chan struct{})
		go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(cmd, done)
		err = r.waitReady(done, 30*time.Second)
		if err == nil {
			break
		}
		cmd.Process.Kill()
		<-done
		if attempt == 2 || !strings.Contains(r.out.String(), "address already in use") {
			t.Fatalf("starting %s %s: %v\n%s", bin, r.ConfigFile, err, r.out.String())
		}
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("registry %s output:\n%s", r.Host, r.out.String())
		}
	})
	if !o.NoAuth {
		r.AuthFile = filepath.Join(dir, "auth.json")
		if err := os.WriteFile(r.AuthFile, AuthJSON(r.Host, r.User, r.Password), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// AuthJSON is a docker config.json giving user and password for host.
func AuthJSON(host, user, password string) []byte {
	b, _ := json.MarshalIndent(map[string]any{"auths": map[string]any{
		host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))},
	}}, "", "  ")
	return append(b, '\n')
}

// config is the registry's configuration file.
func (r *Registry) config(dir string, o Options, redirectURL, realm string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `version: 0.1
log:
  level: warn
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: keel-registrytest
  headers:
    X-Content-Type-Options: [nosniff]
`, r.Dir, r.Host)
	if !o.PlainHTTP {
		fmt.Fprintf(&b, "  tls:\n    certificate: %s\n    key: %s\n", filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	}
	switch {
	case realm != "":
		fmt.Fprintf(&b, "auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n", realm, tokenService, tokenIssuer, r.CAFile)
	case !o.NoAuth:
		fmt.Fprintf(&b, "auth:\n  htpasswd:\n    realm: keel-registrytest\n    path: %s\n", filepath.Join(dir, "htpasswd"))
	}
	if redirectURL != "" {
		fmt.Fprintf(&b, "middleware:\n  storage:\n    - name: redirect\n      options:\n        baseurl: %s\n", redirectURL)
	}
	return []byte(b.String())
}

// waitReady polls /v2/ until the registry answers (200, or 401 asking for
// credentials), or the process exits, or d passes.
func (r *Registry) waitReady(exited <-chan struct{}, d time.Duration) error {
	c := r.Client()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("exited")
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := c.Get(r.URL("/v2/"))
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
			return nil
		}
	}
	return fmt.Errorf("not ready after %v", d)
}

// URL is path on the registry.
func (r *Registry) URL(path string) string { return r.scheme + "://" + r.Host + path }

// Client is an HTTP client that trusts the registry's CA and sends no
// credentials.
func (r *Registry) Client() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: r.CA}
	return &http.Client{Transport: t, Timeout: time.Minute}
}

// Get fetches path from the registry with the account's credentials and
// the given headers (an Accept for manifests), and returns the response
// with its whole body.
func (r *Registry) Get(path string, header http.Header) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, r.URL(path), nil)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if r.User != "" {
		req.SetBasicAuth(r.User, r.Password)
	}
	resp, err := r.Client().Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// Log is everything the registry printed so far: its own log and the
// access log (one combined-format line per request).
func (r *Registry) Log() string { return r.out.String() }

// AccessLog is the access log's lines so far that contain substr.
func (r *Registry) AccessLog(substr string) []string {
	var lines []string
	for _, l := range strings.Split(r.out.String(), "\n") {
		// The access log's lines are the ones in combined log format,
		// the only ones that quote an HTTP request line.
		if strings.Contains(l, "\" ") && strings.Contains(l, " HTTP/") && strings.Contains(l, substr) {
			lines = append(lines, l)
		}
	}
	return lines
}

// AccessLogN is AccessLog once it has at least n lines, waiting up to 10
// s for them: the registry writes a request's line after the response,
// so a client can have read the whole answer before its line is there.
// Lines that come within a further 100 ms are returned too, so a test
// expecting n sees more if more came.
func (r *Registry) AccessLogN(substr string, n int) []string {
	deadline := time.Now().Add(10 * time.Second)
	for len(r.AccessLog(substr)) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	return r.AccessLog(substr)
}

// Settle waits until the registry's output has not grown for 200 ms (at
// most 10 s), so that every request answered so far is in the log.
func (r *Registry) Settle() {
	deadline := time.Now().Add(10 * time.Second)
	last, since := len(r.out.String()), time.Now()
	for time.Since(since) < 200*time.Millisecond && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if n := len(r.out.String()); n != last {
			last, since = n, time.Now()
		}
	}
}

// Redirected is the requests the redirect server got so far.
func (r *Registry) Redirected() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.redir...)
}

// startRedirect starts the server the registry redirects blob GETs to:
// a file server of the storage directory, which honours Range.
func (r *Registry) startRedirect(t testing.TB, leaf tls.Certificate, o Options) string {
	files := http.FileServer(http.Dir(r.Dir))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		files.ServeHTTP(rec, req)
		r.mu.Lock()
		r.redir = append(r.redir, Request{Method: req.Method, Path: req.URL.Path, Range: req.Header.Get("Range"), Authorization: req.Header.Get("Authorization"), Status: rec.status})
		r.mu.Unlock()
	}))
	if o.PlainHTTP {
		srv.Start()
	} else {
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
		srv.StartTLS()
	}
	t.Cleanup(srv.Close)
	host := o.RedirectHost
	if host == "" {
		host = "127.0.0.1"
	}
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return r.scheme + "://" + net.JoinHostPort(host, port)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// makeCerts writes ca.pem, cert.pem and key.pem: a CA made for this
// registry and a server certificate it signed for hosts.
func (r *Registry) makeCerts(dir string, hosts []string) (tls.Certificate, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "keel registrytest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	ca, _ = x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "keel registrytest"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	r.CAFile = filepath.Join(dir, "ca.pem")
	for name, b := range map[string][]byte{"ca.pem": caPEM, "cert.pem": certPEM, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return tls.Certificate{}, err
		}
	}
	r.CA = x509.NewCertPool()
	r.CA.AddCert(ca)
	return tls.X509KeyPair(certPEM, keyPEM)
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// syncBuffer is a bytes.Buffer the registry's output goroutines and the
// test can share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}
