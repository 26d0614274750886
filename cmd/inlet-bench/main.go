// Command inlet-bench measures inlet under load. Its subcommands are:
//
//	run       start inlet, a bare Echo baseline and a load generator (wrk
//	          with bench/wrk/signed.lua, or the load command), drive signed
//	          webhooks through the whole pipeline at several connection
//	          counts for several rounds, check that every 200 has its event
//	          row and stream message, measure again with a destination
//	          forwarding every event to the sink, and print and save the
//	          results
//	baseline  serve a bare Echo v4 handler that answers 200 without reading
//	          the body
//	sink      serve the destination's receiver: answer 204 to every POST,
//	          counting them
//	retention fill inlet's audit table with millions of old records and
//	          measure the receiver under wrk with and without the pruner
//	          deleting them, then a partition drop against batch deletes
//	load      send signed webhooks over N keep-alive connections, closed
//	          loop or at a fixed rate, and print the counts and latency
//	          percentiles as JSON
//
// `make bench` builds inlet and this command and calls `inlet-bench run`;
// bench/README.md explains what it measures.
// The benchmark is not a test: nothing in `make test` times anything.
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
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "inlet-bench:", err)
		}
		stop()
		os.Exit(1)
	}
}

const usage = `usage: inlet-bench command [flags]

commands:
  run       the whole benchmark (what make bench runs)
  baseline  a bare Echo server, the yardstick of each round
  sink      the receiver of the destination inlet forwards to (run -destination)
  load      the Go load generator (run -load go)
  retention the receiver while the pruner deletes millions of old rows

'inlet-bench command -h' lists a command's flags.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command")
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "run":
		return runBench(ctx, args, stdout, stderr)
	case "baseline":
		return serveBaseline(ctx, args, stdout, stderr)
	case "sink":
		return serveSink(ctx, args, stdout, stderr)
	case "load":
		return runLoad(ctx, args, stdout, stderr)
	case "retention":
		return runRetentionBench(ctx, args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
