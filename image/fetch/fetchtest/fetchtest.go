// Package fetchtest has test helpers for clients of image/fetch: an HTTP
// handler wrapper that drops connections part-way through a file, as a
// flaky network does.
package fetchtest

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
)

// Cutter wraps a handler that serves one file (with or without ranges: a
// file server, a registry behind httputil.ReverseProxy) and drops the
// connection once the file's bytes sent reach each of its cuts, file
// offsets, once per cut: the bytes up to the cut are flushed, then the
// handler is aborted with http.ErrAbortHandler, so the server closes the
// connection without ending the response and the client sees an
// unexpected EOF. The offset of a response's first byte is read from its
// Content-Range (0 for a 200). Only responses to GET are cut.
type Cutter struct {
	handler http.Handler
	onCut   func(at int64)

	mu   sync.Mutex
	cuts []int64
	sent atomic.Int64
}

// NewCutter cuts h's responses at the file offsets cuts. onCut, if not
// nil, is called at each cut before the connection is dropped.
func NewCutter(h http.Handler, cuts []int64, onCut func(at int64)) *Cutter {
	c := append([]int64(nil), cuts...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	return &Cutter{handler: h, cuts: c, onCut: onCut}
}

// Fractions are the cuts at the given fractions of size bytes.
func Fractions(size int64, fractions ...float64) []int64 {
	var c []int64
	for _, f := range fractions {
		c = append(c, int64(float64(size)*f))
	}
	return c
}

// Sent is the file bytes sent so far, over all responses.
func (c *Cutter) Sent() int64 { return c.sent.Load() }

// Left is how many cuts have not happened yet.
func (c *Cutter) Left() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cuts)
}

func (c *Cutter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		c.handler.ServeHTTP(w, r)
		return
	}
	c.handler.ServeHTTP(&cutWriter{ResponseWriter: w, c: c}, r)
}

type cutWriter struct {
	http.ResponseWriter
	c      *Cutter
	pos    int64 // file offset of the next byte written
	status int
}

func (w *cutWriter) WriteHeader(code int) {
	w.status = code
	if code == http.StatusPartialContent {
		fmt.Sscanf(w.Header().Get("Content-Range"), "bytes %d-", &w.pos)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *cutWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *cutWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.status/100 != 2 {
		return w.ResponseWriter.Write(p)
	}
	w.c.mu.Lock()
	cut := int64(-1)
	for len(w.c.cuts) > 0 && w.c.cuts[0] < w.pos {
		w.c.cuts = w.c.cuts[1:] // passed by a response that started after it
	}
	if len(w.c.cuts) > 0 && w.c.cuts[0] < w.pos+int64(len(p)) {
		cut = w.c.cuts[0]
		w.c.cuts = w.c.cuts[1:]
	}
	w.c.mu.Unlock()
	if cut < 0 {
		n, err := w.ResponseWriter.Write(p)
		w.pos += int64(n)
		w.c.sent.Add(int64(n))
		return n, err
	}
	n, _ := w.ResponseWriter.Write(p[:cut-w.pos])
	w.c.sent.Add(int64(n))
	w.Flush()
	if w.c.onCut != nil {
		w.c.onCut(cut)
	}
	panic(http.ErrAbortHandler)
}
