package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/inlet-dev/inlet/pkg/config"
	"github.com/inlet-dev/inlet/pkg/secret"
)

// env is what a command gets from the process besides its arguments.
type env struct {
	getenv         func(string) string
	stdout, stderr io.Writer
}

// subcommand is one command of a group such as "trigger".
type subcommand struct {
	name string
	run  func(ctx context.Context, args []string, e env) error
}

// commandGroup is a command whose first operand names a subcommand.
type commandGroup struct {
	name, usage, about string
	subs               []subcommand
}

// group runs the subcommand of g that args name; without one, or with -h,
// it prints g's usage.
func (e env) group(ctx context.Context, g commandGroup, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		_, _, err := config.LoadCommand(config.Command{Name: g.name, Usage: g.usage, About: g.about + remoteAbout},
			[]string{"-h"}, e.getenv, e.stderr)
		if len(args) == 0 {
			return usagef("%s needs a subcommand; usage: %s", g.name, g.usage)
		}
		return err
	}
	for _, s := range g.subs {
		if s.name == args[0] {
			return s.run(ctx, args[1:], e)
		}
	}
	return usagef("unknown %s subcommand %q; usage: %s", g.name, args[0], g.usage)
}

// remoteAbout ends the -h text of every command that uses the API.
const remoteAbout = `

It uses the management API of a running inlet: at -url, else INLET_URL,
else the public_url of inlet's configuration, else http://127.0.0.1 at the
port of http_addr; with the token in INLET_TOKEN, else INLET_ADMIN_TOKEN,
else the file <data_dir>/admin-token. Exit status: 0 done, 1 the API
refused (its reasons on stderr), 2 usage, 3 inlet not reached.`

// remoteCmd describes a command that uses the management API.
type remoteCmd struct {
	name     string // as typed: "trigger show"
	synopsis string // "inlet trigger show REF [-json]"
	about    string
	flags    func(fs *flag.FlagSet) // the command's own flags besides -url and -json
	// minArgs and maxArgs bound the operands; maxArgs < 0 means no bound.
	minArgs, maxArgs int
}

// Timeouts of the API client: connecting, and the whole exchange.
const (
	connectTimeout = 5 * time.Second
	requestTimeout = 60 * time.Second
)

// client talks to the management API of one inlet.
type client struct {
	base   *url.URL
	token  secret.Value
	http   *http.Client
	asJSON bool
	// secrets are values given on the command line that no error output
	// may show (the token is always among them).
	secrets []string
	stdout  io.Writer
	stderr  io.Writer
}

// connect parses the flags and operands of c in args (flags may come after
// operands) and finds inlet's URL and token. Every error is a usage error.
func (e env) connect(c remoteCmd, args []string) (*client, []string, error) {
	var urlFlag string
	var asJSON bool
	cmd := config.Command{
		Name: c.name, Usage: c.synopsis, About: c.about + remoteAbout, Args: c.maxArgs != 0,
		Flags: func(fs *flag.FlagSet) {
			if c.flags != nil {
				c.flags(fs)
			}
			fs.BoolVar(&asJSON, "json", false, "print the API's data as JSON instead of a table")
			fs.StringVar(&urlFlag, "url", "", "base `URL` of inlet's management API (env INLET_URL; default: public_url, else http://127.0.0.1:<port of http_addr>)")
		},
	}
	cfg, fs, err := config.LoadCommand(cmd, operandsLast(args, cmd.Flags), e.getenv, e.stderr)
	if err != nil {
		return nil, nil, asUsage(err)
	}
	ops := fs.Args()
	switch {
	case len(ops) < c.minArgs:
		return nil, nil, usagef("%s needs more arguments; usage: %s", c.name, c.synopsis)
	case c.maxArgs >= 0 && len(ops) > c.maxArgs:
		return nil, nil, usagef("unexpected argument %q; usage: %s", ops[c.maxArgs], c.synopsis)
	}
	base, err := apiBase(cfg, urlFlag, e.getenv("INLET_URL"))
	if err != nil {
		return nil, nil, &usageError{err}
	}
	tok, err := apiToken(cfg, e.getenv("INLET_TOKEN"))
	if err != nil {
		return nil, nil, &usageError{err}
	}
	return &client{
		base:    base,
		token:   tok,
		asJSON:  asJSON,
		secrets: []string{string(tok)},
		stdout:  e.stdout,
		stderr:  e.stderr,
		http: &http.Client{
			Timeout: requestTimeout,
			Transport: &http.Transport{
				Proxy:               http.ProxyFromEnvironment,
				DialContext:         (&net.Dialer{Timeout: connectTimeout}).DialContext,
				TLSHandshakeTimeout: connectTimeout,
				IdleConnTimeout:     30 * time.Second,
			},
			// An answer is the API's own or an error; the token is not
			// sent on anywhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, ops, nil
}

// operandsLast moves the operands in args after the flags, so that flags
// may follow operands ("key add REF -label staging"): the flag package
// stops at the first operand. defineFlags tells which flags take no value;
// every other flag, the configuration's included, takes one.
func operandsLast(args []string, defineFlags func(*flag.FlagSet)) []string {
	probe := flag.NewFlagSet("", flag.ContinueOnError)
	defineFlags(probe)
	isBool := func(name string) bool {
		if name == "h" || name == "help" {
			return true
		}
		f := probe.Lookup(name)
		if f == nil {
			return false
		}
		b, ok := f.Value.(interface{ IsBoolFlag() bool })
		return ok && b.IsBoolFlag()
	}
	var flags, ops []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			ops = append(ops, args[i+1:]...)
			i = len(args)
		case len(a) > 1 && a[0] == '-':
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && !isBool(name) && i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		default:
			ops = append(ops, a)
		}
	}
	return append(append(flags, "--"), ops...)
}

// apiBase returns the base URL of the management API: flagURL, else
// envURL (INLET_URL), else the public_url of cfg, else http://127.0.0.1 at
// the port of http_addr ([::1] when inlet listens on an IPv6 address, the
// address itself when it listens on one).
func apiBase(cfg config.Config, flagURL, envURL string) (*url.URL, error) {
	raw, from := flagURL, "-url"
	if raw == "" {
		raw, from = envURL, "INLET_URL"
	}
	if raw == "" {
		raw, from = cfg.PublicURL, "public_url"
	}
	if raw == "" {
		host, port, err := net.SplitHostPort(cfg.HTTPAddr)
		if err != nil {
			return nil, fmt.Errorf("http_addr %q is not host:port", cfg.HTTPAddr)
		}
		switch addr, err := netip.ParseAddr(host); {
		case host == "" || (err == nil && addr.Is4() && addr.IsUnspecified()):
			host = "127.0.0.1"
		case err == nil && addr.IsUnspecified():
			host = "::1"
		}
		raw, from = "http://"+net.JoinHostPort(host, port), "http_addr"
	}
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The value is not echoed: it may carry credentials.
		return nil, fmt.Errorf("%s is not an http or https URL such as http://127.0.0.1:8080", from)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s must not hold credentials: the token comes from INLET_TOKEN", from)
	}
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// tokenFile is where inlet keeps the admin token it generated beside an
// embedded database (see package gateway).
func tokenFile(cfg config.Config) string { return filepath.Join(cfg.DataDir, "admin-token") }

// apiToken returns the bearer token: envToken (INLET_TOKEN), else the
// configured INLET_ADMIN_TOKEN, else the content of tokenFile. There is no
// flag: a flag's value shows in ps.
func apiToken(cfg config.Config, envToken string) (secret.Value, error) {
	if t := strings.TrimSpace(envToken); t != "" {
		return secret.Value(t), nil
	}
	if cfg.AdminToken != "" {
		return cfg.AdminToken, nil
	}
	path := tokenFile(cfg)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("no token for the management API: set INLET_TOKEN (make one with: inlet token create NAME), or run beside inlet's data directory, where %s does not exist", path)
	case err != nil:
		return "", fmt.Errorf("no token for the management API: INLET_TOKEN is not set and %s cannot be read: %w", path, errors.Unwrap(err))
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("no token for the management API: INLET_TOKEN is not set and %s is empty", path)
	}
	return secret.Value(t), nil
}

// answer is a successful answer of the API.
type answer struct {
	Status     int
	Data       json.RawMessage `json:"data"`
	NextCursor *string         `json:"next_cursor"`
}

// apiError is an answer of the API other than success. Its text is the
// problem's, with the client's secrets removed.
type apiError struct {
	Method, Path string
	Status       int
	Code         string
	Detail       string
	Fields       []fieldError
}

type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d", e.Method, e.Path, e.Status)
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, ": %s", e.Detail)
	}
	for _, f := range e.Fields {
		fmt.Fprintf(&b, "\n  %s: %s", f.Field, f.Message)
	}
	return b.String()
}

func (e *apiError) ExitCode() int { return exitFailure }

// unreachableError is a request that got no HTTP answer.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }
func (e *unreachableError) ExitCode() int { return exitUnreachable }

// maxAnswer bounds what the client reads of one answer; a page of events
// is about 8 MiB at most.
const maxAnswer = 64 << 20

// do sends a request to the API, with body encoded as JSON unless nil,
// and returns the answer. A 4xx or 5xx is an *apiError; no answer at all
// is an *unreachableError. Neither carries the token or a secret of c.
func (c *client) do(ctx context.Context, method, path string, body any) (*answer, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	u := c.base.String() + path
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+string(c.token))
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "inlet (command line)")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, c.unreachable(ctx, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxAnswer+1))
	if err != nil {
		return nil, c.unreachable(ctx, err)
	}
	if len(b) > maxAnswer {
		return nil, fmt.Errorf("%s %s: the answer exceeds %d bytes", method, path, maxAnswer)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil, c.refused(method, path, res.StatusCode, b)
	}
	a := &answer{Status: res.StatusCode}
	if len(bytes.TrimSpace(b)) == 0 {
		return a, nil
	}
	if err := json.Unmarshal(b, a); err != nil {
		return nil, fmt.Errorf("%s %s: %d, but the answer is not inlet's JSON: %w", method, path, res.StatusCode, err)
	}
	return a, nil
}

// unreachable describes a request that got no answer, without the URL's
// path or query and without the token.
func (c *client) unreachable(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := c.redact(err.Error())
	var op *net.OpError
	if !(errors.As(err, &op) && op.Op == "dial") && (errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err)) {
		msg = "no answer within " + requestTimeout.String()
	}
	return &unreachableError{fmt.Errorf("cannot reach inlet at %s (set -url or INLET_URL): %s", c.base.Redacted(), msg)}
}

// refused turns a 4xx or 5xx answer into an *apiError.
func (c *client) refused(method, path string, status int, body []byte) error {
	e := &apiError{Method: method, Path: path, Status: status}
	var p struct {
		Code   string       `json:"code"`
		Detail string       `json:"detail"`
		Errors []fieldError `json:"errors"`
	}
	if json.Unmarshal(body, &p) == nil && (p.Code != "" || p.Detail != "") {
		e.Code, e.Detail, e.Fields = p.Code, p.Detail, p.Errors
	} else {
		// Not inlet's problem document (a proxy's page, say): its first line.
		line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
		if len(line) > 200 {
			line = line[:200] + "…"
		}
		e.Detail = strings.TrimSpace(http.StatusText(status) + " " + line)
	}
	e.Detail = c.redact(e.Detail)
	for i := range e.Fields {
		e.Fields[i].Field = c.redact(e.Fields[i].Field)
		e.Fields[i].Message = c.redact(e.Fields[i].Message)
	}
	return e
}

// redact replaces every secret of c in s.
func (c *client) redact(s string) string {
	for _, v := range c.secrets {
		if v != "" {
			s = strings.ReplaceAll(s, v, "REDACTED")
		}
	}
	return s
}

// printJSON writes raw, indented, to stdout: what -json prints.
func (c *client) printJSON(raw json.RawMessage) error {
	if len(raw) == 0 {
		return nil
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return fmt.Errorf("print JSON: %w", err)
	}
	b.WriteByte('\n')
	_, err := c.stdout.Write(b.Bytes())
	return err
}
