// Package registry stores keel update bundles in OCI registries and finds
// them again: Push on the build host, Resolve (and Latest) on a device or
// anywhere that fetches an update.
//
// A bundle is stored as an OCI artifact (image-spec 1.1): one image
// manifest whose artifactType is ArtifactType, whose config blob is the
// bundle's manifest JSON (the exact bytes that are signed, so `crane
// config` shows the artifacts, sizes and hashes without fetching the
// bundle) and whose only layer is the whole .keel file, unchanged, so that a
// device streams the blob exactly as it would stream the file:
//
//	{
//	  "schemaVersion": 2,
//	  "mediaType": "application/vnd.oci.image.manifest.v1+json",
//	  "artifactType": "application/vnd.keel.bundle.v1",
//	  "config": {"mediaType": "application/vnd.keel.bundle.v1", ...},
//	  "layers": [{"mediaType": "application/vnd.keel.bundle.layer.v1", ...,
//	              "annotations": {"org.opencontainers.image.title": "t-2.0.0.keel"}}],
//	  "annotations": {"org.keel.name": "t", "org.keel.version": "2.0.0",
//	                  "org.keel.compatible": "...", "org.keel.arch": "amd64",
//	                  "org.keel.build-id": "...", "org.opencontainers.image.version": "2.0.0"}
//	}
//
// The annotations let a device decide from the manifest alone (a few
// hundred bytes) whether a tag holds an update for it. They are not
// trusted: what is installed is decided by the bundle's own signed
// manifest, checked before anything is written.
//
// Registries are reached with go-containerregistry: credentials from the
// docker and podman auth files (authn.DefaultKeychain) or from an explicit
// auth file in the same format, basic or bearer-token auth, TLS with the
// system roots plus an optional CA file, and plain HTTP only when asked for
// (Options.Insecure) — go-containerregistry would otherwise fall back to
// plain HTTP by itself for loopback and RFC 1918 addresses, localhost and
// .local names.
package registry
