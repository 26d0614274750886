//go:build !linux

package test

import "syscall"

// setParentDeathSignal has no equivalent here; the test's cleanup kills
// the child.
func setParentDeathSignal(*syscall.SysProcAttr) {}
