package main

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"keel/image/bundle"
)

func newBundleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Look into update bundles",
	}
	cmd.AddCommand(newBundleInspectCmd())
	return cmd
}

// bundleReport is what inspect shows, and its --json form.
type bundleReport struct {
	File     string          `json:"file"`
	Manifest bundle.Manifest `json:"manifest"`
	Signer   string          `json:"signer,omitempty"` // key id the signature names
	// Signature is "verified", "not checked", "unsigned" or the reason it
	// failed.
	Signature string `json:"signature"`
	Verified  bool   `json:"verified"`
	// Artifacts is "verified" after --check read them all, else "not checked".
	Artifacts string `json:"artifacts"`
	// Set is the artifact set: "kernel+initrd" or "uki" (a unified kernel
	// image).
	Set string `json:"set"`
}

// artifactSet names the set of artifacts m carries.
func artifactSet(m *bundle.Manifest) string {
	if m.UsesUKI() {
		return "uki"
	}
	return "kernel+initrd"
}

func newBundleInspectCmd() *cobra.Command {
	var (
		keys   []string
		asJSON bool
		check  bool
	)
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Show an update bundle's manifest and check its signature",
		Long: `Show what an update bundle (.keel) says it holds: image name, version,
compatible string, architecture, build id, which artifact set it carries (a
kernel and an initrd, or a unified kernel image), the dm-verity root hash of
its root filesystem when it has one, and each artifact's size and sha256. With --key (repeatable), check that the manifest is signed by one of
those public keys; with --check, also read every artifact and check its
hash, and that nothing follows the last one (the same verdict keel update and
keelctl install give; a bundle on a block device is read to its end and no
further). Without --key the signature is not checked.

Exit codes: 0 the bundle reads (and verifies, with --key), 1 it does not,
2 bad usage.`,
		Example: `  keel bundle inspect out/busybox-1.0.0.keel --key release.pub`,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var trusted []ed25519.PublicKey
			for _, k := range keys {
				pub, err := bundle.ReadPublicKey(k)
				if err != nil {
					return usageError{err}
				}
				trusted = append(trusted, pub)
			}
			rep, verr := inspectBundle(args[0], trusted, check)
			if rep == nil {
				return verr
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				printBundle(cmd.OutOrStdout(), rep)
			}
			return verr
		},
	}
	cmd.Flags().StringArrayVar(&keys, "key", nil, "public key file the signature must verify with (repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&check, "check", false, "read every artifact and check its sha256")
	return cmd
}

// inspectBundle reads the manifest as it claims to be, then (with keys)
// verifies it. A report comes back whenever the manifest could be read, with
// the verification's error beside it, so a bad bundle is still shown.
func inspectBundle(name string, trusted []ed25519.PublicKey, check bool) (*bundleReport, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	br, err := bundle.OpenUnverified(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	br.Padded = bundle.IsDevice(fi) // read to the bundle's end, not the device's
	rep := &bundleReport{File: name, Manifest: br.Manifest, Signer: br.Signer, Signature: "not checked", Artifacts: "not checked", Set: artifactSet(&br.Manifest)}
	if br.Signer == "" {
		rep.Signature = "unsigned"
	}
	if len(trusted) > 0 {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		if br, err = bundle.Open(f, trusted); err != nil {
			rep.Signature = err.Error()
			return rep, fmt.Errorf("%s: signature does not verify with the given key(s): %w", name, err)
		}
		br.Padded = bundle.IsDevice(fi)
		rep.Signature, rep.Verified = "verified with key "+br.KeyID, true
	}
	if check {
		for {
			_, r, err := br.Next()
			if err == io.EOF {
				break
			}
			if err == nil {
				_, err = io.Copy(io.Discard, r)
			}
			if err != nil {
				rep.Artifacts = err.Error()
				return rep, fmt.Errorf("%s: %w", name, err)
			}
		}
		rep.Artifacts = "verified"
	}
	return rep, nil
}

func printBundle(w io.Writer, r *bundleReport) {
	m := r.Manifest
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "bundle\t%s (format %d)\n", r.File, m.Format)
	fmt.Fprintf(tw, "image\t%s %s\n", m.Name, m.Version)
	fmt.Fprintf(tw, "compatible\t%s\n", m.Compatible)
	fmt.Fprintf(tw, "arch\t%s\n", m.Arch)
	fmt.Fprintf(tw, "build id\t%s\n", m.BuildID)
	if r.Set == "uki" {
		fmt.Fprintf(tw, "boots\ta unified kernel image (rootfs, uki)\n")
	} else {
		fmt.Fprintf(tw, "boots\ta kernel and an initrd (rootfs, kernel, initrd)\n")
	}
	if v := m.Verity; v != nil {
		fmt.Fprintf(tw, "verity root hash\t%s\n", v.RootHash)
		salt := v.Salt
		if salt == "" {
			salt = "none"
		}
		fmt.Fprintf(tw, "verity\t%d data blocks, hash tree at byte %d, salt %s\n", v.DataBlocks, v.HashOffset, salt)
	}
	switch {
	case r.Signature == "not checked":
		fmt.Fprintf(tw, "signature\tnot checked (signed by key %s)\n", r.Signer)
	case r.Verified || r.Signature == "unsigned":
		fmt.Fprintf(tw, "signature\t%s\n", r.Signature)
	default:
		// What is shown above is what the bundle claims, nothing more.
		fmt.Fprintf(tw, "signature\tFAILED: %s\n", r.Signature)
	}
	fmt.Fprintf(tw, "artifacts\t%s\n", r.Artifacts)
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "artifact\tbytes\tsha256")
	for _, a := range m.Artifacts {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", a.Name, a.Size, a.SHA256)
	}
	tw.Flush()
	switch r.Signature {
	case "not checked":
		fmt.Fprintln(w, "\nsignature not checked: pass --key PUB to verify it")
	case "unsigned":
		fmt.Fprintln(w, "\nthis bundle is not signed: no keel device installs it")
	}
}
