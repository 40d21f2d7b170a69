package fetch

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"keel/image/fetch/fetchtest"
)

// fileServer serves one file with http.ServeContent (ranges, If-Range,
// ETag, Last-Modified), as a static file server or a CDN does, and records
// each request's range headers. Its file can be replaced while a client
// reads it.
type fileServer struct {
	mu          sync.Mutex
	data        []byte
	etag        string    // sent as ETag when not empty
	mod         time.Time // Last-Modified (zero: none)
	ignoreRange bool      // answer every request with the whole file (200)
	chunked     bool      // answer a request without Range with no Content-Length
	requests    []string  // "Range If-Range" of each request
}

func (f *fileServer) set(data []byte, etag string, mod time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data, f.etag, f.mod = data, etag, mod
}

func (f *fileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	data, etag, mod := f.data, f.etag, f.mod
	f.requests = append(f.requests, strings.TrimSpace(r.Header.Get("Range")+" "+r.Header.Get("If-Range")))
	f.mu.Unlock()
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	if f.ignoreRange {
		r.Header.Del("Range")
	}
	if f.chunked && r.Header.Get("Range") == "" {
		// No Content-Length: the client learns the size only at the end.
		for p := data; len(p) > 0; {
			n := min(len(p), 64<<10)
			if _, err := w.Write(p[:n]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			p = p[n:]
		}
		return
	}
	http.ServeContent(w, r, "file", mod, bytes.NewReader(data))
}

func (f *fileServer) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func random(t testing.TB, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestResume cuts the connection at 30% and 70% of the file: the reader
// reopens at the offset reached and delivers the file's exact bytes,
// fetching each once from a server that does ranges.
func TestResume(t *testing.T) {
	const size = 3<<20 + 12345
	data := random(t, size)
	c30, c70 := int64(size*3/10), int64(size*7/10)
	mod := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name    string
		fs      *fileServer
		cuts    []int64
		fetched int64    // want Reader.Fetched
		ranges  []string // want the requests' Range and If-Range
	}{
		{"no cut", &fileServer{etag: `"v1"`}, nil, size, []string{""}},
		{"cut at 30% and 70%", &fileServer{etag: `"v1"`}, []int64{c30, c70}, size,
			[]string{"", fmt.Sprintf(`bytes=%d- "v1"`, c30), fmt.Sprintf(`bytes=%d- "v1"`, c70)}},
		{"Last-Modified, no ETag", &fileServer{mod: mod}, []int64{c30, c70}, size,
			[]string{"", fmt.Sprintf(`bytes=%d- %s`, c30, mod.Format(http.TimeFormat)), fmt.Sprintf(`bytes=%d- %s`, c70, mod.Format(http.TimeFormat))}},
		{"weak ETag: If-Range by date", &fileServer{etag: `W/"v1"`, mod: mod}, []int64{c30}, size,
			[]string{"", fmt.Sprintf(`bytes=%d- %s`, c30, mod.Format(http.TimeFormat))}},
		{"no validators", &fileServer{}, []int64{c30, c70}, size,
			[]string{"", fmt.Sprintf(`bytes=%d-`, c30), fmt.Sprintf(`bytes=%d-`, c70)}},
		// The server sends the whole file each time: the bytes before the
		// offset are fetched again and dropped.
		{"server ignores ranges", &fileServer{etag: `"v1"`, ignoreRange: true}, []int64{c30, c70}, size + c30 + c70,
			[]string{"", fmt.Sprintf(`bytes=%d- "v1"`, c30), fmt.Sprintf(`bytes=%d- "v1"`, c70)}},
		{"unknown length (chunked)", &fileServer{etag: `"v1"`, chunked: true}, []int64{c30}, size,
			[]string{"", fmt.Sprintf(`bytes=%d- "v1"`, c30)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fs.data = data
			cut := fetchtest.NewCutter(tt.fs, tt.cuts, nil)
			srv := httptest.NewServer(cut)
			defer srv.Close()
			var last atomic.Int64
			r := NewReader(context.Background(), URL(srv.Client(), srv.URL+"/b.keel", nil), Options{
				Progress: func(done, _ int64) { last.Store(done) },
			})
			defer r.Close()
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("got %d bytes, not the file's %d", len(got), len(data))
			}
			if r.Fetched() != tt.fetched || r.Fetched() != cut.Sent() {
				t.Errorf("Fetched %d, want %d (the server sent %d)", r.Fetched(), tt.fetched, cut.Sent())
			}
			if !tt.fs.ignoreRange && float64(r.Fetched()) > 1.1*size {
				t.Errorf("fetched %d bytes for %d: more than 1.1×", r.Fetched(), size)
			}
			if r.Reopens() != int64(len(tt.cuts)) || cut.Left() != 0 || last.Load() != size || r.Size() != size {
				t.Errorf("reopens %d, progress %d, size %d", r.Reopens(), last.Load(), r.Size())
			}
			if got := tt.fs.log(); strings.Join(got, "|") != strings.Join(tt.ranges, "|") {
				t.Errorf("requests %q, want %q", got, tt.ranges)
			}
		})
	}
}

// TestChanged replaces the file on the server while it is read: the
// reader refuses to splice two files and says why.
func TestChanged(t *testing.T) {
	const size = 1 << 20
	v1, v2 := random(t, size), random(t, size)
	mod1 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	mod2 := mod1.Add(time.Hour)
	tests := []struct {
		name         string
		etag1, etag2 string
		mod1, mod2   time.Time
		data2        []byte
		want         string
	}{
		{"ETag", `"v1"`, `"v2"`, mod1, mod1, v2, "ETag"},
		{"Last-Modified", "", "", mod1, mod2, v2, "Last-Modified"},
		{"weak ETag", `W/"v1"`, `W/"v2"`, time.Time{}, time.Time{}, v2, "ETag"},
		{"size", "", "", time.Time{}, time.Time{}, v2[:size/2], "bytes, was"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := &fileServer{data: v1, etag: tt.etag1, mod: tt.mod1}
			cut := fetchtest.NewCutter(fs, []int64{size * 3 / 10}, func(int64) { fs.set(tt.data2, tt.etag2, tt.mod2) })
			srv := httptest.NewServer(cut)
			defer srv.Close()
			r := NewReader(context.Background(), URL(srv.Client(), srv.URL, nil), Options{})
			defer r.Close()
			got, err := io.ReadAll(r)
			if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want ErrChanged naming %s", err, tt.want)
			}
			if !bytes.Equal(got, v1[:len(got)]) || len(got) != size*3/10 {
				t.Errorf("delivered %d bytes; want the first file's first %d", len(got), size*3/10)
			}
			if n := len(fs.log()); n != 2 {
				t.Errorf("%d requests, want 2 (no retry of a changed file)", n)
			}
		})
	}
}

// fakeClock is time that passes only when the code under test sleeps.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	c.sleeps = append(c.sleeps, d)
	return ctx.Err()
}

func (c *fakeClock) elapsed(since time.Time) time.Duration { return c.now().Sub(since) }

// TestRate reads 2 MiB capped at 1 MiB/s through a real HTTP server, on
// the limiter's clock: it takes 2 s less the first burst, and no window of
// that clock sees more than the rate plus one burst.
func TestRate(t *testing.T) {
	const size, rate = 2 << 20, 1 << 20
	data := random(t, size)
	srv := httptest.NewServer(&fileServer{data: data})
	defer srv.Close()
	for _, buf := range []int{4 << 10, 1 << 20} { // reads smaller and larger than a burst
		t.Run(fmt.Sprint(buf), func(t *testing.T) {
			c := &fakeClock{t: time.Unix(1000, 0)}
			start := c.now()
			type point struct {
				t   time.Duration
				off int64
			}
			var pts []point
			r := newReader(context.Background(), URL(srv.Client(), srv.URL, nil), Options{
				Rate:     rate,
				Progress: func(done, _ int64) { pts = append(pts, point{c.elapsed(start), done}) },
			}, c)
			defer r.Close()
			got, err := io.ReadAll(bufio(r, buf))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read %d bytes, %v", len(got), err)
			}
			burst := int64(rate / 8)
			el := c.elapsed(start)
			lo := time.Duration(float64(size-burst) / rate * float64(time.Second))
			if el < lo-time.Millisecond || el > 2*time.Second {
				t.Errorf("2 MiB at 1 MiB/s took %v on the limiter's clock, want %v to 2s", el, lo)
			}
			// Progress is reported before the wait for the bytes read.
			for i := range pts {
				for j := i + 1; j < len(pts); j++ {
					if d := pts[j].off - pts[i].off; float64(d) > float64(rate)*(pts[j].t-pts[i].t).Seconds()+float64(2*burst)+1 {
						t.Fatalf("%d bytes in %v: a burst above the rate", d, pts[j].t-pts[i].t)
					}
				}
			}
		})
	}
}

// bufio reads r in reads of n bytes.
func bufio(r io.Reader, n int) io.Reader {
	return readerFunc(func(p []byte) (int, error) { return r.Read(p[:min(len(p), n)]) })
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestRateWallClock is TestRate on the real clock, with a lower bound only:
// 2 MiB at 1 MiB/s cannot take less than 1.875 s.
func TestRateWallClock(t *testing.T) {
	const size, rate = 2 << 20, 1 << 20
	data := random(t, size)
	srv := httptest.NewServer(&fileServer{data: data})
	defer srv.Close()
	start := time.Now()
	r := NewReader(context.Background(), URL(srv.Client(), srv.URL, nil), Options{Rate: rate})
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	if el := time.Since(start); el < time.Duration(float64(size-rate/8)/rate*float64(time.Second)) {
		t.Errorf("2 MiB at 1 MiB/s took %v", el)
	}
}

// TestRetries: failed attempts in a row are retried Retries times with a
// doubling backoff, then the reader gives up; an error that retrying
// cannot cure ends it at once.
func TestRetries(t *testing.T) {
	data := random(t, 100<<10)
	tests := []struct {
		name     string
		codes    []int // the first answers; then the file
		retries  int
		requests int
		err      string // "" for success
	}{
		{"503 then the file", []int{503, 502, 500}, 3, 4, ""},
		{"503 until giving up", []int{503, 503, 503, 503, 503}, 3, 4, "giving up after 4 failed attempts in a row"},
		{"429 then the file", []int{429}, 0, 2, ""},
		{"404", []int{404}, 3, 1, "404 Not Found"},
		{"403", []int{403}, 3, 1, "403 Forbidden"},
		{"no retries", []int{503}, -1, 1, "503 Service Unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			fs := &fileServer{data: data}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if i := int(n.Add(1)) - 1; i < len(tt.codes) {
					http.Error(w, "no", tt.codes[i])
					return
				}
				fs.ServeHTTP(w, r)
			}))
			defer srv.Close()
			c := &fakeClock{t: time.Unix(1000, 0)}
			r := newReader(context.Background(), URL(srv.Client(), srv.URL, nil), Options{Retries: tt.retries, Backoff: time.Second}, c)
			defer r.Close()
			got, err := io.ReadAll(r)
			if tt.err == "" && (err != nil || !bytes.Equal(got, data)) {
				t.Fatalf("read %d bytes, %v", len(got), err)
			}
			if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("err %v, want %q", err, tt.err)
			}
			if int(n.Load()) != tt.requests {
				t.Errorf("%d requests, want %d", n.Load(), tt.requests)
			}
			// Backoff: 1 s, 2 s, 4 s ... each less up to half.
			for i, d := range c.sleeps {
				full := time.Second << i
				if d < full/2 || d > full {
					t.Errorf("pause %d: %v, want %v to %v", i+1, d, full/2, full)
				}
			}
			if len(c.sleeps) != tt.requests-1 {
				t.Errorf("%d pauses for %d requests", len(c.sleeps), tt.requests)
			}
		})
	}
}

// TestStall: a server that stops sending without closing the connection
// is given up after Options.Stall and the file resumed.
func TestStall(t *testing.T) {
	const size = 1 << 20
	data := random(t, size)
	var once atomic.Bool
	fs := &fileServer{data: data, etag: `"v1"`}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if once.CompareAndSwap(false, true) {
			w.Header().Set("Content-Length", fmt.Sprint(size))
			w.Write(data[:size/3])
			w.(http.Flusher).Flush()
			<-r.Context().Done() // hang until the client gives up
			return
		}
		fs.ServeHTTP(w, r)
	}))
	defer srv.Close()
	r := NewReader(context.Background(), URL(srv.Client(), srv.URL, nil), Options{Stall: 200 * time.Millisecond})
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	if r.Reopens() != 1 || r.Fetched() != size {
		t.Errorf("reopens %d, fetched %d", r.Reopens(), r.Fetched())
	}
	if l := fs.log(); len(l) != 1 || l[0] != fmt.Sprintf("bytes=%d-", size/3) {
		t.Errorf("resumed with %q", l)
	}
}

// TestCancel: cancelling the context ends a read waiting for data, a
// backoff pause and a rate-limit wait at once.
func TestCancel(t *testing.T) {
	data := random(t, 1<<20)
	hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data[:1000])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	unavailable := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "later", 503) })
	tests := []struct {
		name string
		h    http.Handler
		o    Options
	}{
		{"waiting for data", hang, Options{Stall: time.Hour}},
		{"in a backoff pause", unavailable, Options{Backoff: time.Hour}},
		{"in a rate-limit wait", &fileServer{data: data}, Options{Rate: 1000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.h)
			defer srv.Close()
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
			r := NewReader(ctx, URL(srv.Client(), srv.URL, nil), tt.o)
			defer r.Close()
			done := make(chan error, 1)
			go func() { _, err := io.ReadAll(r); done <- err }()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("err %v, want context.Canceled", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("read still running 30 s after the cancel")
			}
		})
	}
}

// TestReadRange asks for a file's head with one bounded request.
func TestReadRange(t *testing.T) {
	data := random(t, 1<<20)
	for _, ignore := range []bool{false, true} {
		t.Run(fmt.Sprint("ignoreRange=", ignore), func(t *testing.T) {
			fs := &fileServer{data: data, etag: `"v1"`, ignoreRange: ignore}
			srv := httptest.NewServer(fs)
			defer srv.Close()
			src := URL(srv.Client(), srv.URL, nil)
			for _, c := range []struct{ off, n, want int64 }{{0, 100, 100}, {5000, 20, 20}, {int64(len(data)) - 10, 100, 10}} {
				got, err := ReadRange(context.Background(), src, c.off, c.n)
				if err != nil || !bytes.Equal(got, data[c.off:c.off+c.want]) {
					t.Fatalf("ReadRange(%d, %d): %d bytes, %v", c.off, c.n, len(got), err)
				}
			}
			if l := fs.log(); l[0] != "bytes=0-99" || l[1] != `bytes=5000-5019 "v1"` {
				t.Errorf("requests %q", l)
			}
		})
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in                string
		start, end, total int64
		ok                bool
	}{
		{"bytes 0-99/100", 0, 99, 100, true},
		{"bytes 100-199/*", 100, 199, -1, true},
		{"bytes 100-199/150", 0, 0, 0, false},
		{"bytes 200-100/300", 0, 0, 0, false},
		{"bytes */300", 0, 0, 0, false},
		{"items 0-1/2", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	}
	for _, tt := range tests {
		s, e, n, err := parseContentRange(tt.in)
		if (err == nil) != tt.ok || tt.ok && (s != tt.start || e != tt.end || n != tt.total) {
			t.Errorf("%q: %d %d %d %v", tt.in, s, e, n, err)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:secret@example.org/b.keel?token=abc": "https://example.org/b.keel?…",
		"http://127.0.0.1:8080/x/b.keel":                   "http://127.0.0.1:8080/x/b.keel",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRangeAnswers: a server that caps each answer (206 for fewer bytes
// than asked) is read to the end, reopening where each answer ends; one
// that answers with another range than asked is refused.
func TestRangeAnswers(t *testing.T) {
	const size, capped = 1<<20 + 7, 256 << 10
	data := random(t, size)
	tests := []struct {
		name    string
		shift   int64 // added to the start the server answers with
		reopens int64
		err     error
	}{
		{"capped answers", 0, size / capped, nil},
		{"wrong start", 1, 0, ErrBadRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var start int64
				fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &start)
				if start > 0 {
					start += tt.shift
				}
				end := min(start+capped, size) - 1
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, size))
				w.Header().Set("Content-Length", fmt.Sprint(end-start+1))
				w.WriteHeader(http.StatusPartialContent)
				w.Write(data[start : end+1])
			}))
			defer srv.Close()
			r := NewReader(context.Background(), URL(srv.Client(), srv.URL, nil), Options{})
			defer r.Close()
			got, err := io.ReadAll(r)
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if tt.err == nil && (!bytes.Equal(got, data) || r.Fetched() != size) {
				t.Fatalf("read %d bytes, fetched %d", len(got), r.Fetched())
			}
			if r.Reopens() != tt.reopens {
				t.Errorf("reopens %d, want %d", r.Reopens(), tt.reopens)
			}
		})
	}
}
