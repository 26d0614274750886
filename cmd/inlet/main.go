// Command inlet is the inbound webhook gateway. Subcommands: serve (the
// default), migrate, token, secrets and tail work on inlet's own database
// and stream; trigger, key, events, replay and activity are a client of
// the management API of a running inlet. `inlet help` lists them and the
// exit statuses.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "inlet:", err)
	}
	stop()
	os.Exit(exitCode(err))
}

const usage = `usage: inlet [command] [flags]

commands:
  serve     run the gateway (the default)
  migrate   apply database migrations and exit
  token     manage API tokens: token create NAME | token list | token revoke ID
  secrets   manage the keys that seal secrets: secrets generate-key | secrets rotate-key
  tail      print events from the stream as they are published
  help      show this text

commands that use the management API of a running inlet:
  trigger   trigger list | trigger show REF | trigger enable REF | trigger disable REF
            | trigger regenerate REF [-grace DURATION] | trigger set REF KEY=VALUE...
  key       key list REF | key add REF -label LABEL [-expires DURATION] | key revoke REF ID
  events    recent events, newest first: events [-trigger REF] [-limit N] [-follow]
  replay    replay EVENT_ID | replay -trigger REF -since T -until T [-limit N]
  activity  management changes, newest first: activity [-limit N]

They reach inlet at -url, else INLET_URL, else the public_url of inlet's
configuration, else http://127.0.0.1 at the port of http_addr. The token is
INLET_TOKEN, else INLET_ADMIN_TOKEN, else the file <data_dir>/admin-token
that inlet keeps beside an embedded database. -json prints the API's data
instead of a table.

'inlet COMMAND -h' describes a command and its flags; every command reads
inlet's configuration, which 'inlet serve -h' lists.

exit status:
  0  success
  1  failure: the API answered with an error (4xx or 5xx; its detail and every
     invalid field are printed on stderr), or the command failed
  2  usage: unknown command, bad flag or argument, invalid configuration, or
     no token for the API
  3  inlet not reached: no HTTP answer from its URL (connection refused, name
     not resolved, TLS failure, no connection within 5s, the connection lost,
     or no answer within 60s); in the last two cases a change may have been
     made
`

// run dispatches to a subcommand; ctx is cancelled by SIGINT or SIGTERM.
// The error's exitCode is the process's exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	e := env{getenv: getenv, stdout: stdout, stderr: stderr}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, args, getenv, stderr)
	case "token":
		return token(ctx, args, getenv, stdout, stderr)
	case "secrets":
		return secrets(ctx, args, getenv, stdout, stderr)
	case "tail":
		return tail(ctx, args, getenv, stdout, stderr)
	case "trigger":
		return e.group(ctx, triggerGroup, args)
	case "key":
		return e.group(ctx, keyGroup, args)
	case "events":
		return eventsCmd(ctx, args, e)
	case "replay":
		return replayCmd(ctx, args, e)
	case "activity":
		return activityCmd(ctx, args, e)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usagef("unknown command %q", cmd)
}
