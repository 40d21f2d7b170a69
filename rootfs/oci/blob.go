package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/pkg/blobinfocache/none"
	"go.podman.io/image/v5/types"
)

// verifier wraps a blob stream and checks, once it has been read to the end,
// that it had the expected digest and size. ImageSource.GetBlob does not
// verify (containers/image leaves that to its copy package), so we do.
type verifier struct {
	r    io.Reader
	d    digest.Digester
	want types.BlobInfo
	n    int64
}

func newVerifier(r io.Reader, info types.BlobInfo) (*verifier, error) {
	if err := info.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("blob digest %q: %w", info.Digest, err)
	}
	return &verifier{r: r, d: info.Digest.Algorithm().Digester(), want: info}, nil
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.d.Hash().Write(p[:n])
	v.n += int64(n)
	return n, err
}

// finish reads what is left and reports whether the blob was intact.
func (v *verifier) finish() error {
	if _, err := io.Copy(io.Discard, v); err != nil {
		return fmt.Errorf("reading blob: %w", err)
	}
	if v.want.Size >= 0 && v.n != v.want.Size {
		return fmt.Errorf("%w: %d bytes, the manifest says %d", ErrDigestMismatch, v.n, v.want.Size)
	}
	if got := v.d.Digest(); got != v.want.Digest {
		return fmt.Errorf("%w: the content has digest %s", ErrDigestMismatch, got)
	}
	return nil
}

// blobs opens layer blobs from an image source, through an on-disk cache
// when the source is remote.
type blobs struct {
	src   types.ImageSource
	cache string // directory of verified blobs by digest; "" to read directly
}

// open returns the blob's stream wrapped in a verifier; the caller reads it,
// calls finish, and closes the returned closer.
func (b *blobs) open(ctx context.Context, info types.BlobInfo) (*verifier, io.Closer, error) {
	if b.cache == "" {
		rc, _, err := b.src.GetBlob(ctx, info, none.NoCache)
		if err != nil {
			return nil, nil, fmt.Errorf("fetching: %w", err)
		}
		v, err := newVerifier(rc, info)
		if err != nil {
			rc.Close()
			return nil, nil, err
		}
		return v, rc, nil
	}
	name, err := b.cached(ctx, info)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, fmt.Errorf("opening cached blob: %w", err)
	}
	// Verified again on reading: the cache is a plain directory anyone
	// could have touched since.
	v, err := newVerifier(f, info)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return v, f, nil
}

// discard removes a blob from the cache, after it failed verification, so
// that the next build fetches it again instead of failing the same way.
func (b *blobs) discard(info types.BlobInfo) {
	if b.cache == "" || info.Digest.Validate() != nil {
		return
	}
	os.Remove(filepath.Join(b.cache, info.Digest.Algorithm().String(), info.Digest.Encoded()))
}

// cached returns the path of the blob in the cache, downloading and verifying
// it first if it is not there yet.
func (b *blobs) cached(ctx context.Context, info types.BlobInfo) (string, error) {
	if err := info.Digest.Validate(); err != nil {
		return "", fmt.Errorf("blob digest %q: %w", info.Digest, err)
	}
	dir := filepath.Join(b.cache, info.Digest.Algorithm().String())
	name := filepath.Join(dir, info.Digest.Encoded())
	if _, err := os.Stat(name); err == nil {
		return name, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("blob cache: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("blob cache: %w", err)
	}
	rc, _, err := b.src.GetBlob(ctx, info, none.NoCache)
	if err != nil {
		return "", fmt.Errorf("fetching: %w", err)
	}
	defer rc.Close()
	f, err := os.CreateTemp(dir, ".download-*")
	if err != nil {
		return "", fmt.Errorf("blob cache: %w", err)
	}
	tmp := f.Name()
	err = func() error {
		v, err := newVerifier(rc, info)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, v); err != nil {
			return fmt.Errorf("fetching: %w", err)
		}
		return v.finish()
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// Read-only: the file is named by its content.
		err = os.Chmod(tmp, 0o444)
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return name, nil
}
