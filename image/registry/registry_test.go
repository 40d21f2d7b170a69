package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestParseArtifact holds Resolve's verdict on manifests of every kind it
// may meet behind a tag.
func TestParseArtifact(t *testing.T) {
	const digest = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
	ann := `"annotations": {"org.keel.name": "t", "org.keel.version": "2.0.0", "org.keel.compatible": "c", "org.keel.arch": "amd64", "org.keel.build-id": "b"}`
	layer := func(mt string) string {
		return `{"mediaType": "` + mt + `", "size": 1000, "digest": "` + digest + `"}`
	}
	manifest := func(artifactType, config string, layers []string, annotations string) []byte {
		s := `{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"`
		if artifactType != "" {
			s += `, "artifactType": "` + artifactType + `"`
		}
		s += `, "config": {"mediaType": "` + config + `", "size": 2, "digest": "` + digest + `"}, "layers": [` + strings.Join(layers, ",") + `]`
		if annotations != "" {
			s += ", " + annotations
		}
		return []byte(s + "}")
	}
	good := manifest(ArtifactType, ConfigMediaType, []string{layer(LayerMediaType)}, ann)
	tests := []struct {
		name string
		mt   types.MediaType
		raw  []byte
		err  string // "" for accepted
	}{
		{"bundle", types.OCIManifestSchema1, good, ""},
		{"config type alone", types.OCIManifestSchema1, manifest("", ConfigMediaType, []string{layer(LayerMediaType)}, ann), ""},
		{"extra keel layer", types.OCIManifestSchema1, manifest(ArtifactType, ConfigMediaType, []string{layer("application/vnd.keel.chunks.v1"), layer(LayerMediaType)}, ann), ""},
		{"docker image", types.DockerManifestSchema2, []byte(`{}`), "container image"},
		{"docker list", types.DockerManifestList, []byte(`{}`), "image index"},
		{"oci index", types.OCIImageIndex, []byte(`{}`), "image index"},
		{"oci image", types.OCIManifestSchema1, manifest("", string(types.OCIConfigJSON), []string{layer(string(types.OCILayer))}, ann), "a container image (config application/vnd.oci.image.config.v1+json)"},
		{"other artifact", types.OCIManifestSchema1, manifest("application/vnd.example.sbom", "application/vnd.oci.empty.v1+json", []string{layer(LayerMediaType)}, ann), "artifact type application/vnd.example.sbom"},
		{"wrong config", types.OCIManifestSchema1, manifest(ArtifactType, "application/vnd.oci.empty.v1+json", []string{layer(LayerMediaType)}, ann), "config media type"},
		{"no layer", types.OCIManifestSchema1, manifest(ArtifactType, ConfigMediaType, nil, ann), "0 layers"},
		{"two bundles", types.OCIManifestSchema1, manifest(ArtifactType, ConfigMediaType, []string{layer(LayerMediaType), layer(LayerMediaType)}, ann), "2 layers"},
		{"foreign layer", types.OCIManifestSchema1, manifest(ArtifactType, ConfigMediaType, []string{layer(LayerMediaType), layer(string(types.OCILayer))}, ann), "layer 1 has media type"},
		{"no annotations", types.OCIManifestSchema1, manifest(ArtifactType, ConfigMediaType, []string{layer(LayerMediaType)}, ""), "no org.keel.name annotation"},
		{"not json", types.OCIManifestSchema1, []byte(`{"schemaVersion": 2,`), "manifest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			art, err := parseArtifact(tt.mt, tt.raw)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if art.Name != "t" || art.Version != "2.0.0" || art.Compatible != "c" || art.Arch != "amd64" || art.BuildID != "b" || art.Size != 1000 || art.BlobDigest != digest {
					t.Errorf("artifact %+v", art)
				}
				return
			}
			if !errors.Is(err, ErrNotBundle) || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error %v, want ErrNotBundle saying %q", err, tt.err)
			}
		})
	}
}

// TestFileKeychain checks which entry of an auth file answers for which
// repository.
func TestFileKeychain(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "auth.json")
	auths := map[string]map[string]string{
		"127.0.0.1:5000":                     {"auth": "dXNlcjpwYXNz"}, // user:pass
		"https://reg.example:443/v1/":        {"username": "hub", "password": "h"},
		"127.0.0.1:5000/fleet":               {"username": "fleet", "password": "f"},
		"127.0.0.1:5000/fleet/special":       {"username": "special", "password": "s"},
		"http://plain.example:8080/whatever": {"identitytoken": "tok"},
		"empty.example":                      {},
	}
	b, _ := json.Marshal(map[string]any{"auths": auths})
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		repo, key string
		want      authn.AuthConfig
	}{
		{"127.0.0.1:5000/other", "127.0.0.1:5000", authn.AuthConfig{Username: "user", Password: "pass"}},
		{"127.0.0.1:5000/fleet/t", "127.0.0.1:5000/fleet", authn.AuthConfig{Username: "fleet", Password: "f"}},
		{"127.0.0.1:5000/fleetx/t", "127.0.0.1:5000", authn.AuthConfig{Username: "user", Password: "pass"}},
		{"127.0.0.1:5000/fleet/special", "127.0.0.1:5000/fleet/special", authn.AuthConfig{Username: "special", Password: "s"}},
		{"reg.example:443/a/b", "https://reg.example:443/v1/", authn.AuthConfig{Username: "hub", Password: "h"}},
		{"plain.example:8080/x", "http://plain.example:8080/whatever", authn.AuthConfig{IdentityToken: "tok"}},
		{"empty.example/x", "", authn.AuthConfig{}},
		{"127.0.0.1:5001/x", "", authn.AuthConfig{}},
	}
	for _, tt := range tests {
		repo, err := name.NewRepository(tt.repo)
		if err != nil {
			t.Fatal(err)
		}
		auth, key, err := fileKeychain{file}.lookup(repo)
		if err != nil {
			t.Fatal(err)
		}
		if key != tt.key {
			t.Errorf("%s: entry %q, want %q", tt.repo, key, tt.key)
		}
		if tt.key == "" {
			if auth != authn.Anonymous {
				t.Errorf("%s: %v, want anonymous", tt.repo, auth)
			}
			continue
		}
		got, err := authn.Authorization(t.Context(), auth)
		if err != nil {
			t.Fatal(err)
		}
		// "auth" is decoded into username and password.
		if got.Username != tt.want.Username || got.Password != tt.want.Password || got.IdentityToken != tt.want.IdentityToken {
			t.Errorf("%s: %+v, want %+v", tt.repo, got, tt.want)
		}
	}
	if _, _, err := (fileKeychain{filepath.Join(dir, "none.json")}).lookup(name.MustParseReference("127.0.0.1:5000/x").Context()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestContentRange(t *testing.T) {
	tests := []struct {
		in           string
		start, total int64
		bad          bool
	}{
		{"bytes 0-99/100", 0, 100, false},
		{"bytes 42-99/100", 42, 100, false},
		{"bytes 42-99/*", 42, -1, false},
		{"bytes */100", 0, 0, true},
		{"items 0-1/2", 0, 0, true},
		{"", 0, 0, true},
	}
	for _, tt := range tests {
		start, total, err := contentRange(tt.in)
		if (err != nil) != tt.bad || (!tt.bad && (start != tt.start || total != tt.total)) {
			t.Errorf("contentRange(%q) = %d, %d, %v", tt.in, start, total, err)
		}
	}
}

func TestParseReference(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{"oci://127.0.0.1:5000/fleet/t:stable", "127.0.0.1:5000/fleet/t:stable", false},
		{"127.0.0.1:5000/fleet/t:stable", "127.0.0.1:5000/fleet/t:stable", false},
		{"oci://127.0.0.1:5000/fleet/t@sha256:0000000000000000000000000000000000000000000000000000000000000001", "127.0.0.1:5000/fleet/t@sha256:0000000000000000000000000000000000000000000000000000000000000001", false},
		{"https://127.0.0.1:5000/fleet/t:stable", "", true},
		{"oci://127.0.0.1:5000/Fleet/t:stable", "", true},
		{"oci://127.0.0.1:5000/fleet/t:bad tag", "", true},
	}
	for _, tt := range tests {
		r, err := ParseReference(tt.in, false)
		if tt.bad {
			if !errors.Is(err, ErrBadRef) {
				t.Errorf("%s: %v, want ErrBadRef", tt.in, err)
			}
			continue
		}
		if err != nil || r.String() != tt.want {
			t.Errorf("%s: %v, %v; want %s", tt.in, r, err, tt.want)
		}
	}
}

// TestBlobOpenAnswers holds Blob.Open to what it makes of the ways a
// server (the registry, or the storage it redirects to) may answer a
// range request.
func TestBlobOpenAnswers(t *testing.T) {
	content := []byte(strings.Repeat("0123456789", 100))
	size := int64(len(content))
	tests := []struct {
		name    string
		handler func(w http.ResponseWriter, r *http.Request)
		off     int64
		err     string // "" for content[off:]
	}{
		{"honours range", func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Range") != "bytes=123-" {
				http.Error(w, "no range", http.StatusBadRequest)
				return
			}
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(content))
		}, 123, ""},
		{"ignores range", func(w http.ResponseWriter, r *http.Request) { w.Write(content) }, 123, ""},
		{"wrong start", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", size-1, size))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(content)
		}, 123, `Content-Range "bytes 0-999/1000", want bytes 123-…/1000`},
		{"other size", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 123-%d/%d", size, size+1))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(content[123:])
		}, 123, "want bytes 123-…/1000"},
		{"whole, other size", func(w http.ResponseWriter, r *http.Request) { w.Write(content[1:]) }, 0, "999 bytes, the manifest says 1000"},
		{"gone", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`))
		}, 0, "not found in the registry: GET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(tt.handler))
			defer srv.Close()
			b := &Blob{client: srv.Client(), url: srv.URL + "/v2/r/blobs/x", name: "r@x", size: size, c: &client{}}
			body, n, err := b.Open(t.Context(), tt.off)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Open: %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(body)
			body.Close()
			if err != nil || n != size || !bytes.Equal(got, content[tt.off:]) {
				t.Errorf("Open(%d): %q (size %d), %v", tt.off, got, n, err)
			}
		})
	}
}

// TestBlobOpenRange asks for exact ranges: what it sends, and what it gets
// from a server that honours them and from one that ignores them.
func TestBlobOpenRange(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789"), 100)
	for _, honour := range []bool{true, false} {
		var ranges []string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ranges = append(ranges, r.Header.Get("Range"))
			if !honour {
				r.Header.Del("Range")
			}
			http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(content))
		}))
		b := &Blob{client: srv.Client(), url: srv.URL + "/v2/r/blobs/x", name: "r@x", size: int64(len(content)), c: &client{}}
		for _, tt := range []struct{ off, n, want int64 }{{0, 10, 10}, {123, 77, 77}, {990, 100, 10}, {500, 0, 0}} {
			body, err := b.OpenRange(t.Context(), tt.off, tt.n)
			if err != nil {
				t.Fatalf("OpenRange(%d, %d): %v", tt.off, tt.n, err)
			}
			got, err := io.ReadAll(body)
			body.Close()
			if err != nil || !bytes.Equal(got, content[tt.off:tt.off+tt.want]) {
				t.Errorf("honour %v: OpenRange(%d, %d) = %q, %v", honour, tt.off, tt.n, got, err)
			}
		}
		srv.Close()
		if want := []string{"bytes=0-9", "bytes=123-199", "bytes=990-999"}; !slices.Equal(ranges, want) {
			t.Errorf("ranges sent: %q, want %q", ranges, want)
		}
	}
}
