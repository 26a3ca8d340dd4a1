package scratchmysql

import "syscall"

// setParentDeathSignal makes the kernel kill mariadbd if the process that
// started it dies without calling Stop (a test binary killed by its
// timeout), so no orphaned servers are left behind. The data is throwaway.
func setParentDeathSignal(a *syscall.SysProcAttr) {
	a.Pdeathsig = syscall.SIGKILL
}
