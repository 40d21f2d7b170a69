// Package fetch reads a remote file from start to end over a network that
// drops connections: after a cut, a read error or a stall it reopens at the
// offset reached (an HTTP range request), so each byte is fetched once, and
// it caps the bandwidth it uses. keelctl update streams bundles through it
// straight into a slot, with no temporary copy.
//
// A Source is anything that can be opened at an offset: an HTTP(S) URL
// (URL), a registry blob (image/registry). The Reader does the retrying.
package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// Source is something that can be read from any offset (an HTTP URL, a
// registry blob).
type Source interface {
	// Open returns the bytes from off to the end; size is the total (-1
	// if unknown). An error that retrying cannot cure is marked with
	// Permanent (or is a *StatusError that is not Temporary); the Reader
	// retries the others.
	Open(ctx context.Context, off int64) (body io.ReadCloser, size int64, err error)
	String() string // for messages, without credentials
}

// RangeSource is a Source that can also fetch a bounded range, so that a
// client needing only a file's head (keelctl update --check: a bundle's
// header and manifest) does not make the server start sending it all.
type RangeSource interface {
	Source
	// OpenRange returns at most n bytes from off (fewer where the file
	// ends).
	OpenRange(ctx context.Context, off, n int64) (io.ReadCloser, error)
}

// Errors callers branch on.
var (
	// ErrChanged: the file changed between two requests (another ETag,
	// Last-Modified or size), so its parts cannot be spliced together.
	ErrChanged = errors.New("changed on the server while it was being fetched")
	// ErrBadRange: the server answered a range request with other bytes
	// than those asked for.
	ErrBadRange = errors.New("server answered with another range than asked")
)

// StatusError is an HTTP answer other than the file.
type StatusError struct {
	URL    string // without credentials
	Code   int
	Status string
}

func (e *StatusError) Error() string { return fmt.Sprintf("GET %s: %s", e.URL, e.Status) }

// Temporary says whether asking again later may succeed: request timeout,
// too many requests, and the server errors (5xx).
func (e *StatusError) Temporary() bool {
	return e.Code == http.StatusRequestTimeout || e.Code == http.StatusTooManyRequests || e.Code >= 500
}

// Permanent marks err as one that retrying cannot cure (a missing file, a
// refused certificate, a file that changed), so the Reader gives up at
// once. nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// IsPermanent reports whether retrying err is pointless: marked by
// Permanent, an HTTP status that is not temporary, or a TLS certificate
// the client does not accept.
func IsPermanent(err error) bool {
	var p permanentError
	var s *StatusError
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &p), errors.As(err, &cv), errors.As(err, &ua), errors.As(err, &hn), errors.As(err, &ci):
		return true
	case errors.As(err, &s):
		return !s.Temporary()
	}
	return false
}

// URL is the file at rawURL, fetched with client (nil: http.DefaultClient)
// and the extra request headers in header (authorization, say).
//
// Every request asks for the identity encoding, so offsets are the file's.
// A reopened request carries Range: bytes=N- and If-Range with the first
// answer's strong ETag (else its Last-Modified), and every answer's ETag,
// Last-Modified and size must be the first's: a file replaced on the
// server half-way through is refused with ErrChanged, never spliced. A
// server that ignores ranges (200 rather than 206, same validators) is
// read from the start again and the bytes before the offset dropped: they
// cross the network twice, and the body reports them through Skipped, so
// the Reader counts them in Fetched and under its rate cap.
func URL(client *http.Client, rawURL string, header http.Header) Source {
	if client == nil {
		client = http.DefaultClient
	}
	return &urlSource{client: client, url: rawURL, header: header, size: -1}
}

type urlSource struct {
	client *http.Client
	url    string
	header http.Header

	mu            sync.Mutex
	seen          bool // the first answer's validators are recorded
	etag, lastMod string
	size          int64
}

func (s *urlSource) String() string { return Redact(s.url) }

// Redact is rawURL for messages: no user or password, and no query, which
// may carry a signed token.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	return u.String()
}

func (s *urlSource) Open(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
	resp, err := s.get(ctx, off, -1)
	if err != nil {
		return nil, 0, err
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		// A range that ends before the file does (a server or proxy that
		// caps its answers) is fine: the Reader reopens where it ends.
		start, end, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err == nil && start != off {
			err = fmt.Errorf("asked for bytes %d- and got %d-%d/%d", off, start, end, total)
		}
		if err != nil {
			resp.Body.Close()
			return nil, 0, Permanent(fmt.Errorf("GET %s: %w: %v", s, ErrBadRange, err))
		}
		if err := s.checkSize(total); err != nil {
			resp.Body.Close()
			return nil, 0, err
		}
		return resp.Body, total, nil
	case http.StatusOK:
		if err := s.checkSize(resp.ContentLength); err != nil {
			resp.Body.Close()
			return nil, 0, err
		}
		if off == 0 {
			return resp.Body, resp.ContentLength, nil
		}
		// The same file (the validators matched), from its start: the
		// server does not do ranges.
		return &skipBody{ReadCloser: resp.Body, skip: off}, resp.ContentLength, nil
	}
	resp.Body.Close()
	return nil, 0, s.statusError(resp)
}

// OpenRange asks for bytes off to off+n-1. A server that ignores ranges
// sends the whole file: the bytes before off are dropped (and reported by
// Skipped), the body closed after n.
func (s *urlSource) OpenRange(ctx context.Context, off, n int64) (io.ReadCloser, error) {
	if n <= 0 {
		return io.NopCloser(strings.NewReader("")), nil
	}
	resp, err := s.get(ctx, off, n)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, end, _, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err == nil && (start != off || end > off+n-1) {
			err = fmt.Errorf("asked for bytes %d-%d and got %d-%d", off, off+n-1, start, end)
		}
		if err != nil {
			resp.Body.Close()
			return nil, Permanent(fmt.Errorf("GET %s: %w: %v", s, ErrBadRange, err))
		}
		return resp.Body, nil
	case http.StatusOK:
		return &skipBody{ReadCloser: resp.Body, skip: off, limit: n}, nil
	case http.StatusRequestedRangeNotSatisfiable:
		resp.Body.Close()
		return io.NopCloser(strings.NewReader("")), nil // off is at or past the end
	}
	resp.Body.Close()
	return nil, s.statusError(resp)
}

// get sends the request for bytes off- (n < 0) or off to off+n-1, and
// checks a 2xx answer's validators against the first answer's.
func (s *urlSource) get(ctx context.Context, off, n int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, Permanent(fmt.Errorf("fetch %s: %w", s, err))
	}
	for k, v := range s.header {
		req.Header[k] = v
	}
	// Offsets are the file's, not those of a compressed encoding.
	req.Header.Set("Accept-Encoding", "identity")
	s.mu.Lock()
	etag, lastMod := s.etag, s.lastMod
	s.mu.Unlock()
	if off > 0 || n >= 0 {
		if n >= 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
		} else {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
		}
		// If-Range: a changed file comes back whole (200), which the
		// validators below then refuse, rather than a range of it.
		switch {
		case etag != "" && !strings.HasPrefix(etag, "W/"):
			req.Header.Set("If-Range", etag)
		case lastMod != "":
			req.Header.Set("If-Range", lastMod)
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if IsPermanent(err) {
			return nil, Permanent(err)
		}
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return resp, nil
	}
	if err := s.checkValidators(resp); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// checkValidators records the first answer's ETag and Last-Modified and
// refuses a later answer with others.
func (s *urlSource) checkValidators(resp *http.Response) error {
	etag, lastMod := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.seen {
		s.seen, s.etag, s.lastMod = true, etag, lastMod
		return nil
	}
	if s.etag != "" && etag != "" && etag != s.etag {
		return Permanent(fmt.Errorf("%s: %w (ETag %s, was %s)", s, ErrChanged, etag, s.etag))
	}
	if s.lastMod != "" && lastMod != "" && lastMod != s.lastMod {
		return Permanent(fmt.Errorf("%s: %w (Last-Modified %s, was %s)", s, ErrChanged, lastMod, s.lastMod))
	}
	return nil
}

// checkSize records the first known size and refuses another later.
func (s *urlSource) checkSize(size int64) error {
	if size < 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.size < 0 {
		s.size = size
		return nil
	}
	if size != s.size {
		return Permanent(fmt.Errorf("%s: %w (%d bytes, was %d)", s, ErrChanged, size, s.size))
	}
	return nil
}

func (s *urlSource) statusError(resp *http.Response) error {
	e := &StatusError{URL: s.String(), Code: resp.StatusCode, Status: resp.Status}
	if !e.Temporary() {
		return Permanent(e)
	}
	return e
}

// parseContentRange reads "bytes START-END/TOTAL" (TOTAL may be *: -1).
func parseContentRange(v string) (start, end, total int64, err error) {
	bad := fmt.Errorf("Content-Range %q", v)
	r, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, 0, bad
	}
	rng, tot, ok := strings.Cut(r, "/")
	if !ok {
		return 0, 0, 0, bad
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, 0, bad
	}
	if start, err = strconv.ParseInt(a, 10, 64); err != nil {
		return 0, 0, 0, bad
	}
	if end, err = strconv.ParseInt(b, 10, 64); err != nil || end < start {
		return 0, 0, 0, bad
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil || total <= end {
			return 0, 0, 0, bad
		}
	}
	return start, end, total, nil
}

// skipBody drops the first skip bytes of a whole file sent in answer to a
// range request, then gives at most limit bytes (0: no limit). While it
// drops, Read returns 0 bytes and no error after each chunk, so the Reader
// can count them (Skipped) and pace them as they come.
type skipBody struct {
	io.ReadCloser
	skip, skipped int64
	limit, given  int64
}

// Skipped is how many bytes the body received and dropped so far.
func (b *skipBody) Skipped() int64 { return b.skipped }

func (b *skipBody) Read(p []byte) (int, error) {
	if b.skip > 0 {
		n, err := b.ReadCloser.Read(p[:min(int64(len(p)), b.skip)])
		b.skip -= int64(n)
		b.skipped += int64(n)
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the file ends before the offset
		}
		return 0, err
	}
	if b.limit > 0 {
		if b.given >= b.limit {
			return 0, io.EOF
		}
		p = p[:min(int64(len(p)), b.limit-b.given)]
	}
	n, err := b.ReadCloser.Read(p)
	b.given += int64(n)
	return n, err
}
