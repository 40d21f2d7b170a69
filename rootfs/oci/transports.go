package oci

import (
	"fmt"
	"slices"
	"strings"

	"go.podman.io/image/v5/transports"
	"go.podman.io/image/v5/types"

	// The transports keel reads images from register themselves here. Not
	// alltransports: it also brings containers-storage, whose graph drivers
	// need C headers (btrfs) whenever cgo is on, and which reads the host's
	// /var/lib/containers; and docker-daemon, which talks to the host's
	// daemon. Neither belongs in a hermetic build.
	_ "go.podman.io/image/v5/directory"
	_ "go.podman.io/image/v5/docker"
	_ "go.podman.io/image/v5/docker/archive"
	_ "go.podman.io/image/v5/oci/archive"
	_ "go.podman.io/image/v5/oci/layout"
)

// Transports are the names of the transports a reference may use.
var Transports = []string{"dir", "docker", "docker-archive", "oci", "oci-archive"}

// parseRef parses "transport:details", as alltransports.ParseImageName does,
// over the transports keel registers.
func parseRef(ref string) (types.ImageReference, error) {
	name, details, ok := strings.Cut(ref, ":")
	if !ok {
		return nil, fmt.Errorf("reference %q has no transport (one of %s)", ref, strings.Join(Transports, ", "))
	}
	tr := transports.Get(name)
	// Registered is not enough: another package of the binary may have
	// registered a transport keel does not mean to offer.
	if tr == nil || !slices.Contains(Transports, name) {
		return nil, fmt.Errorf("unsupported transport %q (known: %s)", name, strings.Join(Transports, ", "))
	}
	r, err := tr.ParseReference(details)
	if err != nil {
		return nil, fmt.Errorf("parsing reference %q: %w", ref, err)
	}
	return r, nil
}
