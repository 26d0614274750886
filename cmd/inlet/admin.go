package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/inlet-dev/inlet/migrations"
	"github.com/inlet-dev/inlet/pkg/config"
	"github.com/inlet-dev/inlet/pkg/embedpg"
	"github.com/inlet-dev/inlet/pkg/gateway"
	"github.com/inlet-dev/inlet/pkg/secret"
	"github.com/inlet-dev/inlet/pkg/store"
)

// openDB connects to the configured database: DATABASE_URL, or the
// embedded one, which it joins when a running inlet started it and starts
// for the command's duration otherwise. The returned func closes everything.
func openDB(ctx context.Context, cfg config.Config) (*sqlx.DB, func(), error) {
	dsn := cfg.DatabaseURL
	stop := func() {}
	if dsn == "" {
		dir := filepath.Join(cfg.DataDir, "postgres")
		url, err := embedpg.Attach(dir)
		switch {
		case err == nil:
			dsn = url
		case errors.Is(err, embedpg.ErrNotRunning):
			pg, err := embedpg.Start(ctx, dir, nil)
			if err != nil {
				return nil, nil, err
			}
			dsn = pg.URL()
			stop = func() { _ = pg.Stop(context.Background()) }
		default:
			return nil, nil, err
		}
	}
	db, err := store.Open(dsn)
	if err == nil {
		err = db.PingContext(ctx)
	}
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
	cfg, _, err := config.LoadCommand(config.Command{
		Name: "migrate", Usage: "inlet migrate",
		About: "Applies the database migrations that are not applied yet, and exits. inlet serve\nalso migrates at start.",
	}, args, getenv, stderr)
	if err != nil {
		return asUsage(err)
	}
	_, closeDB, err := openDB(ctx, cfg)
	if err != nil {
		return err
	}
	closeDB()
	fmt.Fprintln(stderr, "migrations applied")
	return nil
}

const tokenUsage = "inlet token create NAME | inlet token list | inlet token revoke ID"

func token(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := config.Command{
		Name: "token", Usage: tokenUsage, Args: true,
		About: "Manages the bearer tokens of the management API, directly in the database (it\n" +
			"works beside a running inlet). create prints the new token once, on stdout;\n" +
			"revoke stops a token at once, on every instance. Only hashes are stored.",
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		_, _, err := config.LoadCommand(cmd, []string{"-h"}, getenv, stderr)
		if len(args) == 0 {
			return usagef("token needs a subcommand")
		}
		return err
	}
	sub, args := args[0], args[1:]
	cfg, fs, err := config.LoadCommand(cmd, args, getenv, stderr)
	if err != nil {
		return asUsage(err)
	}
	operands := fs.Args()
	want := 1
	if sub == "list" {
		want = 0
	}
	switch {
	case sub != "create" && sub != "list" && sub != "revoke":
		return usagef("unknown token subcommand %q; usage: %s", sub, tokenUsage)
	case len(operands) < want:
		return usagef("token %s needs an argument; usage: %s", sub, tokenUsage)
	case len(operands) > want:
		return usagef("unexpected argument %q; usage: %s", operands[want], tokenUsage)
	}
	db, closeDB, err := openDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeDB()
	st := store.New(db, nil)
	ctx = store.WithActor(ctx, store.Actor{Name: "inlet token (command line)"})
	switch sub {
	case "create":
		t, plain, err := st.CreateToken(ctx, operands[0], store.OriginCLI)
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
		id, err := strconv.ParseInt(operands[0], 10, 64)
		if err != nil {
			return usagef("token id %q is not a number", operands[0])
		}
		_, err = st.RevokeToken(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no live token with id %d", id)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "revoked token %d\n", id)
	}
	return nil
}

func tokenTarget(t store.Token) string {
	return "token " + strconv.FormatInt(t.ID, 10) + " (" + t.Name + ")"
}

const secretsUsage = "inlet secrets generate-key | inlet secrets rotate-key"

// secrets manages the keys that seal secrets at rest.
func secrets(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := config.Command{
		Name: "secrets", Usage: secretsUsage, Args: true,
		About: "generate-key prints a new key for INLET_SECRET_KEY.\n\n" +
			"rotate-key seals every secret in the database (HMAC secrets, webhook keys,\n" +
			"destination secrets and header values) under the current key, while inlet runs.\n" +
			"With INLET_SECRET_KEY, put the new key first (INLET_SECRET_KEY=new,old) on every\n" +
			"instance, then run it, then drop the old key. Without INLET_SECRET_KEY, it makes\n" +
			"a new key in the data directory's key file and keeps the previous one beside it\n" +
			"until the next rotation; the running inlet picks the new key up by itself.",
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		_, _, err := config.LoadCommand(cmd, []string{"-h"}, getenv, stderr)
		if len(args) == 0 {
			return usagef("secrets needs a subcommand")
		}
		return err
	}
	sub, args := args[0], args[1:]
	cfg, fs, err := config.LoadCommand(cmd, args, getenv, stderr)
	if err != nil {
		return asUsage(err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q; usage: %s", fs.Arg(0), secretsUsage)
	}
	switch sub {
	case "generate-key":
		fmt.Fprintln(stdout, secret.GenerateKey())
		return nil
	case "rotate-key":
		return rotateKey(ctx, cfg, stderr)
	}
	return usagef("unknown secrets subcommand %q; usage: %s", sub, secretsUsage)
}

func rotateKey(ctx context.Context, cfg config.Config, stderr io.Writer) error {
	keys, err := gateway.OpenKeyring(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	ring := keys.Keyring
	if keys.Path != "" {
		// A new key seals; the file keeps the previous one beside it, for
		// what a running inlet seals before it reads the file again.
		if ring, err = secret.RotateKeyFile(keys.Path); err != nil {
			return err
		}
	}
	db, closeDB, err := openDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeDB()
	st := store.New(db, ring)
	if err := gateway.CheckKeyring(ctx, st, &gateway.Keys{Keyring: ring, Source: keys.Source}); err != nil {
		return err
	}
	n, err := st.Reseal(ctx)
	if err != nil {
		return err
	}
	actx := store.WithActor(ctx, store.Actor{Name: "inlet secrets (command line)"})
	if err := st.RecordActivity(actx, "secrets.rotate_key", "key "+ring.ID()); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "sealed %d values under key %s (%s)\n", n, ring.ID(), keys.Source)
	if keys.Path == "" {
		fmt.Fprintln(stderr, "once every instance runs with this key first, drop the old one from INLET_SECRET_KEY")
	} else {
		fmt.Fprintln(stderr, "a running inlet seals with the new key within ten seconds")
	}
	return nil
}
