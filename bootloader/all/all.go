// Package all registers every boot loader keel has, for the programs that
// look one up by name (keel, keelctl, keel-init): importing it is what
// makes bootloader.Lookup know them.
package all

import (
	_ "keel/bootloader/grub"        // GRUB, UEFI and BIOS
	_ "keel/bootloader/systemdboot" // systemd-boot
	_ "keel/bootloader/uboot"       // U-Boot (aarch64)
)
