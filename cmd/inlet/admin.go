package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/inlet-dev/inlet/migrations"
	"github.com/inlet-dev/inlet/pkg/config"
	"github.com/inlet-dev/inlet/pkg/embedpg"
	"github.com/inlet-dev/inlet/pkg/store"
)

// openDB connects to the configured database, starting the embedded one
// when none is configured (it must not be running already: stop serve
// first, or set DATABASE_URL). The returned func closes everything.
func openDB(ctx context.Context, cfg config.Config) (*sqlx.DB, func(), error) {
	dsn := cfg.DatabaseURL
	stop := func() {}
	if dsn == "" {
		pg, err := embedpg.Start(ctx, filepath.Join(cfg.DataDir, "postgres"), nil)
		if errors.Is(err, embedpg.ErrRunning) {
			return nil, nil, errors.New("the embedded PostgreSQL is in use by a running inlet: stop it first, or set DATABASE_URL")
		}
		if err != nil {
			return nil, nil, err
		}
		dsn = pg.URL()
		stop = func() { _ = pg.Stop(context.Background()) }
	}
	db, err := sqlx.ConnectContext(ctx, "postgres", dsn)
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("connect to database: %w", err)
	}
	if _, err := migrations.Up(ctx, db.DB); err != nil {
		db.Close()
		stop()
		return nil, nil, err
	}
	return db, func() { db.Close(); stop() }, nil
}

func migrate(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := config.Load(args, getenv)
	if err != nil {
		return err
	}
	_, closeDB, err := openDB(ctx, cfg)
	if err != nil {
		return err
	}
	closeDB()
	fmt.Fprintln(stderr, "migrations applied")
	return nil
}

const tokenUsage = "usage: inlet token create NAME | inlet token list | inlet token revoke ID  [config flags]"

func token(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, tokenUsage)
		return errors.New("token needs a subcommand")
	}
	sub, args := args[0], args[1:]
	var operand string
	if sub != "list" {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			fmt.Fprintln(stderr, tokenUsage)
			return fmt.Errorf("token %s needs an argument", sub)
		}
		operand, args = args[0], args[1:]
	}
	cfg, err := config.Load(args, getenv)
	if err != nil {
		return err
	}
	db, closeDB, err := openDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeDB()
	st := store.New(db)
	switch sub {
	case "create":
		t, plain, err := st.CreateToken(ctx, operand)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "created token %d (%s); it is shown only now:\n", t.ID, t.Name)
		fmt.Fprintln(stdout, string(plain))
	case "list":
		ts, err := st.ListTokens(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tCREATED\tREVOKED")
		for _, t := range ts {
			revoked := "-"
			if t.RevokedAt != nil {
				revoked = t.RevokedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", t.ID, t.Name, t.CreatedAt.UTC().Format(time.RFC3339), revoked)
		}
		return tw.Flush()
	case "revoke":
		id, err := strconv.ParseInt(operand, 10, 64)
		if err != nil {
			return fmt.Errorf("token id %q is not a number", operand)
		}
		if err := st.RevokeToken(ctx, id); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no live token with id %d", id)
			}
			return err
		}
		fmt.Fprintf(stderr, "revoked token %d\n", id)
	default:
		fmt.Fprintln(stderr, tokenUsage)
		return fmt.Errorf("unknown token subcommand %q", sub)
	}
	return nil
}

// tail prints every event published from now on (or, with -all, the whole
// stream), one JSON object a line, until interrupted.
func tail(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	all := false
	var rest []string
	for _, a := range args {
		if a == "-all" || a == "--all" {
			all = true
			continue
		}
		rest = append(rest, a)
	}
	cfg, err := config.Load(rest, getenv)
	if err != nil {
		return err
	}
	url := cfg.NATSURL
	if url == "" {
		b, err := os.ReadFile(filepath.Join(cfg.DataDir, "nats.url"))
		if err != nil {
			return errors.New("no NATS_URL, and no embedded NATS found: start inlet (make run) first")
		}
		url = strings.TrimSpace(string(b))
	}
	nc, err := nats.Connect(url, nats.Name("inlet tail"))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", url, err)
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
	fmt.Fprintf(stderr, "waiting for events on stream %s at %s (Ctrl-C to stop)\n", cfg.Stream, url)
	out := bufio.NewWriter(stdout)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		line, _ := json.Marshal(map[string]any{"subject": m.Subject(), "headers": m.Headers(), "event": json.RawMessage(m.Data())})
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
