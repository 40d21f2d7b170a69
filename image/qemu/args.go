package qemu

import (
	"cmp"
	"sort"
	"strconv"
	"strings"
)

// args is QEMU's command line (without the binary) for cfg, whose firmware
// paths and accelerator are already resolved and whose variable store copy
// is vars.
func args(cfg *Config, accel, code, vars string) []string {
	mem, cpus := cfg.MemoryMiB, cfg.CPUs
	if mem <= 0 {
		mem = 1024
	}
	if cpus <= 0 {
		cpus = 1
	}
	// The guest's network is QEMU's user network, restricted: DHCP and
	// the forwarded loopback ports, nothing leaves the machine.
	nic := "none"
	if cfg.Network {
		nic = "user,model=virtio-net-pci,restrict=on"
		for _, f := range cfg.Forwards {
			nic += ",hostfwd=tcp:127.0.0.1:" + strconv.Itoa(f.HostPort) + "-:" + strconv.Itoa(f.GuestPort)
		}
		// A chardev target (-tcp:HOST:PORT) is one connection made when
		// QEMU starts, which every guest connection would share; cmd:
		// runs netcat for each connection instead.
		for _, f := range cfg.GuestForwards {
			nic += ",guestfwd=tcp:" + f.Addr + "-cmd:nc 127.0.0.1 " + strconv.Itoa(f.HostPort)
		}
	}
	m, err := machineFor(cfg.Arch)
	if err != nil {
		m = machines["x86_64"] // Start refused it already
	}
	machine := m.machine
	if cfg.SecureBoot {
		machine += ",smm=on"
	}
	a := []string{
		"-machine", machine,
		"-accel", accel,
		"-cpu", m.cpu,
		"-m", strconv.Itoa(mem),
		"-smp", strconv.Itoa(cpus),
		"-display", "none",
		"-serial", "stdio",
		"-monitor", "none",
		// A guest reboot or power-off ends QEMU, so a test sees it as an
		// exit instead of a second boot.
		"-no-reboot",
		"-nic", nic,
	}
	if cfg.BIOS && m.bios != "" {
		a = append(a, "-bios", m.bios)
	}
	if !cfg.BIOS {
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+optValue(code),
			"-drive", "if=pflash,format=raw,unit=1,file="+optValue(vars))
	}
	if cfg.SecureBoot && !cfg.BIOS {
		a = append(a, "-global", "driver=cfi.pflash01,property=secure,value=on")
	}
	if cfg.Disk != "" {
		a = append(a, "-drive", "if=virtio,format="+cmp.Or(cfg.DiskFormat, "raw")+",file="+optValue(cfg.Disk))
	}
	for _, d := range cfg.ExtraDisks {
		a = append(a, "-drive", "if=virtio,format=raw,file="+optValue(d))
	}
	// Sorted, so the same Config gives the same command line.
	names := make([]string, 0, len(cfg.FwCfg))
	for n := range cfg.FwCfg {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		name := n
		if !strings.HasPrefix(name, "opt/") {
			name = "opt/" + name
		}
		a = append(a, "-fw_cfg", "name="+optValue(name)+",file="+optValue(cfg.FwCfg[n]))
	}
	return append(a, cfg.ExtraArgs...)
}

// diskFormats are the values Config.DiskFormat takes: the formats keel
// build writes.
var diskFormats = []string{"raw", "qcow2", "vmdk", "vhdx"}

// optValue escapes a value inside a QEMU option list, where a comma
// separates options and ",," stands for a literal comma.
func optValue(s string) string {
	return strings.ReplaceAll(s, ",", ",,")
}

// shellJoin renders a command line for error messages so that it can be
// pasted into a shell.
func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, s := range argv {
		q[i] = shellQuote(s)
	}
	return strings.Join(q, " ")
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=,:+@%", r)) {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}
