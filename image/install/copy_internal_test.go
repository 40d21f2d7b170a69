package install

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// syncCounter is a disk file whose Sync can fail or be held: a stand-in for
// an *os.File that shows what offsetWriter asks of it.
type syncCounter struct {
	*os.File
	mu    sync.Mutex
	syncs int
	err   error         // returned by every Sync
	hold  chan struct{} // when set, Sync waits for it to close
}

func (s *syncCounter) Sync() error {
	if s.hold != nil {
		<-s.hold
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncs++
	return s.err
}

func TestOffsetWriterBackgroundSync(t *testing.T) {
	errIO := errors.New("input/output error")
	tests := []struct {
		name      string
		size      int64 // bytes written, in 1 MiB writes
		err       error
		wantSyncs bool
		wantErr   error
	}{
		{"less than a chunk: no background sync", syncChunk - 1<<20, nil, false, nil},
		{"several chunks", 3 * syncChunk, nil, true, nil},
		{"a failed background sync is reported", 2 * syncChunk, errIO, true, errIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "disk"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			d := &syncCounter{File: f, err: tt.err}
			w := &offsetWriter{w: d, off: 4096, limit: tt.size}
			buf := make([]byte, 1<<20)
			for w.n < tt.size {
				if _, err := w.Write(buf[:min(int64(len(buf)), tt.size-w.n)]); err != nil {
					t.Fatal(err)
				}
			}
			err = w.wait()
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("wait: %v, want %v", err, tt.wantErr)
			}
			if got := d.syncs > 0; got != tt.wantSyncs {
				t.Errorf("%d background syncs, want some: %v", d.syncs, tt.wantSyncs)
			}
		})
	}
}

// TestOffsetWriterDoesNotWaitForSync: a sync that takes its time does not
// hold up the writes after it; wait does wait for it.
func TestOffsetWriterDoesNotWaitForSync(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := &syncCounter{File: f, hold: make(chan struct{})}
	w := &offsetWriter{w: d, limit: 4 * syncChunk}
	wrote := make(chan error)
	go func() {
		buf := make([]byte, 1<<20)
		for w.n < w.limit {
			if _, err := w.Write(buf); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the writes wait for a held sync")
	}
	waited := make(chan error)
	go func() { waited <- w.wait() }()
	select {
	case err := <-waited:
		t.Fatalf("wait returned (%v) while a sync was held", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(d.hold)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if d.syncs == 0 || d.syncs > 2 {
		t.Errorf("%d syncs for 4 chunks with the first held: want 1 or 2 (requests fold into the pending one)", d.syncs)
	}
}
