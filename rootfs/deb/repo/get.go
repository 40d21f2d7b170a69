package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// StatusError is a mirror's answer other than 200 OK.
type StatusError struct {
	URL  string
	Code int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("GET %s: %d %s", e.URL, e.Code, http.StatusText(e.Code))
}

// getter reads files from a mirror: http://, https:// or file://.
type getter struct {
	base   *url.URL
	client *http.Client
}

func newGetter(mirror string, client *http.Client) (*getter, error) {
	u, err := url.Parse(strings.TrimRight(mirror, "/"))
	if err != nil {
		return nil, fmt.Errorf("mirror %q: %w", mirror, err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return nil, fmt.Errorf("mirror %q has no host", mirror)
		}
	case "file":
		if u.Path == "" {
			return nil, fmt.Errorf("mirror %q has no path", mirror)
		}
	default:
		return nil, fmt.Errorf("mirror %q: keel fetches from http://, https:// or file:// URLs", mirror)
	}
	if client == nil {
		// No overall timeout (a large .deb on a slow link is fine), but a
		// server that never answers is an error rather than a hang. No
		// transparent gzip: the bytes hashed must be the file's own, even
		// from a server that labels Packages.gz "Content-Encoding: gzip".
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ResponseHeaderTimeout = time.Minute
		tr.DisableCompression = true
		client = &http.Client{Transport: tr}
	}
	return &getter{base: u, client: client}, nil
}

// url joins a path relative to the mirror's root, which must stay inside
// it: index entries and lock files are input, and a Filename of
// "../../etc/passwd" must not read a file:// mirror's neighbours.
func (g *getter) url(rel string) (string, error) {
	if !safeRel(rel) {
		return "", fmt.Errorf("%q is not a plain relative path", rel)
	}
	u := *g.base
	u.Path = path.Join(u.Path, rel)
	u.RawPath = ""
	return u.String(), nil
}

func safeRel(rel string) bool {
	return rel != "" && !strings.HasPrefix(rel, "/") && path.Clean(rel) == rel &&
		rel != ".." && !strings.HasPrefix(rel, "../") && !strings.ContainsAny(rel, "\\\x00?#")
}

// open starts reading rel; size is the length the server announced, -1
// when unknown.
func (g *getter) open(ctx context.Context, rel string) (body io.ReadCloser, size int64, where string, err error) {
	where, err = g.url(rel)
	if err != nil {
		return nil, 0, "", err
	}
	if g.base.Scheme == "file" {
		f, err := os.Open(filepath.Join(g.base.Path, filepath.FromSlash(rel)))
		if err != nil {
			return nil, 0, where, err
		}
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			f.Close()
			return nil, 0, where, fmt.Errorf("%s is not a regular file", where)
		}
		return f, fi.Size(), where, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
	if err != nil {
		return nil, 0, where, err
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, 0, where, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, 0, where, &StatusError{URL: where, Code: resp.StatusCode}
	}
	return resp.Body, resp.ContentLength, where, nil
}

// isNotFound says whether err means the file is not on the mirror.
func isNotFound(err error) bool {
	var se *StatusError
	return errors.Is(err, os.ErrNotExist) || (errors.As(err, &se) && se.Code == http.StatusNotFound)
}

// readSmall reads a whole small file (InRelease) from the mirror, refusing
// one larger than limit.
func (g *getter) readSmall(ctx context.Context, rel string, limit int64) ([]byte, error) {
	body, _, where, err := g.open(ctx, rel)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", where, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", where, limit)
	}
	return b, nil
}

// download copies rel from the mirror to dst, checking its size and sha256
// as it streams. The bytes go to a temporary file beside dst, renamed to
// dst only once they match, so dst never holds anything unverified and
// processes sharing the cache never see a partial file. progress, if not
// nil, is told every chunk's length.
func (g *getter) download(ctx context.Context, rel, dst string, size int64, sum string, progress func(int64)) error {
	body, announced, where, err := g.open(ctx, rel)
	if err != nil {
		return err
	}
	defer body.Close()
	if announced >= 0 && announced != size {
		return verifyErrorf("%s: the mirror announces %d bytes, expected %d", where, announced, size)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".tmp-"+filepath.Base(dst)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	w := io.Writer(io.MultiWriter(tmp, h))
	if progress != nil {
		w = io.MultiWriter(w, progressWriter(progress))
	}
	// One byte past the expected size is enough to know it is too long.
	n, err := io.Copy(w, io.LimitReader(body, size+1))
	if err != nil {
		if n < size {
			return fmt.Errorf("%s: download cut short after %d of %d bytes: %w", where, n, size, err)
		}
		return fmt.Errorf("downloading %s: %w", where, err)
	}
	switch got := hex.EncodeToString(h.Sum(nil)); {
	case n < size:
		return verifyErrorf("%s: truncated: got %d bytes, expected %d", where, n, size)
	case n > size:
		return verifyErrorf("%s: larger than the expected %d bytes", where, size)
	case got != sum:
		return verifyErrorf("%s: sha256 is %s, expected %s", where, got, sum)
	}
	if err := commit(tmp, dst); err != nil {
		return err
	}
	tmp = nil
	return nil
}

// commit makes a verified temporary file durable and gives it its final
// name. The sync comes before the rename so that after a crash a final
// name never holds a short file.
func commit(tmp *os.File, dst string) error {
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	return nil
}

type progressWriter func(int64)

func (p progressWriter) Write(b []byte) (int, error) {
	p(int64(len(b)))
	return len(b), nil
}
