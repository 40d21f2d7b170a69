package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"keel/bootloader"
	"keel/bootloader/espdir"
	"keel/bootloader/systemdboot"
	"keel/image/verdict"
)

// loaderDevicePartUUIDVar is systemd-boot's variable naming the partition
// GUID of the ESP it was started from.
const loaderDevicePartUUIDVar = "LoaderDevicePartUUID-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

// trialCountPath returns LoaderBootCountPath: the entry file systemd-boot
// counted this boot with, "" when the boot is not a trial or that cannot
// be told (no EFI, or efivarfs not available: its module is in the
// profile's list and an early failure may come before it is loaded).
func trialCountPath(con *console) string {
	if _, err := os.Stat("/sys/firmware"); err != nil {
		// A failure before /sys was mounted.
		if _, err := mountAPI(mountSys); err != nil {
			return ""
		}
	}
	if fi, err := os.Stat(efivarsDir); err != nil || !fi.IsDir() {
		return ""
	}
	if _, err := mountAPI(mountEFIVars); err != nil {
		con.logf("WARNING: %v; is this a trial boot? not known", err)
		return ""
	}
	p, err := systemdboot.ReadEFIStringVar(efivarsDir, loaderBootCountPathVar)
	if err != nil {
		con.logf("WARNING: %v", err)
		return ""
	}
	return p
}

// recordFatal records a failed trial boot's verdict, as far as it can: in
// the initrd the disk or vfat may be what is missing.
func recordFatal(con *console, countPath, stage string, failure error) {
	esp, err := mountBootESP()
	if err != nil {
		con.logf("verdict not recorded: %v", err)
		return
	}
	defer func() {
		unix.Sync()
		_ = unix.Unmount(espdir.MountPoint, 0)
	}()
	r, err := recordVerdictOn(esp, countPath, verdict.Bad, stage, failure.Error())
	if err != nil {
		con.logf("verdict not recorded: %v", err)
		return
	}
	con.logf("verdict recorded in %s", verdict.Path(r.Slot))
}

// mountBootESP mounts the ESP this boot came from: in the rootfs, the one
// on the disk of /; in the initrd, where / is on no disk, the partition
// systemd-boot names in LoaderDevicePartUUID.
func mountBootESP() (bootloader.DirESP, error) {
	esp, err := mountESP()
	if err == nil {
		return esp, nil
	}
	uuid, uerr := systemdboot.ReadEFIStringVar(efivarsDir, loaderDevicePartUUIDVar)
	if uerr != nil || uuid == "" {
		return nil, errors.Join(err, uerr)
	}
	dev, derr := waitForDevice(sysClassBlock, devSpec{"PARTUUID", strings.ToLower(uuid)}, "", time.Second)
	if derr != nil {
		return nil, fmt.Errorf("the ESP the loader started from: %w", derr)
	}
	if err := espdir.Mount("/dev/"+dev.Name, espdir.MountPoint); err != nil {
		return nil, err
	}
	return espdir.Dir{Root: espdir.MountPoint}, nil
}
