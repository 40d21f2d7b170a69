package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"keel/bootloader"
	"keel/bootloader/espdir"
	"keel/image/disk"
	"keel/image/verdict"
)

// bootInfo is what the boot loader told this boot: its loader (named by
// keel.loader= on the command line; systemd-boot without one), the slot,
// and on a trial boot the entry that counted it. efivarfs is mounted
// first when the machine booted through EFI; a failure can come before
// its module is loaded, and then what only EFI variables say is unknown.
func bootInfo(con *console) (bootloader.Manager, bootloader.Boot) {
	cmdline, _ := os.ReadFile("/proc/cmdline")
	name := bootloader.NameFromCmdline(string(cmdline))
	loader, err := bootloader.ManagerFor(name)
	if err != nil {
		con.logf("WARNING: keel.loader: %v", err)
		return nil, bootloader.Boot{}
	}
	env := bootloader.BootEnv{Cmdline: string(cmdline)}
	if _, err := os.Stat("/sys/firmware"); err != nil {
		// A failure before /sys was mounted.
		_, _ = mountAPI(mountSys)
	}
	if fi, err := os.Stat(efivarsDir); err == nil && fi.IsDir() {
		if _, err := mountAPI(mountEFIVars); err != nil {
			con.logf("WARNING: %v; is this a trial boot? not known", err)
		} else {
			env.EFIVars = efivarsDir
		}
	}
	b, err := loader.Booted(env)
	if err != nil {
		con.logf("WARNING: %s: %v", name, err)
	}
	return loader, b
}

// recordFatal records a failed trial boot's verdict, as far as it can: in
// the initrd the disk or vfat may be what is missing.
func recordFatal(con *console, loader bootloader.Manager, boot bootloader.Boot, stage string, failure error) {
	esp, err := mountBootESP(boot)
	if err != nil {
		con.logf("verdict not recorded: %v", err)
		return
	}
	defer func() {
		unix.Sync()
		_ = unix.Unmount(espdir.MountPoint, 0)
	}()
	r, err := recordVerdictOn(esp, loader, *boot.Trial, verdict.Bad, stage, failure.Error())
	if err != nil {
		con.logf("verdict not recorded: %v", err)
		return
	}
	con.logf("verdict recorded in %s", verdict.Path(r.Slot))
}

// mountBootESP mounts the ESP this boot came from: in the rootfs, the one
// on the disk of /; in the initrd, where / is on no disk, the partition the
// loader names (systemd-boot's LoaderDevicePartUUID), else the one
// labelled esp.
func mountBootESP(boot bootloader.Boot) (bootloader.DirESP, error) {
	esp, err := mountESP()
	if err == nil {
		return esp, nil
	}
	spec := devSpec{"PARTLABEL", disk.LabelESP}
	if boot.ESPPartUUID != "" {
		spec = devSpec{"PARTUUID", boot.ESPPartUUID}
	}
	dev, derr := waitForDevice(sysClassBlock, spec, "", time.Second)
	if derr != nil {
		return nil, fmt.Errorf("the ESP the loader started from: %w", errors.Join(err, derr))
	}
	if err := espdir.Mount("/dev/"+dev.Name, espdir.MountPoint); err != nil {
		return nil, err
	}
	return espdir.Dir{Root: espdir.MountPoint}, nil
}
