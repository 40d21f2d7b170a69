package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Media types and annotations of a bundle stored as an OCI artifact (see
// the package comment).
const (
	// ArtifactType is the manifest's artifactType, and the config blob's
	// media type.
	ArtifactType    = "application/vnd.keel.bundle.v1"
	ConfigMediaType = ArtifactType
	// LayerMediaType is the media type of the one layer: the .keel file.
	LayerMediaType = "application/vnd.keel.bundle.layer.v1"
	// keelMediaPrefix starts every media type keel publishes; Resolve
	// passes over extra layers of such types (published beside the bundle)
	// and refuses any other.
	keelMediaPrefix = "application/vnd.keel."

	AnnotationName       = "org.keel.name"
	AnnotationVersion    = "org.keel.version"
	AnnotationCompatible = "org.keel.compatible"
	AnnotationArch       = "org.keel.arch"
	AnnotationBuildID    = "org.keel.build-id"
	// AnnotationOCIVersion and AnnotationTitle are the OCI's own: registry
	// web interfaces show the first, and oras names a pulled file after
	// the second.
	AnnotationOCIVersion = "org.opencontainers.image.version"
	AnnotationTitle      = "org.opencontainers.image.title"
)

// Errors callers branch on, each returned wrapped with what was wrong.
var (
	// ErrBadRef: the reference does not parse (or a push names a digest).
	ErrBadRef = errors.New("bad registry reference")
	// ErrBadBundle: Push was given a file that is not an intact, signed
	// bundle; nothing was sent.
	ErrBadBundle = errors.New("not an intact, signed keel bundle")
	// ErrNotBundle: the reference holds something other than a keel
	// bundle (a container image, an index, another artifact).
	ErrNotBundle = errors.New("not a keel bundle")
	// ErrUnauthorized: the registry refused the credentials, or asked
	// for some and there were none.
	ErrUnauthorized = errors.New("registry refused access")
	// ErrNotFound: no such repository, tag or manifest.
	ErrNotFound = errors.New("not found in the registry")
)

// Options say how to reach a registry; Push and Resolve share them.
type Options struct {
	// Keychain finds credentials for a registry; nil means
	// authn.DefaultKeychain, which in go-containerregistry v0.22 reads the
	// first of these files that exists, and only that one:
	// $HOME/.docker/config.json or $DOCKER_CONFIG/config.json (with
	// docker's credential helpers, credsStore and credHelpers), else
	// $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json,
	// else $XDG_CONFIG_HOME/containers/auth.json (~/.config by default).
	// Podman itself reads these the other way round, its auth.json first.
	Keychain authn.Keychain
	// AuthFile is a docker config.json-format file (podman's auth.json
	// is the same) to take credentials from instead of Keychain, as a
	// device does: see FileKeychain.
	AuthFile string
	// CAFile is a PEM file of certificates trusted beside the system's.
	CAFile string
	// Insecure allows plain HTTP (HTTPS is still tried first). Without
	// it every request to the registry is HTTPS, whatever the host.
	Insecure bool
	// Transport is the base HTTP transport (nil: Go's default, with
	// CAFile's certificates). Authentication is added on top of it.
	Transport http.RoundTripper
	// Logger gets debug messages (nil: discarded).
	Logger *slog.Logger
}

func (o *Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// ParseReference parses REGISTRY/REPO:TAG or REGISTRY/REPO@sha256:…,
// with or without the oci:// prefix devices use in URLs.
func ParseReference(ref string, insecure bool) (name.Reference, error) {
	s := strings.TrimPrefix(ref, "oci://")
	if i := strings.Index(s, "://"); i >= 0 {
		return nil, fmt.Errorf("%w: %q: scheme %q is not oci://", ErrBadRef, ref, s[:i])
	}
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(s, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRef, err)
	}
	return r, nil
}

// client is an authenticated connection to one repository.
type client struct {
	repo name.Repository
	// tr adds the credentials (basic, or a bearer token it renews) to
	// requests for the registry's host, and nothing to other hosts such
	// as the storage a blob request is redirected to.
	tr    http.RoundTripper
	creds string // where the credentials came from, for messages
}

// connect pings the registry and sets up authentication for action
// (transport.PullScope or transport.PushScope) on repo.
func (o *Options) connect(ctx context.Context, repo name.Repository, action string) (*client, error) {
	base, err := o.baseTransport()
	if err != nil {
		return nil, err
	}
	auth, creds, err := o.authenticator(ctx, repo)
	if err != nil {
		return nil, err
	}
	c := &client{repo: repo, creds: creds}
	// go-containerregistry picks plain HTTP as a fallback for loopback and
	// private addresses, racing it against HTTPS; base refuses it, but
	// the refusal would then stand beside the real HTTPS error in the
	// message. Asking once first gives that error alone.
	if !o.Insecure && repo.Scheme() == "http" {
		if err := ping(ctx, base, repo.RegistryStr()); err != nil {
			return nil, err
		}
	}
	o.logger().Debug("connecting to registry", "repository", repo.String(), "action", action, "credentials", creds)
	tr, err := transport.NewWithContext(ctx, repo.Registry, auth, base, []string{repo.Scope(action)})
	if err != nil {
		return nil, c.explain(err, "connecting to "+repo.RegistryStr())
	}
	c.tr = tr
	return c, nil
}

func ping(ctx context.Context, rt http.RoundTripper, host string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := rt.RoundTrip(req)
	if errors.As(err, new(tls.RecordHeaderError)) {
		return fmt.Errorf("registry %s: %w (a plain HTTP registry? the insecure option allows it)", host, err)
	}
	if err != nil {
		return fmt.Errorf("registry %s: %w", host, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.Body.Close()
}

// baseTransport is the HTTP transport under the authentication: o's or
// Go's default with the CA file's roots, refusing plain HTTP unless
// Insecure, retrying temporary network errors as go-containerregistry's
// own default does.
func (o *Options) baseTransport() (http.RoundTripper, error) {
	rt := o.Transport
	switch {
	case rt != nil && o.CAFile != "":
		return nil, errors.New("registry options: CAFile and Transport are exclusive (put the CA in the transport)")
	case rt == nil:
		t := http.DefaultTransport.(*http.Transport).Clone()
		if o.CAFile != "" {
			pool, err := CAPool(o.CAFile)
			if err != nil {
				return nil, err
			}
			t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		rt = t
	}
	if !o.Insecure {
		rt = httpsOnly{rt}
	}
	return transport.NewRetry(rt), nil
}

// CAPool is the system's roots (none on a device without a bundle of
// them) plus the certificates of file.
func CAPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// httpsOnly refuses plain HTTP requests, so that neither
// go-containerregistry's fallback nor a token realm or a redirect sends
// credentials or fetches an update in clear unless Options.Insecure says so.
type httpsOnly struct{ inner http.RoundTripper }

func (h httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("%s %s: plain HTTP refused (the insecure option allows it)", req.Method, req.URL.Redacted())
	}
	return h.inner.RoundTrip(req)
}

// authenticator finds the credentials for repo and says where they came
// from (or where none were found), for the message of a refusal.
func (o *Options) authenticator(ctx context.Context, repo name.Repository) (authn.Authenticator, string, error) {
	host := repo.RegistryStr()
	if o.AuthFile != "" {
		k := fileKeychain{o.AuthFile}
		auth, key, err := k.lookup(repo)
		if err != nil {
			return nil, "", err
		}
		if auth == authn.Anonymous {
			return auth, fmt.Sprintf("no credentials for %s in %s", host, o.AuthFile), nil
		}
		return auth, fmt.Sprintf("credentials %q of %s", key, o.AuthFile), nil
	}
	kc, where := o.Keychain, "the keychain"
	if kc == nil {
		kc, where = authn.DefaultKeychain, "the docker or podman auth files"
	}
	auth, err := authn.Resolve(ctx, kc, repo)
	if err != nil {
		return nil, "", fmt.Errorf("credentials for %s: %w", host, err)
	}
	if auth == authn.Anonymous {
		return auth, fmt.Sprintf("no credentials for %s in %s", host, where), nil
	}
	return auth, fmt.Sprintf("credentials for %s from %s", host, where), nil
}

// regError is an error of a registry request, shortened for people and
// kept whole for errors.Is and errors.As.
type regError struct {
	kind error // ErrUnauthorized, ErrNotFound or nil
	msg  string
	err  error
}

func (e *regError) Error() string { return e.msg }
func (e *regError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.err}
	}
	return []error{e.kind, e.err}
}

// explain turns a go-containerregistry error into one that says what was
// refused and with which credentials.
func (c *client) explain(err error, doing string) error {
	var te *transport.Error
	if !errors.As(err, &te) {
		return fmt.Errorf("%s: %w", doing, err)
	}
	what := fmt.Sprintf("HTTP %d", te.StatusCode)
	if te.Request != nil {
		what = fmt.Sprintf("%s %s: %s", te.Request.Method, te.Request.URL.Redacted(), what)
	}
	for i, d := range te.Errors {
		if i == 0 {
			what += ":"
		}
		what += fmt.Sprintf(" %s %s", d.Code, d.Message)
	}
	switch te.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return &regError{ErrUnauthorized, fmt.Sprintf("%s: %s: %v (%s)", doing, ErrUnauthorized, what, c.creds), err}
	case http.StatusNotFound:
		return &regError{ErrNotFound, fmt.Sprintf("%s: %s: %v", doing, ErrNotFound, what), err}
	}
	return &regError{nil, fmt.Sprintf("%s: %v", doing, what), err}
}
