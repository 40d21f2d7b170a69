//go:build !linux

package qemu

import (
	"os"
	"syscall"
)

var sigTerm = os.Interrupt

func sysProcAttr() *syscall.SysProcAttr { return nil }
