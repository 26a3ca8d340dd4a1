//go:build !linux

package scratchpg

import "syscall"

func setParentDeathSignal(*syscall.SysProcAttr) {}
