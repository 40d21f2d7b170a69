package main

import (
	"context"
	"fmt"

	"keel/rootfs"
)

// applyImage wires OCI image sources into the build. Until rootfs/oci lands
// it refuses them with a clear message.
func applyImage(_ *globals) func(ctx context.Context, t *rootfs.Tree, ref string) error {
	return func(ctx context.Context, t *rootfs.Tree, ref string) error {
		return fmt.Errorf("image %s: OCI image sources are not supported by this keel yet", ref)
	}
}
