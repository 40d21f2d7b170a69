package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"keel/image/bundle"
	"keel/image/fetch"
	"keel/image/install"
)

// KeyDir holds the public keys an image trusts (assemble bakes the
// profile's update.keys there).
const KeyDir = "/etc/keel/keys"

type installOptions struct {
	keys           []string
	allowDowngrade bool
	tries          int
}

func newInstallCmd(g *globals) *cobra.Command {
	o := &installOptions{}
	cmd := &cobra.Command{
		Use:   "install FILE|-|URL",
		Short: "Install an update bundle into the other slot and make it the next boot's trial",
		Long: `Install a signed update bundle into the slot that is not running, streaming
it from a file, standard input (-) or an http(s) URL without a temporary copy
(a dropped connection is resumed where it broke; keelctl update has more).

Before anything is written the bundle's signature must verify with a key in
` + KeyDir + ` (or --key), and its compatible string, architecture and version
must suit the running image. The running slot must be blessed (good). Then
the other slot's entry is removed, its partition and kernel and initrd (or
unified kernel image) written
and checked, and a trial entry keel-<slot>+<tries>.conf written: reboot to
try it. If it does not come up healthy, the loader falls back by itself.

A bundle ends with its last artifact (the initrd or the unified kernel
image): one with anything after it is refused (after
the other slot was written, exit 1). A bundle on a block device (e.g. a
virtual disk padded to whole MiB) is read to its end and no further.`,
		Example: `  keelctl install /var/updates/busybox-2.0.0.keel
  curl -s https://updates.example/busybox.keel | keelctl install -
  keelctl install https://updates.example/busybox-2.0.0.keel`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			trusted, err := trustedKeys(o.keys)
			if err != nil {
				return err
			}
			src, err := openSource(cmd.Context(), args[0], sourceOptions{client: httpClient, logger: stderrLogger(cmd.ErrOrStderr())})
			if err != nil {
				return err
			}
			defer src.Close()
			_, err = installStream(cmd.Context(), g, cmd.OutOrStdout(), args[0], src, trusted, o)
			return err
		},
	}
	cmd.Flags().StringArrayVar(&o.keys, "key", nil, "trusted public key file (repeatable; default: "+KeyDir+"/*.pub)")
	cmd.Flags().BoolVar(&o.allowDowngrade, "allow-downgrade", false, "install a version older than the running one")
	cmd.Flags().IntVar(&o.tries, "tries", 0, "trial boots before falling back (default: the image's update.tries)")
	return cmd
}

func trustedKeys(files []string) ([]ed25519.PublicKey, error) {
	if len(files) == 0 {
		keys, err := bundle.ReadKeyDir(KeyDir)
		if err != nil {
			return nil, fmt.Errorf("reading trusted keys: %w", err)
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("no trusted keys in %s: this image accepts no bundles (give --key)", KeyDir)
		}
		return keys, nil
	}
	var keys []ed25519.PublicKey
	for _, f := range files {
		k, err := bundle.ReadPublicKey(f)
		if err != nil {
			return nil, usageError{err}
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// installStream installs the bundle read from src (named name in
// messages) into the other slot, as DESIGN §4 says: its signature and
// manifest are checked (install.OpenBundle) before the system is even
// opened, so a refused bundle leaves everything as it was. keelctl install
// and update both come here.
func installStream(ctx context.Context, g *globals, out io.Writer, name string, src *source, trusted []ed25519.PublicKey, o *installOptions) (*install.Result, error) {
	b, err := install.OpenBundle(src, trusted)
	if install.IsRefused(err) {
		return nil, fmt.Errorf("bundle %s refused: %w", name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("reading bundle %s: %w", name, err)
	}
	b.Padded = src.device
	m := b.Manifest
	fmt.Fprintf(out, "bundle %s %s (build %s), signed by key %s, %s\n", m.Name, m.Version, m.BuildID, b.KeyID, human(m.Total()))
	sys, err := openSystem(g, true)
	if err != nil {
		return nil, err
	}
	defer sys.close()
	fmt.Fprintf(out, "running %s %s from slot %s\n", sys.Running.Name, sys.Running.Version, sys.Booted)
	res, err := install.Install(ctx, sys.Target, b, install.Options{
		Tries: o.tries, AllowDowngrade: o.allowDowngrade, Progress: progressPrinter(out),
	})
	if err != nil {
		return nil, fmt.Errorf("install %s: %w", name, err)
	}
	fmt.Fprintf(out, "installed %s %s into slot %s: entry %s, generation %d; reboot to try it\n",
		res.Image.Name, res.Image.Version, res.Slot, res.Entry, res.Generation)
	return res, nil
}

// source is a bundle opened as a stream.
type source struct {
	io.ReadCloser
	// device says the source is a block device, which goes on past the
	// bundle (bundle.Reader.Padded).
	device bool
	// fetch is the reader of a bundle fetched over the network: it
	// resumes after a dropped connection and counts the bytes.
	fetch *fetch.Reader
}

// sourceOptions say how to fetch a bundle over the network.
type sourceOptions struct {
	client   *http.Client
	rate     int64 // bytes/s, 0: no cap
	retries  int   // fetch.Options.Retries
	insecure bool  // allow plain http for update (install always does)
	logger   *slog.Logger
}

// openSource opens a bundle from a file, stdin ("-") or an http(s) URL,
// all as a stream: the manifest gives the sizes. A URL is read through a
// fetch.Reader, which resumes after a dropped connection; nothing is
// requested before the first read. (keelctl update resolves oci:// first.)
func openSource(ctx context.Context, arg string, o sourceOptions) (*source, error) {
	switch {
	case arg == "-":
		return &source{ReadCloser: io.NopCloser(os.Stdin)}, nil
	case strings.HasPrefix(arg, "http://") || strings.HasPrefix(arg, "https://"):
		if _, err := url.Parse(arg); err != nil {
			return nil, usageError{err}
		}
		return fetched(ctx, fetch.URL(o.client, arg, nil), o), nil
	case strings.HasPrefix(arg, "oci://"):
		return nil, usageError{fmt.Errorf("%s: oci:// sources are for keelctl update", arg)}
	}
	f, err := os.Open(arg)
	if err != nil {
		return nil, usageError{err}
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &source{ReadCloser: f, device: bundle.IsDevice(fi)}, nil
}

// fetched reads src through a resuming, rate-capped fetch.Reader.
func fetched(ctx context.Context, src fetch.Source, o sourceOptions) *source {
	r := fetch.NewReader(ctx, src, fetch.Options{Rate: o.rate, Retries: o.retries, Logger: o.logger})
	return &source{ReadCloser: r, fetch: r}
}

// stderrLogger prints the fetch's warnings (a connection dropped and
// resumed) as plain lines.
func stderrLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: slog.LevelWarn,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// progressPrinter prints each stage on its own line, and while an
// artifact is written a line at each tenth: plain lines, readable on a
// serial console and in a log. Every tenth gets its line even when one
// write crosses several, so an install prints the same lines whatever the
// sizes of its writes: keel test counts them as the install's cut points
// (image/updatetest.CutPoints).
func progressPrinter(w io.Writer) func(stage string, done, total int64) {
	last, tenths := "", 0
	return func(stage string, done, total int64) {
		if stage != last {
			last, tenths = stage, 0
			fmt.Fprintf(w, "  %s\n", stage)
		}
		if total <= 0 {
			return
		}
		for ; tenths < int(done*10/total) && tenths < 10; tenths++ {
			fmt.Fprintf(w, "    %3d%%  %s of %s\n", (tenths+1)*10, human(done), human(total))
		}
	}
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// httpClient gives up on a server that does not answer, but not on a long
// download: the body streams for as long as it takes (Ctrl-C stops it).
var httpClient = &http.Client{Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	TLSHandshakeTimeout:   30 * time.Second,
	ResponseHeaderTimeout: 60 * time.Second,
}}
