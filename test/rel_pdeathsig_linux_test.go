package test

import "syscall"

// setParentDeathSignal makes the kernel kill a child inlet if the test
// binary dies without cleaning up.
func setParentDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
