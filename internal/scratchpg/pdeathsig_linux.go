package scratchpg

import "syscall"

// setParentDeathSignal makes the kernel send SIGQUIT (PostgreSQL's
// "immediate shutdown") to postgres if the process that started it dies
// without calling Stop, e.g. a test binary killed by its timeout, so no
// orphaned servers are left behind.
func setParentDeathSignal(attr *syscall.SysProcAttr) {
	attr.Pdeathsig = syscall.SIGQUIT
}
