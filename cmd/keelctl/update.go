package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"keel/image/bundle"
	"keel/image/fetch"
	"keel/image/install"
	"keel/image/registry"
	"keel/profiles"
)

// updateOptions are keelctl update's flags.
type updateOptions struct {
	installOptions
	check    bool
	rate     string // bytes per second, a size ("1M")
	retries  int
	ca       string // PEM file
	authFile string
	insecure bool
	noDelta  bool
}

func newUpdateCmd(g *globals) *cobra.Command {
	o := &updateOptions{}
	cmd := &cobra.Command{
		Use:   "update SOURCE",
		Short: "Fetch an update bundle from a server or a registry and install it into the other slot",
		Long: `Fetch a signed update bundle and install it into the slot that is not
running, as keelctl install does: streamed straight into the slot with no
temporary copy, its signature and manifest checked before anything is
written. SOURCE is one of

  https://HOST/PATH/BUNDLE.keel   a bundle on a web server
  http://HOST/PATH/BUNDLE.keel    the same in clear: only with --insecure
  oci://REGISTRY/REPO:TAG         a bundle pushed with keel push (or @sha256:…)
  FILE                            a bundle on a local file system

From an https URL or a registry it installs a delta: the bundle's signed
header, manifest and chunk index come first (range requests), then every
chunk the running slot already has (its index on the ESP says where) is
copied from the slot and checked again, and only the others are fetched,
one range request per run of them; each chunk is checked against the
index and each artifact against the manifest. A bundle without an index,
or a server that ignores ranges, is fetched whole; --no-delta always is.

A dropped connection, a read error or a stalled server (no byte for 30 s)
is resumed at the byte reached with a range request, so nothing is fetched
twice (a server that ignores ranges sends the start again, which is
dropped and counted); a bundle that changed on the server meanwhile (its
ETag, Last-Modified or size) is refused rather than spliced. Failed
attempts in a row are retried --retries times, pausing up to 1 s, 2 s,
4 s, ... (30 s at most; each pause shortened at random by up to half, so a
fleet does not retry in step). --rate caps the bandwidth, smoothly. At the end
it prints the bytes fetched.

--check installs nothing: it prints "newer: NAME VERSION" when SOURCE holds
a newer version for this image (same compatible string and architecture),
else "up to date: ...", and exits 0 either way. For a registry it decides
from the tag's manifest annotations (nothing else is fetched; they are the
publisher's word, the install checks the signed manifest); for a URL or a
file from the bundle's signed header and manifest alone (a range request
for the first few KiB), verified with the trusted keys. A bundle for
another device, or one whose signature does not verify, is refused (3).`,
		Example: `  keelctl update https://updates.example/busybox-2.0.0.keel
  keelctl update oci://REGISTRY/fleet/busybox:stable --rate 2M
  keelctl update --check oci://REGISTRY/fleet/busybox:stable`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.check {
				return checkUpdate(cmd.Context(), g, cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], o)
			}
			_, err := update(cmd.Context(), g, cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], o)
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.check, "check", false, "only say whether SOURCE holds a newer version for this image")
	f.StringVar(&o.rate, "rate", "", "cap the download at this many bytes per second (e.g. 500K, 2M)")
	f.IntVar(&o.retries, "retries", 0, fmt.Sprintf("failed attempts in a row to retry before giving up (default %d; -1: none)", fetch.DefaultRetries))
	f.StringArrayVar(&o.keys, "key", nil, "trusted public key file (repeatable; default: "+KeyDir+"/*.pub)")
	f.BoolVar(&o.allowDowngrade, "allow-downgrade", false, "install a version older than the running one")
	f.IntVar(&o.tries, "tries", 0, "trial boots before falling back (default: the image's update.tries)")
	f.StringVar(&o.ca, "ca", "", "PEM file of CA certificates to trust (beside the system's) for https and the registry")
	f.StringVar(&o.authFile, "auth-file", "", "registry credentials, docker config.json format (default: the docker and podman auth files)")
	f.BoolVar(&o.noDelta, "no-delta", false, "fetch the whole bundle as one stream, even when the running slot has chunks of it")
	f.BoolVar(&o.insecure, "insecure", false, "allow plain http (the signature is still checked, but not privately fetched)")
	return cmd
}

// update fetches the bundle at arg and installs it.
func update(ctx context.Context, g *globals, out, errw io.Writer, arg string, o *updateOptions) (*install.Result, error) {
	trusted, err := trustedKeys(o.keys)
	if err != nil {
		return nil, err
	}
	so, err := o.sourceOptions(errw)
	if err != nil {
		return nil, err
	}
	var src *source
	if ref, ok := strings.CutPrefix(arg, "oci://"); ok {
		art, err := registry.Resolve(ctx, ref, registry.ResolveOptions{Options: o.registryOptions(so)})
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "%s: %s %s, %s\n", art.Ref, art.Name, art.Version, human(art.Size))
		if !o.noDelta {
			return updateDelta(ctx, g, out, fetch.Redact(arg), art.Blob, trusted, o, so)
		}
		src = fetched(ctx, art.Blob, so)
	} else if !o.noDelta && (strings.HasPrefix(arg, "https://") || strings.HasPrefix(arg, "http://")) {
		if err := so.allowed(arg); err != nil {
			return nil, err
		}
		return updateDelta(ctx, g, out, fetch.Redact(arg), fetch.URL(so.client, arg, nil), trusted, o, so)
	} else {
		if err := so.allowed(arg); err != nil {
			return nil, err
		}
		if src, err = openSource(ctx, arg, so); err != nil {
			return nil, err
		}
	}
	defer src.Close()
	start := time.Now()
	res, err := installStream(ctx, g, out, fetch.Redact(arg), src, trusted, &o.installOptions)
	if r := src.fetch; r != nil && r.Fetched() > 0 {
		el := time.Since(start)
		fmt.Fprintf(out, "fetched %d bytes (%s) in %.1f s, %s/s", r.Fetched(), human(r.Fetched()), el.Seconds(), human(int64(float64(r.Fetched())/max(el.Seconds(), 1e-3))))
		switch n := r.Reopens(); {
		case n == 1:
			fmt.Fprint(out, ", resumed once")
		case n > 1:
			fmt.Fprintf(out, ", resumed %d times", n)
		}
		fmt.Fprintln(out)
	}
	return res, err
}

// updateDelta installs the bundle at src reusing what the running slot
// has: the chunks its index lists are read from the slot, the rest fetched
// by range requests (install.InstallDelta; a bundle without an index, or a
// server without ranges, is streamed whole).
func updateDelta(ctx context.Context, g *globals, out io.Writer, name string, src fetch.Source, trusted []ed25519.PublicKey, o *updateOptions, so sourceOptions) (*install.Result, error) {
	sys, err := openSystem(g, true)
	if err != nil {
		return nil, err
	}
	defer sys.close()
	fmt.Fprintf(out, "running %s %s from slot %s\n", sys.Running.Name, sys.Running.Version, sys.Booted)
	start := time.Now()
	res, err := install.InstallDelta(ctx, sys.Target, src, trusted, install.Options{
		Tries: o.tries, AllowDowngrade: o.allowDowngrade, Progress: progressPrinter(out),
		Fetch: fetch.Options{Rate: so.rate, Retries: so.retries, Logger: so.logger},
	})
	if install.IsRefused(err) {
		return nil, fmt.Errorf("bundle %s refused: %w", name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("install %s: %w", name, err)
	}
	fmt.Fprintf(out, "installed %s %s into slot %s: entry %s, generation %d; reboot to try it\n",
		res.Image.Name, res.Image.Version, res.Slot, res.Entry, res.Generation)
	el := time.Since(start)
	fmt.Fprintf(out, "fetched %d bytes (%s) in %.1f s, %d requests; reused %s from slot %s\n",
		res.Fetched, human(res.Fetched), el.Seconds(), res.Requests, human(res.Reused), sys.Booted)
	return res, nil
}

// checkUpdate prints whether arg holds a newer version for the running
// image.
func checkUpdate(ctx context.Context, g *globals, out, errw io.Writer, arg string, o *updateOptions) error {
	c, err := checkSource(ctx, g, errw, arg, o)
	if err != nil {
		return err
	}
	if c.newer {
		fmt.Fprintf(out, "newer: %s %s\n", c.name, c.version)
		return nil
	}
	fmt.Fprintf(out, "up to date: running %s %s, %s has %s %s\n", c.running.Name, c.running.Version, fetch.Redact(arg), c.name, c.version)
	return nil
}

// checked is what checkSource found.
type checked struct {
	newer         bool   // SOURCE's version is newer than the running one
	name, version string // what SOURCE holds
	running       install.Image
}

// checkSource finds out what arg holds and whether it is a newer version
// for the running image. A bundle for another device, or whose signature
// does not verify, is refused (install.IsRefused).
func checkSource(ctx context.Context, g *globals, errw io.Writer, arg string, o *updateOptions) (*checked, error) {
	so, err := o.sourceOptions(errw)
	if err != nil {
		return nil, err
	}
	running, err := runningImage(g)
	if err != nil {
		return nil, err
	}
	c := &checked{running: running}
	if ref, ok := strings.CutPrefix(arg, "oci://"); ok {
		_, art, err := registry.Latest(ctx, ref, running, registry.ResolveOptions{Options: o.registryOptions(so)})
		if errors.Is(err, install.ErrIncompatible) || errors.Is(err, install.ErrWrongArch) {
			return nil, install.Refuse(err)
		}
		if err != nil {
			return nil, err
		}
		c.name, c.version = art.Name, art.Version
	} else {
		trusted, err := trustedKeys(o.keys)
		if err != nil {
			return nil, err
		}
		m, err := signedManifest(ctx, arg, trusted, so)
		if err != nil {
			return nil, err
		}
		if err := install.Check(running, m, true); err != nil {
			return nil, install.Refuse(fmt.Errorf("%s: %w", fetch.Redact(arg), err))
		}
		c.name, c.version = m.Name, m.Version
	}
	c.newer = install.CompareVersions(c.version, running.Version) > 0
	return c, nil
}

// headGuess is what --check asks for first: a bundle's header, manifest
// and signature are about 1 KiB, and never more than bundle.MaxManifest
// and a bit.
const headGuess = 8 << 10

// signedManifest reads the head of the bundle at arg (a URL: by range
// requests; a file) and verifies it.
func signedManifest(ctx context.Context, arg string, trusted []ed25519.PublicKey, so sourceOptions) (bundle.Manifest, error) {
	var r io.Reader
	if strings.HasPrefix(arg, "http://") || strings.HasPrefix(arg, "https://") {
		if err := so.allowed(arg); err != nil {
			return bundle.Manifest{}, err
		}
		src := fetch.URL(so.client, arg, nil)
		head, err := fetch.ReadRange(ctx, src, 0, headGuess)
		if err != nil {
			return bundle.Manifest{}, err
		}
		if n, err := bundle.HeadSize(head); err == nil && n > int64(len(head)) {
			more, err := fetch.ReadRange(ctx, src, int64(len(head)), n-int64(len(head)))
			if err != nil {
				return bundle.Manifest{}, err
			}
			head = append(head, more...)
		}
		r = bytes.NewReader(head)
	} else {
		src, err := openSource(ctx, arg, so)
		if err != nil {
			return bundle.Manifest{}, err
		}
		defer src.Close()
		r = src
	}
	b, err := install.OpenBundle(r, trusted)
	if install.IsRefused(err) {
		return bundle.Manifest{}, fmt.Errorf("bundle %s refused: %w", fetch.Redact(arg), err)
	}
	if err != nil {
		return bundle.Manifest{}, fmt.Errorf("reading bundle %s: %w", fetch.Redact(arg), err)
	}
	return b.Manifest, nil
}

// runningImage is the booted slot's image.
func runningImage(g *globals) (install.Image, error) {
	sys, err := openSystem(g, false)
	if err != nil {
		return install.Image{}, err
	}
	defer sys.close()
	es, err := sys.Loader.Entries(sys.ESP)
	if err != nil {
		return install.Image{}, err
	}
	return install.ReadImage(sys.ESP, sys.Booted, bootedEntry(es, sys.Booted))
}

// sourceOptions turns the flags into how to fetch: a usage error for a
// bad rate or CA file.
func (o *updateOptions) sourceOptions(errw io.Writer) (sourceOptions, error) {
	so := sourceOptions{retries: o.retries, insecure: o.insecure, logger: stderrLogger(errw), client: httpClient}
	if o.rate != "" {
		r, err := profiles.ParseSize(o.rate)
		if err != nil {
			return so, usageError{fmt.Errorf("--rate: %w", err)}
		}
		so.rate = int64(r)
	}
	if o.ca == "" && o.insecure {
		return so, nil
	}
	tr := httpClient.Transport.(*http.Transport).Clone()
	if o.ca != "" {
		pool, err := registry.CAPool(o.ca)
		if err != nil {
			return so, usageError{fmt.Errorf("--ca: %w", err)}
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	so.client = &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return so.allowed(req.URL.String())
	}}
	return so, nil
}

// allowed refuses plain http without --insecure, for the URL given and
// any redirect.
func (so sourceOptions) allowed(u string) error {
	if !so.insecure && strings.HasPrefix(u, "http://") {
		return usageError{fmt.Errorf("%s: plain http only with --insecure (the bundle's signature is still checked, but anyone on the path sees and can stall what is fetched)", fetch.Redact(u))}
	}
	return nil
}

// registryOptions are the registry's share of the flags.
func (o *updateOptions) registryOptions(so sourceOptions) registry.Options {
	return registry.Options{AuthFile: o.authFile, CAFile: o.ca, Insecure: o.insecure, Logger: so.logger}
}
