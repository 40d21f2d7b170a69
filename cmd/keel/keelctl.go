package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// keelctl returns the static keelctl binary that every image carries at
// /usr/bin/keelctl, from the first place that has it, as keelInit does:
// $KEEL_CTL, embedded (make), next to this executable, or built now from
// the source tree.
func keelctl(ctx context.Context) ([]byte, error) {
	if p := os.Getenv("KEEL_CTL"); p != "" {
		return os.ReadFile(p)
	}
	if b, err := assets.ReadFile("assets/keelctl"); err == nil && len(b) > 0 {
		return b, nil
	}
	if exe, err := os.Executable(); err == nil {
		if b, err := os.ReadFile(filepath.Join(filepath.Dir(exe), "keelctl")); err == nil {
			return b, nil
		}
	}
	b, err := buildStatic(ctx, "keelctl")
	if err != nil {
		return nil, fmt.Errorf("keelctl not found (not embedded, not next to keel, KEEL_CTL unset) and could not be built: %w", err)
	}
	return b, nil
}
