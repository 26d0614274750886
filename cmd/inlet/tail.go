package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/inlet-dev/inlet/pkg/config"
	"github.com/inlet-dev/inlet/pkg/embednats"
)

// tail prints every event published from now on (or, with -all, the whole
// stream), one JSON object a line, until interrupted.
func tail(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	all := false
	cfg, _, err := config.LoadCommand(config.Command{
		Name: "tail", Usage: "inlet tail [-all]",
		About: "Prints every event as inlet publishes it to NATS JetStream, one JSON object a\n" +
			"line: {subject, headers, event}. It uses NATS_URL, or else the embedded NATS server\n" +
			"of a running inlet, found through <data_dir>/nats.url and its token\n" +
			"<data_dir>/nats.token; when inlet restarts it waits and follows the new server.",
		Flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&all, "all", false, "print the whole stream first, then new events")
		},
	}, args, getenv, stderr)
	if err != nil {
		return asUsage(err)
	}
	opts := []nats.Option{
		nats.Name("inlet tail"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(*nats.Conn, error) {
			fmt.Fprintln(stderr, "lost NATS; waiting for it to come back")
		}),
	}
	connected := (*nats.Conn).ConnectedUrlRedacted
	url := cfg.NATSURL
	if url == "" {
		// The embedded server moves to a new port at each start: every
		// (re)connection reads where it is now.
		d := &embeddedDialer{dir: cfg.DataDir, Dialer: net.Dialer{Timeout: 2 * time.Second}}
		if url, err = d.url(); err != nil {
			return errors.New("no NATS_URL, and no embedded NATS found: start inlet (make run) first")
		}
		opts = append(opts, nats.SetCustomDialer(d), nats.TokenHandler(d.token))
		// nats.go still names the server it first connected to.
		connected = func(*nats.Conn) string { return d.connected() }
	}
	opts = append(opts, nats.ReconnectHandler(func(nc *nats.Conn) {
		fmt.Fprintf(stderr, "reconnected to %s\n", connected(nc))
	}))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	policy := jetstream.DeliverNewPolicy
	if all {
		policy = jetstream.DeliverAllPolicy
	}
	cons, err := js.OrderedConsumer(ctx, cfg.Stream, jetstream.OrderedConsumerConfig{DeliverPolicy: policy})
	if err != nil {
		return fmt.Errorf("stream %s: %w", cfg.Stream, err)
	}
	fmt.Fprintf(stderr, "waiting for events on stream %s (Ctrl-C to stop)\n", cfg.Stream)
	out := bufio.NewWriter(stdout)
	var mu sync.Mutex
	cc, err := cons.Consume(func(m jetstream.Msg) {
		line, _ := json.Marshal(map[string]any{"subject": m.Subject(), "headers": m.Headers(), "event": json.RawMessage(m.Data())})
		mu.Lock()
		defer mu.Unlock()
		out.Write(line)
		out.WriteByte('\n')
		out.Flush()
	})
	if err != nil {
		return err
	}
	defer cc.Stop()
	<-ctx.Done()
	return nil
}

// embeddedDialer connects to the embedded NATS server of the inlet whose
// data directory is dir, wherever that server listens now.
type embeddedDialer struct {
	dir string
	net.Dialer

	mu     sync.Mutex
	dialed string // the address of the last connection made
}

func (d *embeddedDialer) url() (string, error) {
	b, err := os.ReadFile(filepath.Join(d.dir, embednats.URLFile))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// Dial implements nats.CustomDialer: it ignores the address nats.go kept
// from the last connection and dials the one the data directory names.
func (d *embeddedDialer) Dial(network, address string) (net.Conn, error) {
	if url, err := d.url(); err == nil {
		address = strings.TrimPrefix(url, "nats://")
	}
	conn, err := d.Dialer.Dial(network, address)
	if err == nil {
		d.mu.Lock()
		d.dialed = address
		d.mu.Unlock()
	}
	return conn, err
}

// connected returns the URL of the server last dialed.
func (d *embeddedDialer) connected() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return "nats://" + d.dialed
}

// token reads the server's token at each connection.
func (d *embeddedDialer) token() string {
	b, err := os.ReadFile(filepath.Join(d.dir, embednats.TokenFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
