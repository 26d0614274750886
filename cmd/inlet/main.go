// Command inlet is the inbound webhook gateway. Subcommands: serve (the
// default), migrate, token and tail; `inlet help` lists them.
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
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "inlet:", err)
		}
		stop()
		os.Exit(2)
	}
}

const usage = `usage: inlet [command] [flags]

commands:
  serve     run the gateway (the default)
  migrate   apply database migrations and exit
  token     manage API tokens: token create NAME | token list | token revoke ID
  secrets   manage the keys that seal secrets: secrets generate-key | secrets rotate-key
  tail      print events from the stream as they are published
  help      show this text

'inlet COMMAND -h' describes a command and its flags; every command reads
inlet's configuration, which 'inlet serve -h' lists.
`

// run dispatches to a subcommand; ctx is cancelled by SIGINT or SIGTERM.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
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
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
