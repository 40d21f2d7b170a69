package install

import (
	"context"
	"errors"
	"io"
	"testing"

	"keel/image/bundle"
)

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.0.0", "1.0.0", 0},
		{"1.0", "1.0.0", 0},
		{"v1.2.3", "1.2.3", 0},
		{"1.10.0", "1.9.2", 1},
		{"2.0.0", "10.0.0", -1},
		{"1.0.1", "1.0", 1},
		{"2.0.0-rc1", "2.0.0", -1},
		{"2.0.0-rc2", "2.0.0-rc1", 1},
		{"2.0.0-rc10", "2.0.0-rc9", 1},
		{"1.0.0", "0.9.9", 1},
		{"2024.11.25", "2024.2.1", 1},
		{"1.0.1", "1.0.beta", 1},
		{"1.0a", "1.0b", -1},
		{"1.0", "1.0.beta", 1},                                  // a missing part is 0, and 0 beats text
		{"1.0.", "1.0.", 0},                                     // was -1: older than itself
		{"1.18446744073709551616", "1.18446744073709551615", 1}, // was -1: past uint64, compared as text
	}
	for _, tt := range tests {
		if got := CompareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := CompareVersions(tt.b, tt.a); got != -tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

// lateVerdict gives all its bytes with no error and reports the hash only
// when read past the end, as a reader is allowed to.
type lateVerdict struct {
	data []byte
	err  error
}

func (l *lateVerdict) Read(p []byte) (int, error) {
	if len(l.data) == 0 {
		return 0, l.err
	}
	n := copy(p, l.data)
	l.data = l.data[n:]
	return n, nil
}

// TestVerifierWithholdsLastChunk: a consumer that reads exactly Size bytes
// (as fat's WriteFile does) must still see a mismatch reported only at EOF.
func TestVerifierWithholdsLastChunk(t *testing.T) {
	for _, verdict := range []error{io.EOF, bundle.ErrHashMismatch} {
		v := &verifier{ctx: context.Background(), r: &lateVerdict{[]byte("hello"), verdict}, a: bundle.Artifact{Name: "kernel", Size: 5}}
		buf := make([]byte, 5)
		_, err := io.ReadFull(v, buf)
		if verdict == io.EOF && err != nil {
			t.Errorf("good artifact: %v", err)
		}
		if verdict != io.EOF && !errors.Is(err, bundle.ErrHashMismatch) {
			t.Errorf("bad artifact: ReadFull gave %v, want the mismatch", err)
		}
	}
}
