package qemu

import "syscall"

const sigTerm = syscall.SIGTERM

// sysProcAttr makes the kernel kill QEMU if keel dies first (a test binary
// killed by its timeout, say), so no VM is left running unattended.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
