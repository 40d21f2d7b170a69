package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"keel/image/registry"
)

func newPushCmd(g *globals) *cobra.Command {
	var o registry.PushOptions
	cmd := &cobra.Command{
		Use:   "push BUNDLE REGISTRY/REPO:TAG",
		Short: "Store an update bundle in an OCI registry",
		Long: `Store an update bundle (.keel) in an OCI registry as an artifact: one
manifest of artifactType ` + registry.ArtifactType + `, whose only layer is
the bundle file unchanged and whose annotations give its name, version,
compatible string and architecture, so devices can tell from the manifest
alone whether a tag holds an update for them.

The bundle is read whole first: one that is not signed, or does not read
back intact, is refused before anything is sent. The manifest is stored by
its digest, then tagged TAG; with --channel, the channel's tag (stable,
testing…) is moved to it too, last, so devices following the channel never
see a tag whose blobs are missing.

Credentials come from the first of these files that exists: docker's
~/.docker/config.json or $DOCKER_CONFIG/config.json (with its credential
helpers), else $REGISTRY_AUTH_FILE, else podman's containers/auth.json in
$XDG_RUNTIME_DIR or ~/.config. The registry is reached over HTTPS, trusting
the system's certificates and those of --ca; plain HTTP only with --insecure.

Exit codes: 0 pushed, 1 the registry failed or refused (credentials, network,
TLS), 2 bad usage (flags, arguments, a bundle or CA file that does not read),
3 refused with nothing sent: the file is not an intact, signed bundle.`,
		Example: `  keel push out/busybox-2.0.0.keel REGISTRY/fleet/busybox:2.0.0 --channel stable`,
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Logger = g.logger()
			o.Progress = progress(os.Stderr)
			p, err := registry.Push(cmd.Context(), args[0], args[1], o)
			switch {
			case errors.Is(err, registry.ErrBadRef), errors.As(err, new(*fs.PathError)):
				return usageError{err}
			case errors.Is(err, registry.ErrBadBundle):
				return refusedError{err}
			case err != nil:
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pushed %s %s (%s) as %s\n", p.Manifest.Name, p.Manifest.Version, human(p.Size), p.Ref)
			for _, t := range p.Tags {
				fmt.Fprintf(cmd.OutOrStdout(), "tagged %s\n", t)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Channel, "channel", "", "also move this tag (a channel devices follow) to the pushed bundle")
	cmd.Flags().BoolVar(&o.Insecure, "insecure", false, "allow plain HTTP to the registry")
	cmd.Flags().StringVar(&o.CAFile, "ca", "", "PEM file of CA certificates to trust besides the system's")
	return cmd
}
