package oci

import (
	"fmt"
	"strings"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/manifest"

	"keel/rootfs/tarfs"
)

// DefaultLimits bound every layer unless Options.Limits says otherwise (see
// the package comment for why these numbers).
var DefaultLimits = tarfs.Limits{MaxBytes: 16 << 30, MaxEntries: 1 << 20}

// DefaultMaxRatio is how many times its blob's size a layer may expand to,
// unless Options.MaxRatio says otherwise; a layer may always reach
// MinExpand.
const (
	DefaultMaxRatio = 100
	MinExpand       = 1 << 30
)

// limitsOf resolves the defaults of opts: zero takes the default, negative
// means no bound (0 in the result).
func limitsOf(opts Options) (tarfs.Limits, int64) {
	l := opts.Limits
	switch {
	case l.MaxBytes == 0:
		l.MaxBytes = DefaultLimits.MaxBytes
	case l.MaxBytes < 0:
		l.MaxBytes = 0
	}
	switch {
	case l.MaxEntries == 0:
		l.MaxEntries = DefaultLimits.MaxEntries
	case l.MaxEntries < 0:
		l.MaxEntries = 0
	}
	ratio := opts.MaxRatio
	switch {
	case ratio == 0:
		ratio = DefaultMaxRatio
	case ratio < 0:
		ratio = 0
	}
	return l, ratio
}

// layerLimits returns the limits of a layer whose blob is size bytes (-1:
// unknown), and states them for an error.
func layerLimits(size int64, l tarfs.Limits, ratio int64) (tarfs.Limits, string) {
	bytes := "no bound on bytes"
	if l.MaxBytes > 0 {
		bytes = human(l.MaxBytes)
	}
	if ratio > 0 && size >= 0 {
		bound := int64(MinExpand)
		if size <= (1<<62)/ratio && size*ratio > bound {
			bound = size * ratio
		}
		if l.MaxBytes == 0 || bound < l.MaxBytes {
			l.MaxBytes = bound
			bytes = fmt.Sprintf("%s (%d times its %s blob, at least %s)", human(bound), ratio, human(size), human(MinExpand))
		}
	}
	entries := "no bound on entries"
	if l.MaxEntries > 0 {
		entries = fmt.Sprintf("%d entries", l.MaxEntries)
	}
	return l, "this layer's limits: " + bytes + ", " + entries
}

// human formats a byte count for an error.
func human(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}

// layerMediaTypes are the layer types containers/image accepts
// (manifest.SupportedOCI1MediaType and SupportedSchema2MediaType, v5.42),
// less the encrypted ones: OCI and Docker, uncompressed, gzip and zstd,
// nondistributable and foreign. Compression is told by magic number, so the
// type only says the blob is a layer.
var layerMediaTypes = []string{
	imgspecv1.MediaTypeImageLayer,
	imgspecv1.MediaTypeImageLayerGzip,
	imgspecv1.MediaTypeImageLayerZstd,
	imgspecv1.MediaTypeImageLayerNonDistributable,     //nolint:staticcheck // deprecated, still in images
	imgspecv1.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck
	imgspecv1.MediaTypeImageLayerNonDistributableZstd, //nolint:staticcheck
	manifest.DockerV2SchemaLayerMediaTypeUncompressed,
	manifest.DockerV2Schema2LayerMediaType,
	manifest.DockerV2SchemaLayerMediaTypeZstd,
	manifest.DockerV2Schema2ForeignLayerMediaType,
	manifest.DockerV2Schema2ForeignLayerMediaTypeGzip,
}

// checkMediaType refuses a layer type that is not a filesystem layer keel
// can apply. "" is what a schema 1 manifest gives.
func checkMediaType(mt string) error {
	if mt == "" {
		return nil
	}
	for _, t := range layerMediaTypes {
		if mt == t {
			return nil
		}
	}
	if strings.HasSuffix(mt, "+encrypted") {
		return fmt.Errorf("media type %q: encrypted layers are not supported", mt)
	}
	return fmt.Errorf("media type %q is not a filesystem layer (known: OCI and Docker layers, uncompressed, gzip or zstd)", mt)
}
