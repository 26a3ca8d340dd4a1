//go:build !linux

package scratchmysql

import "syscall"

func setParentDeathSignal(*syscall.SysProcAttr) {}
