//go:build !linux

package embedpg

import (
	"context"
	"log/slog"
	"syscall"
)

// setDeathSignal does nothing: only Linux has a parent-death signal.
func setDeathSignal(*syscall.SysProcAttr, syscall.Signal) {}

// clearStalePID leaves postmaster.pid to postgres, which removes it when
// its pid is dead; without /proc a reused pid cannot be told apart.
func clearStalePID(context.Context, string, *slog.Logger) error { return nil }

// running reports whether pid is alive; without /proc it cannot tell
// whose process it is.
func running(pid int, _ string) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }
