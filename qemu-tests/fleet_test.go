package qemutests

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keel/image/qemu"
	"keel/image/registry/registrytest"
)

// TestFleetUpdate updates a device from an OCI registry by itself (issue
// 10, "How it is checked", 2, and "Polling"): Debian's docker-registry runs
// on a host loopback port with TLS and basic auth; the guest reaches it
// only through one guestfwd on QEMU's restricted user network, at
// 10.0.2.100. Both versions' profiles say update: {source:
// oci://10.0.2.100:PORT/fleet/ab:stable, interval: 1m, reboot: immediate}
// with the registry's CA and a pull credential. keel push stores 2.0.0 and
// moves the stable tag to it; v1 boots, its keel-update service finds
// 2.0.0, installs it, reboots; v2's trial is blessed, and its own
// keel-update finds it is up to date. The registry's access log shows the
// bundle blob served to the guest.
func TestFleetUpdate(t *testing.T) {
	t.Parallel()
	h := setUp(t, registrytest.Binary, "nc")
	reg := registrytest.Start(t, registrytest.Options{Hosts: []string{"10.0.2.100"}})
	_, port, err := net.SplitHostPort(reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	guestHost := "10.0.2.100:" + port
	dir := t.TempDir()
	auth := filepath.Join(dir, "guest-auth.json")
	if err := os.WriteFile(auth, registrytest.AuthJSON(guestHost, reg.User, reg.Password), 0o600); err != nil {
		t.Fatal(err)
	}
	policy := fmt.Sprintf(", source: %q, interval: 1m, reboot: immediate, ca: %q, auth: %q", "oci://"+guestHost+"/fleet/ab:stable", reg.CAFile, auth)
	// The busybox image configures no network by itself: a service puts
	// QEMU's user-network address on eth0 (virtio_net).
	network := `  - {file: /usr/bin/keel-net, mode: "0755", content: "#!/bin/sh\nip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0\nexec sleep 1000000\n"}
kernel: {modules: [virtio_net]}
services:
  - {name: net, command: [/usr/bin/keel-net], restart: always, env: {PATH: /bin:/sbin:/usr/bin:/usr/sbin}}
`
	f := buildVersions(t, h, []builtVersion{{version: "1.0.0", update: policy, extra: network}, {version: "2.0.0", update: policy, extra: network}})
	f.bundles = nil // the update comes over the network
	var hostPort int
	fmt.Sscan(port, &hostPort)
	f.firmware = func(c *qemu.Config) {
		c.Network = true
		c.GuestForwards = []qemu.GuestForward{{Addr: guestHost, HostPort: hostPort}}
	}

	push := h.keelCmd("push", f.bundle["2.0.0"], reg.Host+"/fleet/ab:2.0.0", "--channel", "stable", "--ca", reg.CAFile)
	push.Env = append(push.Env, "REGISTRY_AUTH_FILE="+reg.AuthFile, "DOCKER_CONFIG="+dir)
	if out, err := push.CombinedOutput(); err != nil {
		t.Fatalf("keel push: %v\n%s", err, out)
	}

	disk := copyDisk(t, f.disk["1.0.0"], filepath.Join(f.dir, "device.img"))
	vars := filepath.Join(f.dir, "device.vars")
	g := f.boot(t, disk, vars, "boot 1")
	g.expect("keel: ready keel-ab 1.0.0 slot=a")
	g.expect("installed keel-ab 2.0.0 into slot b")
	// A delta: 2.0.0 differs from 1.0.0 in one small file, so nearly
	// every chunk is read from slot a.
	t.Logf("boot 1: %s", g.expect("fetched "))
	g.expect("rebooting into the update")
	g.waitExit("keel-init: rebooting")

	g = f.boot(t, disk, vars, "boot 2")
	g.expect("keel: ready keel-ab 2.0.0 slot=b")
	g.expect("health: entry blessed")
	g.expect("up to date")
	g.checkStatus("b", map[string]slotWant{"a": {"1.0.0", 1, "good"}, "b": {"2.0.0", 2, "good"}})
	g.poweroff()

	var blobs []string
	for _, l := range reg.AccessLogN("/v2/fleet/ab/blobs/sha256:", 1) {
		if strings.Contains(l, "\"GET ") {
			blobs = append(blobs, l)
		}
	}
	if len(blobs) == 0 {
		t.Errorf("the registry served no blob to the guest; its log:\n%s", reg.Log())
	}
	t.Logf("blobs the registry served:\n%s", strings.Join(blobs, "\n"))
}
