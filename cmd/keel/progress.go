package main

import (
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// progress returns a callback that draws a one-line progress report on w when
// w is a terminal, at most ten times a second, and nothing otherwise.
func progress(w *os.File) func(done, total int64) {
	if !term.IsTerminal(int(w.Fd())) {
		return nil
	}
	var mu sync.Mutex
	var last time.Time
	return func(done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if now := time.Now(); now.Sub(last) >= 100*time.Millisecond || done == total {
			last = now
			pct := 100.0
			if total > 0 {
				pct = 100 * float64(done) / float64(total)
			}
			end := ""
			if done == total {
				end = "\n"
			}
			fmt.Fprintf(w, "\r  %5.1f%%  %s / %s%s", pct, human(done), human(total), end)
		}
	}
}

// human formats a byte count with binary units.
func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
