package main

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel send the child SIGTERM if the benchmark
// dies without stopping it.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
