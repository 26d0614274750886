package main

import (
	"errors"
	"flag"
	"fmt"
)

// Exit statuses of the inlet command, documented in usage and README.md.
const (
	exitOK          = 0
	exitFailure     = 1 // the API refused, or the command failed
	exitUsage       = 2 // the command could not be run as given
	exitUnreachable = 3 // no answer from inlet's management API
)

// usageError is a command that cannot be run as given: an unknown command,
// a bad flag or argument, an invalid configuration, no API token.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }
func (e *usageError) ExitCode() int { return exitUsage }

// usagef returns a usageError with a formatted message.
func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// asUsage marks err, from parsing flags or loading the configuration, as a
// usage error; flag.ErrHelp (the usage was asked for and printed) and nil
// stay as they are.
func asUsage(err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &usageError{err}
}

// exitCode is the process's exit status for run's error.
func exitCode(err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var c interface{ ExitCode() int }
	if errors.As(err, &c) {
		return c.ExitCode()
	}
	return exitFailure
}
