package registry_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"keel/image/bundle"
	"keel/image/install"
	"keel/image/registry"
	"keel/image/registry/registrytest"
)

// makeBundle writes a signed bundle of small random artifacts to dir and
// returns its path and bytes.
func makeBundle(t *testing.T, dir, version string, priv []byte) (string, []byte) {
	t.Helper()
	var srcs []bundle.Source
	for i, n := range []int{300 << 10, 40 << 10, 20 << 10} {
		b := make([]byte, n)
		rand.Read(b)
		srcs = append(srcs, bundle.SectionSource(bundle.InstallOrder[i], bytes.NewReader(b), 0, int64(n)))
	}
	p := filepath.Join(dir, "t-"+version+".keel")
	m := bundle.Manifest{Name: "t", Version: version, Compatible: "keel-test", Arch: "amd64"}
	if err := bundle.WriteFile(context.Background(), p, m, priv, srcs); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, b
}

func newKey(t *testing.T) []byte {
	_, priv, err := bundle.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

const ociAccept = "application/vnd.oci.image.manifest.v1+json"

// TestPushResolve pushes a bundle with a channel to the real registry
// (TLS, basic auth), reads back with plain HTTP what the registry stored,
// and resolves and reads it the way a device does.
func TestPushResolve(t *testing.T) {
	ctx := t.Context()
	reg := registrytest.Start(t, registrytest.Options{})
	dir := t.TempDir()
	path, file := makeBundle(t, dir, "2.0.0", newKey(t))
	o := registry.Options{AuthFile: reg.AuthFile, CAFile: reg.CAFile}

	var last [2]int64
	p, err := registry.Push(ctx, path, reg.Host+"/fleet/t:2.0.0", registry.PushOptions{Options: o, Channel: "stable", Progress: func(done, total int64) { last = [2]int64{done, total} }})
	if err != nil {
		t.Fatal(err)
	}
	if size := int64(len(file)); last != [2]int64{size, size} {
		t.Errorf("last progress %v, want %d of %d", last, size, size)
	}
	repo := reg.Host + "/fleet/t"
	if want := []string{repo + ":2.0.0", repo + ":stable"}; !slices.Equal(p.Tags, want) {
		t.Errorf("tags %v, want %v", p.Tags, want)
	}
	if p.Ref != repo+"@"+p.Digest || p.BlobDigest != sha(file) || p.Size != int64(len(file)) || p.Manifest.Version != "2.0.0" {
		t.Errorf("pushed %+v", p)
	}

	t.Run("stored manifest", func(t *testing.T) {
		resp, raw, err := reg.Get("/v2/fleet/t/manifests/2.0.0", http.Header{"Accept": {ociAccept}})
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET manifest: %v %v %s", resp.Status, err, raw)
		}
		if ct := resp.Header.Get("Content-Type"); ct != ociAccept {
			t.Errorf("Content-Type %s", ct)
		}
		if d := resp.Header.Get("Docker-Content-Digest"); d != p.Digest || sha(raw) != p.Digest {
			t.Errorf("digest header %s, body's %s, pushed %s", d, sha(raw), p.Digest)
		}
		var m struct {
			SchemaVersion int    `json:"schemaVersion"`
			MediaType     string `json:"mediaType"`
			ArtifactType  string `json:"artifactType"`
			Config        struct {
				MediaType, Digest string
				Size              int64
			} `json:"config"`
			Layers []struct {
				MediaType, Digest string
				Size              int64
				Annotations       map[string]string
			} `json:"layers"`
			Annotations map[string]string `json:"annotations"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		br, err := bundle.OpenUnverified(bytes.NewReader(file))
		if err != nil {
			t.Fatal(err)
		}
		if m.SchemaVersion != 2 || m.MediaType != ociAccept || m.ArtifactType != "application/vnd.keel.bundle.v1" {
			t.Errorf("manifest %s", raw)
		}
		if m.Config.MediaType != "application/vnd.keel.bundle.v1" || m.Config.Digest != sha(br.Raw) || m.Config.Size != int64(len(br.Raw)) {
			t.Errorf("config %+v", m.Config)
		}
		if len(m.Layers) != 1 || m.Layers[0].MediaType != "application/vnd.keel.bundle.layer.v1" || m.Layers[0].Digest != sha(file) ||
			m.Layers[0].Size != int64(len(file)) || m.Layers[0].Annotations["org.opencontainers.image.title"] != "t-2.0.0.keel" {
			t.Errorf("layers %+v", m.Layers)
		}
		want := map[string]string{
			"org.keel.name": "t", "org.keel.version": "2.0.0", "org.keel.compatible": "keel-test", "org.keel.arch": "amd64",
			"org.keel.build-id": br.Manifest.BuildID, "org.opencontainers.image.version": "2.0.0",
		}
		if fmt.Sprint(m.Annotations) != fmt.Sprint(want) {
			t.Errorf("annotations %v, want %v", m.Annotations, want)
		}
		// The blobs the registry serves are the file and its manifest.
		for _, b := range []struct {
			digest string
			want   []byte
		}{{m.Layers[0].Digest, file}, {m.Config.Digest, br.Raw}} {
			resp, got, err := reg.Get("/v2/fleet/t/blobs/"+b.digest, nil)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET blob: %v %v", resp.Status, err)
			}
			if sha(got) != sha(b.want) {
				t.Errorf("blob %s: sha256 %s, want %s", b.digest, sha(got), sha(b.want))
			}
		}
	})

	t.Run("channel", func(t *testing.T) {
		for _, tag := range []string{"2.0.0", "stable"} {
			resp, _, err := reg.Get("/v2/fleet/t/manifests/"+tag, http.Header{"Accept": {ociAccept}})
			if err != nil || resp.Header.Get("Docker-Content-Digest") != p.Digest {
				t.Errorf("%s: %v, digest %s, want %s", tag, err, resp.Header.Get("Docker-Content-Digest"), p.Digest)
			}
		}
		// The manifest went up by digest before either tag moved.
		var order []string
		for _, l := range reg.AccessLogN("PUT /v2/fleet/t/manifests/", 3) {
			order = append(order, strings.Fields(strings.SplitN(l, `"PUT `, 2)[1])[0])
		}
		want := []string{"/v2/fleet/t/manifests/" + p.Digest, "/v2/fleet/t/manifests/2.0.0", "/v2/fleet/t/manifests/stable"}
		if !slices.Equal(order, want) {
			t.Errorf("manifest PUTs %v, want %v", order, want)
		}
	})

	t.Run("resolve and read", func(t *testing.T) {
		art, err := registry.Resolve(ctx, "oci://"+repo+":stable", registry.ResolveOptions{Options: o})
		if err != nil {
			t.Fatal(err)
		}
		if art.Digest != p.Digest || art.Ref != p.Ref || art.Name != "t" || art.Version != "2.0.0" || art.Compatible != "keel-test" ||
			art.Arch != "amd64" || art.BlobDigest != sha(file) || art.Size != int64(len(file)) || art.Blob.String() != repo+"@"+sha(file) {
			t.Errorf("artifact %+v", art)
		}
		size := int64(len(file))
		for _, off := range []int64{0, 1, size / 3, size - 1, size} {
			body, n, err := art.Blob.Open(ctx, off)
			if err != nil {
				t.Fatalf("Open(%d): %v", off, err)
			}
			got, err := io.ReadAll(body)
			body.Close()
			if err != nil || n != size || !bytes.Equal(got, file[off:]) {
				t.Errorf("Open(%d): %d bytes (size %d, err %v), want the %d from there", off, len(got), n, err, size-off)
			}
		}
		for _, off := range []int64{-1, size + 1} {
			if _, _, err := art.Blob.Open(ctx, off); err == nil {
				t.Errorf("Open(%d) succeeded", off)
			}
		}
		// Reads from an offset were answered with ranges (206), and
		// reads from 0 with the whole blob.
		var statuses []string
		for _, l := range reg.AccessLogN("GET /v2/fleet/t/blobs/"+sha(file), 5) {
			f := strings.Fields(strings.SplitN(l, `" `, 2)[1])
			statuses = append(statuses, f[0])
		}
		// The whole blob for the subtest above and for offset 0, a range
		// for 1, size/3 and size-1, and no request for size.
		if want := []string{"200", "200", "206", "206", "206"}; !slices.Equal(statuses, want) {
			t.Errorf("blob GET statuses %v, want %v", statuses, want)
		}
	})

	t.Run("latest", func(t *testing.T) {
		tests := []struct {
			running install.Image
			newer   bool
			err     error
		}{
			{install.Image{Name: "t", Version: "1.9.0", Compatible: "keel-test", Arch: "amd64"}, true, nil},
			{install.Image{Name: "t", Version: "2.0.0-rc1", Compatible: "keel-test", Arch: "amd64"}, true, nil},
			{install.Image{Name: "t", Version: "2.0.0", Compatible: "keel-test", Arch: "amd64"}, false, nil},
			{install.Image{Name: "t", Version: "10.0", Compatible: "keel-test", Arch: "amd64"}, false, nil},
			{install.Image{Name: "t", Version: "1.0", Compatible: "other-board", Arch: "amd64"}, false, install.ErrIncompatible},
			{install.Image{Name: "t", Version: "1.0", Compatible: "keel-test", Arch: "arm64"}, false, install.ErrWrongArch},
		}
		for _, tt := range tests {
			newer, art, err := registry.Latest(ctx, repo+":stable", tt.running, registry.ResolveOptions{Options: o})
			if newer != tt.newer || !errors.Is(err, tt.err) || art == nil || art.Version != "2.0.0" {
				t.Errorf("running %+v: newer %v, %v; want %v, %v", tt.running, newer, err, tt.newer, tt.err)
			}
		}
	})

	t.Run("refusals", func(t *testing.T) {
		// An ordinary container image, in docker's and the OCI's media
		// types, and an index.
		rt := reg.Client().Transport
		auth := remote.WithAuth(&authn.Basic{Username: reg.User, Password: reg.Password})
		img, err := random.Image(1024, 1)
		if err != nil {
			t.Fatal(err)
		}
		oci := mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
		idx, err := random.Index(512, 1, 2)
		if err != nil {
			t.Fatal(err)
		}
		for tag, w := range map[string]func(name.Reference) error{
			"docker": func(r name.Reference) error { return remote.Write(r, img, remote.WithTransport(rt), auth) },
			"oci":    func(r name.Reference) error { return remote.Write(r, oci, remote.WithTransport(rt), auth) },
			"index":  func(r name.Reference) error { return remote.WriteIndex(r, idx, remote.WithTransport(rt), auth) },
		} {
			r, err := name.ParseReference(repo + ":" + tag)
			if err != nil {
				t.Fatal(err)
			}
			if err := w(r); err != nil {
				t.Fatalf("pushing a %s image: %v", tag, err)
			}
		}
		wrong := filepath.Join(dir, "wrong.json")
		os.WriteFile(wrong, registrytest.AuthJSON(reg.Host, reg.User, "not-"+reg.Password), 0o600)
		none := filepath.Join(dir, "none.json")
		os.WriteFile(none, []byte(`{"auths": {}}`), 0o600)
		tests := []struct {
			ref  string
			o    registry.Options
			kind error
			msg  string
		}{
			{repo + ":docker", o, registry.ErrNotBundle, "application/vnd.docker.distribution.manifest.v2+json (a container image)"},
			{repo + ":oci", o, registry.ErrNotBundle, "a container image (config application/vnd.oci.image.config.v1+json)"},
			{repo + ":index", o, registry.ErrNotBundle, "an image index"},
			{repo + ":missing", o, registry.ErrNotFound, "MANIFEST_UNKNOWN"},
			{repo + ":stable", registry.Options{AuthFile: wrong, CAFile: reg.CAFile}, registry.ErrUnauthorized, `credentials "` + reg.Host + `" of ` + wrong},
			{repo + ":stable", registry.Options{AuthFile: none, CAFile: reg.CAFile}, registry.ErrUnauthorized, "no credentials for " + reg.Host + " in " + none},
			{repo + ":stable", registry.Options{AuthFile: reg.AuthFile}, nil, "x509: certificate signed by unknown authority"},
			{"oci://" + reg.Host + "/Fleet/t:stable", o, registry.ErrBadRef, "could not parse reference"},
		}
		for _, tt := range tests {
			_, err := registry.Resolve(ctx, tt.ref, registry.ResolveOptions{Options: tt.o})
			t.Logf("%s: %v", tt.ref, err)
			if err == nil || (tt.kind != nil && !errors.Is(err, tt.kind)) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Resolve(%s): %v, want %v saying %q", tt.ref, err, tt.kind, tt.msg)
			}
			if strings.Contains(fmt.Sprint(err), "plain HTTP") {
				t.Errorf("Resolve(%s): %v: the refused fallback to plain HTTP hides the real error", tt.ref, err)
			}
		}
		// A push with the wrong password is refused just as clearly.
		_, err = registry.Push(ctx, path, repo+":2.0.1", registry.PushOptions{Options: registry.Options{AuthFile: wrong, CAFile: reg.CAFile}})
		if !errors.Is(err, registry.ErrUnauthorized) || !strings.Contains(err.Error(), wrong) {
			t.Errorf("push with a wrong password: %v", err)
		}
	})
}

// TestPushRefusesBadBundle checks that a file that is not an intact,
// signed bundle is refused before the registry hears of it.
func TestPushRefusesBadBundle(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	dir := t.TempDir()
	_, file := makeBundle(t, dir, "1.0.0", newKey(t))
	// An unsigned bundle: signature length 0 and no signature block.
	mlen := binary.BigEndian.Uint32(file[12:])
	unsigned := slices.Concat(file[:16], []byte{0, 0, 0, 0}, file[20:20+mlen], file[20+mlen+72:])
	flipped := slices.Clone(file)
	flipped[len(flipped)-1000] ^= 1
	tests := []struct {
		name string
		b    []byte
		err  error
	}{
		{"unsigned", unsigned, bundle.ErrNoSignature},
		{"truncated", file[:len(file)-1], bundle.ErrTruncated},
		{"appended", append(slices.Clone(file), 0), bundle.ErrCorrupt},
		{"flipped", flipped, bundle.ErrHashMismatch},
		{"not a bundle", []byte("hello"), bundle.ErrCorrupt},
	}
	o := registry.PushOptions{Options: registry.Options{AuthFile: reg.AuthFile, CAFile: reg.CAFile}}
	reg.Settle()
	before := len(reg.AccessLog(""))
	for _, tt := range tests {
		p := filepath.Join(dir, tt.name+".keel")
		if err := os.WriteFile(p, tt.b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := registry.Push(t.Context(), p, reg.Host+"/fleet/t:bad", o)
		if !errors.Is(err, registry.ErrBadBundle) || !errors.Is(err, tt.err) {
			t.Errorf("%s: %v, want ErrBadBundle and %v", tt.name, err, tt.err)
		}
	}
	if _, err := registry.Push(t.Context(), filepath.Join(dir, "none.keel"), reg.Host+"/fleet/t:bad", o); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	for _, ref := range []string{reg.Host + "/fleet/t@" + sha(file), "https://" + reg.Host + "/fleet/t:1"} {
		if _, err := registry.Push(t.Context(), filepath.Join(dir, "t-1.0.0.keel"), ref, o); !errors.Is(err, registry.ErrBadRef) {
			t.Errorf("push to %s: %v, want ErrBadRef", ref, err)
		}
	}
	if _, err := registry.Push(t.Context(), filepath.Join(dir, "t-1.0.0.keel"), reg.Host+"/fleet/t:1", registry.PushOptions{Options: o.Options, Channel: "no good"}); !errors.Is(err, registry.ErrBadRef) {
		t.Errorf("channel %q: %v, want ErrBadRef", "no good", err)
	}
	reg.Settle()
	if after := reg.AccessLog(""); len(after) != before {
		t.Errorf("the registry was asked %d more requests: %q", len(after)-before, after[before:])
	}
}

// TestRedirect reads a bundle from a registry that redirects blob GETs
// to its storage (as one on object storage does): the range goes along,
// the registry's credentials do not.
func TestRedirect(t *testing.T) {
	ctx := t.Context()
	reg := registrytest.Start(t, registrytest.Options{Redirect: true})
	path, file := makeBundle(t, t.TempDir(), "3.0.0", newKey(t))
	o := registry.Options{AuthFile: reg.AuthFile, CAFile: reg.CAFile}
	if _, err := registry.Push(ctx, path, reg.Host+"/fleet/t:3.0.0", registry.PushOptions{Options: o}); err != nil {
		t.Fatal(err)
	}
	art, err := registry.Resolve(ctx, reg.Host+"/fleet/t:3.0.0", registry.ResolveOptions{Options: o})
	if err != nil {
		t.Fatal(err)
	}
	off := int64(len(file) / 2)
	for _, off := range []int64{0, off} {
		body, _, err := art.Blob.Open(ctx, off)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(body)
		body.Close()
		if err != nil || !bytes.Equal(got, file[off:]) {
			t.Errorf("Open(%d): %d bytes, %v", off, len(got), err)
		}
	}
	got := reg.Redirected()
	if len(got) != 2 {
		t.Fatalf("redirect server got %+v, want 2 GETs", got)
	}
	for i, want := range []registrytest.Request{{Method: "GET", Status: 200}, {Method: "GET", Range: fmt.Sprintf("bytes=%d-", off), Status: 206}} {
		r := got[i]
		if r.Method != want.Method || r.Range != want.Range || r.Status != want.Status || r.Authorization != "" || !strings.HasSuffix(r.Path, "/"+strings.TrimPrefix(sha(file), "sha256:")+"/data") {
			t.Errorf("redirected request %d: %+v, want %+v without credentials", i, r, want)
		}
	}
	var statuses []string
	for _, l := range reg.AccessLogN("GET /v2/fleet/t/blobs/"+sha(file), 2) {
		statuses = append(statuses, strings.Fields(strings.SplitN(l, `" `, 2)[1])[0])
	}
	if !slices.Equal(statuses, []string{"307", "307"}) {
		t.Errorf("the registry answered the blob GETs with %v, want two redirects", statuses)
	}
}

// TestBearer pushes and reads a bundle through a registry that wants
// bearer tokens from a token server, as most hosted registries do.
func TestBearer(t *testing.T) {
	ctx := t.Context()
	reg := registrytest.Start(t, registrytest.Options{Token: true})
	dir := t.TempDir()
	path, file := makeBundle(t, dir, "5.0.0", newKey(t))
	o := registry.Options{AuthFile: reg.AuthFile, CAFile: reg.CAFile}
	if _, err := registry.Push(ctx, path, reg.Host+"/fleet/t:5.0.0", registry.PushOptions{Options: o, Channel: "stable"}); err != nil {
		t.Fatal(err)
	}
	art, err := registry.Resolve(ctx, reg.Host+"/fleet/t:stable", registry.ResolveOptions{Options: o})
	if err != nil {
		t.Fatal(err)
	}
	off := int64(len(file) - 4096)
	body, _, err := art.Blob.Open(ctx, off)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(body)
	body.Close()
	if err != nil || !bytes.Equal(got, file[off:]) {
		t.Errorf("Open(%d): %d bytes, %v", off, len(got), err)
	}
	// One token for the push, one for the reads, each for its scope.
	want := []registrytest.TokenRequest{
		{User: reg.User, Scopes: []string{"repository:fleet/t:push,pull"}, Status: 200},
		{User: reg.User, Scopes: []string{"repository:fleet/t:pull"}, Status: 200},
	}
	if got := reg.TokenRequests(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("token requests %+v, want %+v", got, want)
	}

	wrong := filepath.Join(dir, "wrong.json")
	os.WriteFile(wrong, registrytest.AuthJSON(reg.Host, reg.User, "wrong"), 0o600)
	none := filepath.Join(dir, "none.json")
	os.WriteFile(none, []byte(`{"auths": {}}`), 0o600)
	for _, tt := range []struct{ file, msg string }{
		{wrong, `credentials "` + reg.Host + `" of ` + wrong},
		{none, "no credentials for " + reg.Host},
	} {
		_, err := registry.Resolve(ctx, reg.Host+"/fleet/t:stable", registry.ResolveOptions{Options: registry.Options{AuthFile: tt.file, CAFile: reg.CAFile}})
		t.Log(err)
		if !errors.Is(err, registry.ErrUnauthorized) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("auth file %s: %v, want ErrUnauthorized saying %q", tt.file, err, tt.msg)
		}
	}
}

// TestInsecure checks that plain HTTP is used only when asked for.
func TestInsecure(t *testing.T) {
	ctx := t.Context()
	reg := registrytest.Start(t, registrytest.Options{PlainHTTP: true})
	path, file := makeBundle(t, t.TempDir(), "4.0.0", newKey(t))
	ref := reg.Host + "/fleet/t:4.0.0"
	o := registry.Options{AuthFile: reg.AuthFile}
	if _, err := registry.Push(ctx, path, ref, registry.PushOptions{Options: o}); err == nil || !strings.Contains(err.Error(), "a plain HTTP registry? the insecure option allows it") {
		t.Errorf("push over plain HTTP without Insecure: %v", err)
	}
	if _, err := registry.Resolve(ctx, ref, registry.ResolveOptions{Options: o}); err == nil {
		t.Error("resolve over plain HTTP without Insecure succeeded")
	}
	o.Insecure = true
	if _, err := registry.Push(ctx, path, ref, registry.PushOptions{Options: o}); err != nil {
		t.Fatal(err)
	}
	art, err := registry.Resolve(ctx, ref, registry.ResolveOptions{Options: o})
	if err != nil {
		t.Fatal(err)
	}
	body, _, err := art.Blob.Open(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(body)
	body.Close()
	if !bytes.Equal(got, file[100:]) {
		t.Errorf("read %d bytes, not the file's", len(got))
	}
}
