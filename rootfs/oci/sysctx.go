package oci

import (
	"fmt"
	"os"
	"path/filepath"

	"go.podman.io/image/v5/types"
)

// goArch maps a profile's architecture name to the OCI (Go) one.
func goArch(arch string) (string, error) {
	switch arch {
	case "", "x86_64", "amd64":
		return "amd64", nil
	case "aarch64", "arm64":
		return "arm64", nil
	}
	return "", fmt.Errorf("unsupported architecture %q", arch)
}

// systemContext returns a containers/image context that reads no
// configuration from the host: every configuration path points into
// dir/config, which holds an empty registries.conf and empty directories;
// registries are contacted anonymously; big temporary files go to dir/tmp.
// Proxy settings from the environment still apply, as for any HTTP client.
func systemContext(dir, goarch string, insecure bool) (*types.SystemContext, error) {
	cfg := filepath.Join(dir, "config")
	for _, d := range []string{"registries.conf.d", "registries.d", "certs.d"} {
		if err := os.MkdirAll(filepath.Join(cfg, d), 0o755); err != nil {
			return nil, err
		}
	}
	// An explicit registries.conf must exist; an empty one means defaults:
	// no mirrors, no blocked or insecure registries, no search list.
	conf := filepath.Join(cfg, "registries.conf")
	if err := os.WriteFile(conf, nil, 0o644); err != nil {
		return nil, err
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	sys := &types.SystemContext{
		// Any default /etc path not overridden below lands in our empty dir.
		RootForImplicitAbsolutePaths: filepath.Join(cfg, "root"),
		SystemRegistriesConfPath:     conf,
		SystemRegistriesConfDirPath:  filepath.Join(cfg, "registries.conf.d"),
		RegistriesDirPath:            filepath.Join(cfg, "registries.d"),
		UserShortNameAliasConfPath:   filepath.Join(cfg, "short-name-aliases.conf"),
		DockerPerHostCertDirPath:     filepath.Join(cfg, "certs.d"),
		BlobInfoCacheDir:             filepath.Join(cfg, "blob-info-cache"),
		BigFilesTemporaryDir:         tmp,
		// Anonymous: no ~/.docker/config.json, auth.json or credential helper.
		DockerAuthConfig:        &types.DockerAuthConfig{},
		DockerRegistryUserAgent: "keel",
		OSChoice:                "linux",
		ArchitectureChoice:      goarch,
	}
	if insecure {
		sys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
		sys.OCIInsecureSkipTLSVerify = true
	} else {
		sys.DockerInsecureSkipTLSVerify = types.OptionalBoolFalse
	}
	return sys, nil
}
