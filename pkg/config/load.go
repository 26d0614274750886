package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/inlet-dev/inlet/pkg/secret"
)

// setting ties one Config field to the names it is read under.
type setting struct {
	key   string // YAML key; "" when files never set it
	env   string // environment variable
	flag  string // command-line flag; "" when there is none
	usage string
	field func(c *Config) any // pointer to the field
}

// settings lists every setting in the order usage shows them.
func settings() []setting {
	return []setting{
		{"http_addr", "INLET_HTTP_ADDR", "http-addr", "address the HTTP server listens on",
			func(c *Config) any { return &c.HTTPAddr }},
		{"public_url", "INLET_PUBLIC_URL", "public-url", "base of webhook URLs; empty derives http://localhost<port> from the listen address",
			func(c *Config) any { return &c.PublicURL }},
		{"packs_dir", "INLET_PACKS_DIR", "packs-dir", "directory of trigger packs",
			func(c *Config) any { return &c.PacksDir }},
		{"data_dir", "INLET_DATA_DIR", "data-dir", "data directory of the embedded PostgreSQL and NATS",
			func(c *Config) any { return &c.DataDir }},
		{"trusted_proxies", "INLET_TRUSTED_PROXIES", "trusted-proxies", "comma-separated CIDRs whose X-Forwarded-For is believed",
			func(c *Config) any { return &c.TrustedProxies }},
		{"destination_allow_cidrs", "INLET_DESTINATION_ALLOW_CIDRS", "", "comma-separated CIDRs destinations may reach although loopback, private or link-local",
			func(c *Config) any { return &c.DestinationAllowCIDRs }},
		{"database_url", "DATABASE_URL", "database-url", "external PostgreSQL URL; empty runs an embedded PostgreSQL",
			func(c *Config) any { return &c.DatabaseURL }},
		{"nats_url", "NATS_URL", "nats-url", "external NATS URL; empty runs an embedded NATS server",
			func(c *Config) any { return &c.NATSURL }},
		{"", "INLET_ADMIN_TOKEN", "", "bearer token of the management API (environment only); empty generates one",
			func(c *Config) any { return &c.AdminToken }},
		{"", "INLET_SECRET_KEY", "", "keys sealing secrets at rest, comma-separated, the first sealing (environment only); empty uses <data_dir>/secret.key",
			func(c *Config) any { return &c.SecretKey }},
		{"stream", "INLET_STREAM", "", "JetStream stream events are published to",
			func(c *Config) any { return &c.Stream }},
		{"subject_prefix", "INLET_SUBJECT_PREFIX", "", "prefix of the NATS subject of every event",
			func(c *Config) any { return &c.SubjectPrefix }},
		{"stream_replicas", "INLET_STREAM_REPLICAS", "", "replicas of the stream when inlet creates it, 1 to 5",
			func(c *Config) any { return &c.StreamReplicas }},
		{"nats_max_payload", "INLET_NATS_MAX_PAYLOAD", "", "largest message of the embedded NATS server, in bytes",
			func(c *Config) any { return &c.NATSMaxPayload }},
		{"ip_rate_limit", "INLET_IP_RATE_LIMIT", "", "receiver requests per minute per source IP; 0 is off",
			func(c *Config) any { return &c.IPRateLimit }},
		{"unknown_key_limit", "INLET_UNKNOWN_KEY_LIMIT", "", "unknown or revoked key lookups per minute per source IP before 429; 0 is off",
			func(c *Config) any { return &c.UnknownKeyLimit }},
		{"write_queue", "INLET_WRITE_QUEUE", "", "length of the write queue; when full the receiver answers 503",
			func(c *Config) any { return &c.WriteQueue }},
		{"audit_flood_rate", "INLET_AUDIT_FLOOD_RATE", "", "identical rejections a second from one source that each get an audit row; more are counted into one row a second",
			func(c *Config) any { return &c.AuditFloodRate }},
		{"log_format", "INLET_LOG_FORMAT", "", "log format: json or text",
			func(c *Config) any { return &c.LogFormat }},
		{"log_level", "INLET_LOG_LEVEL", "", "log level: debug, info, warn or error",
			func(c *Config) any { return &c.LogLevel }},
		{"shutdown_timeout", "INLET_SHUTDOWN_TIMEOUT", "", "time allowed for a graceful stop",
			func(c *Config) any { return &c.ShutdownTimeout }},
		{"read_header_timeout", "INLET_READ_HEADER_TIMEOUT", "", "HTTP read header timeout",
			func(c *Config) any { return &c.ReadHeaderTimeout }},
		{"read_timeout", "INLET_READ_TIMEOUT", "", "HTTP read timeout",
			func(c *Config) any { return &c.ReadTimeout }},
		{"write_timeout", "INLET_WRITE_TIMEOUT", "", "HTTP write timeout",
			func(c *Config) any { return &c.WriteTimeout }},
		{"idle_timeout", "INLET_IDLE_TIMEOUT", "", "HTTP keep-alive idle timeout",
			func(c *Config) any { return &c.IdleTimeout }},
		{"db_max_conns", "INLET_DB_MAX_CONNS", "", "maximum PostgreSQL connections",
			func(c *Config) any { return &c.DBMaxConns }},
		{"pprof_addr", "INLET_PPROF_ADDR", "", "serve net/http/pprof on this address (empty: off)",
			func(c *Config) any { return &c.PprofAddr }},
		{"event_retention", "INLET_EVENT_RETENTION", "", "how long events are kept, e.g. 90d or 720h; 0 keeps them forever",
			func(c *Config) any { return &c.EventRetention }},
		{"audit_retention", "INLET_AUDIT_RETENTION", "", "how long audit records are kept; 0 keeps them forever",
			func(c *Config) any { return &c.AuditRetention }},
		{"delivery_retention", "INLET_DELIVERY_RETENTION", "", "how long finished deliveries are kept; 0 keeps them forever",
			func(c *Config) any { return &c.DeliveryRetention }},
		{"retention_interval", "INLET_RETENTION_INTERVAL", "", "time between two pruning passes",
			func(c *Config) any { return &c.RetentionInterval }},
	}
}

// set parses v into the field that ptr points at.
func set(ptr any, v string) error {
	switch p := ptr.(type) {
	case *string:
		*p = v
	case *secret.Value:
		*p = secret.Value(v)
	case *int:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
		*p = n
	case *time.Duration:
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q is not a duration such as \"30s\"", v)
		}
		*p = d
	case *Retention:
		r, err := ParseRetention(v)
		if err != nil {
			return err
		}
		*p = r
	case *[]string:
		*p = splitList(v)
	default:
		return fmt.Errorf("unsupported setting type %T", ptr)
	}
	return nil
}

// show formats the field that ptr points at as set would read it.
func show(ptr any) string {
	switch p := ptr.(type) {
	case *string:
		return *p
	case *secret.Value:
		return p.String()
	case *int:
		return strconv.Itoa(*p)
	case *time.Duration:
		return p.String()
	case *Retention:
		return p.String()
	case *[]string:
		return strings.Join(*p, ",")
	}
	return ""
}

// splitList splits a comma-separated list, dropping blanks around and
// between items.
func splitList(v string) []string {
	var items []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

// Load returns the validated Config for one process. It starts from Default,
// then applies the YAML file, then the environment read through getenv, then
// the flags in args that were actually set, so a flag left at its default
// never overrides the environment.
//
// The file is the one named by the -config flag, else by INLET_CONFIG, else
// DefaultFile if it exists; a named file that is missing is an error, and
// -config="" reads no file at all. Unknown keys in the file are errors
// naming the key. getenv returns "" for an unset variable, so an empty value
// in the environment leaves the setting alone; getenv may be nil, meaning an
// empty environment. args holds the flags only, without the program name or
// a subcommand.
//
// For -h or -help Load prints usage to standard error and returns
// flag.ErrHelp. Every other problem comes back as an error without being
// printed; problems with environment values or settings are all reported
// together.
func Load(args []string, getenv func(string) string) (Config, error) {
	return LoadServe(args, getenv, os.Stderr)
}

// LoadServe is Load writing the usage that -h asks for to usageOut.
func LoadServe(args []string, getenv func(string) string, usageOut io.Writer) (Config, error) {
	c, _, err := load(nil, args, getenv, usageOut)
	return c, err
}

// Command is a subcommand other than serve, for LoadCommand: its own flags
// and what its usage says.
type Command struct {
	Name  string // as typed: "tail"
	Usage string // its synopsis: "inlet tail [-all]"
	About string // a few lines on what it does
	// Flags adds the command's own flags; the configuration's flags are
	// added after them, accepted but documented by 'inlet serve -h' only.
	Flags func(*flag.FlagSet)
	// Args, when set, allows operands after the flags: the FlagSet's Args.
	Args bool
}

// LoadCommand is Load for cmd: it parses cmd's flags as well, and -h
// prints cmd's usage (to usageOut) rather than serve's. It returns the
// parsed FlagSet, whose Args are cmd's operands.
func LoadCommand(cmd Command, args []string, getenv func(string) string, usageOut io.Writer) (Config, *flag.FlagSet, error) {
	return load(&cmd, args, getenv, usageOut)
}

// load is Load with the usage output given, for cmd (nil: serve).
func load(cmd *Command, args []string, getenv func(string) string, usageOut io.Writer) (Config, *flag.FlagSet, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	all := settings()
	d := Default()

	name := "inlet"
	if cmd != nil {
		name = "inlet " + cmd.Name
	}
	flags := flag.NewFlagSet(name, flag.ContinueOnError)
	// Errors are returned to the caller, who reports them; only an asked-for
	// usage is printed, below.
	flags.SetOutput(io.Discard)
	flags.Usage = func() {}
	own := map[string]bool{}
	if cmd != nil && cmd.Flags != nil {
		cmd.Flags(flags)
		flags.VisitAll(func(f *flag.Flag) { own[f.Name] = true })
	}
	flags.String("config", "", "YAML configuration `file` (env INLET_CONFIG; default "+DefaultFile+" if present)")
	for _, s := range all {
		if s.flag != "" {
			flags.String(s.flag, show(s.field(&d)), s.usage+" (env "+s.env+")")
		}
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if cmd != nil {
				printCommandUsage(usageOut, flags, cmd, own)
			} else {
				printUsage(usageOut, flags, all)
			}
		}
		return Config{}, flags, err
	}
	if flags.NArg() > 0 && (cmd == nil || !cmd.Args) {
		return Config{}, flags, fmt.Errorf("unexpected argument %q", flags.Arg(0))
	}

	c := Default()
	path, explicit := DefaultFile, false
	if v := getenv("INLET_CONFIG"); v != "" {
		path, explicit = v, true
	}
	flags.Visit(func(f *flag.Flag) {
		if f.Name == "config" {
			path, explicit = f.Value.String(), true
		}
	})
	if path != "" {
		if err := readFile(path, &c); err != nil {
			if errors.Is(err, fs.ErrNotExist) && !explicit {
				// The default file is optional.
				err = nil
			} else {
				return Config{}, flags, fmt.Errorf("config file %s: %w", path, err)
			}
		}
	}

	var errs []error
	for _, s := range all {
		if v := getenv(s.env); v != "" {
			if err := set(s.field(&c), v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", s.env, err))
			}
		}
	}
	byFlag := make(map[string]setting)
	for _, s := range all {
		if s.flag != "" {
			byFlag[s.flag] = s
		}
	}
	flags.Visit(func(f *flag.Flag) {
		s, ok := byFlag[f.Name]
		if !ok {
			return
		}
		if err := set(s.field(&c), f.Value.String()); err != nil {
			errs = append(errs, fmt.Errorf("flag -%s: %w", f.Name, err))
		}
	})
	if len(errs) > 0 {
		return Config{}, flags, errors.Join(errs...)
	}

	// An empty list from any source means none; keep one spelling of it.
	if len(c.TrustedProxies) == 0 {
		c.TrustedProxies = nil
	}
	if len(c.DestinationAllowCIDRs) == 0 {
		c.DestinationAllowCIDRs = nil
	}
	if err := c.Validate(); err != nil {
		return Config{}, flags, err
	}
	return c, flags, nil
}

// readFile applies the YAML settings in the file at path to c.
func readFile(path string, c *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			// An empty file, or one of comments only, sets nothing.
			return nil
		}
		return err
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			return err
		}
		return fmt.Errorf("line %d: only one YAML document is allowed", next.Line)
	}

	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want a mapping of settings", root.Line)
	}

	// Check keys here rather than with KnownFields so that every unknown key
	// is reported, and admin_token gets a pointer to the right place.
	known := make(map[string]bool)
	for _, s := range settings() {
		if s.key != "" {
			known[s.key] = true
		}
	}
	var errs []error
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		switch {
		case k.Value == "admin_token":
			errs = append(errs, fmt.Errorf("line %d: admin_token is never read from a file; set INLET_ADMIN_TOKEN", k.Line))
		case !known[k.Value]:
			errs = append(errs, fmt.Errorf("line %d: unknown key %q", k.Line, k.Value))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return root.Decode(c)
}

// printCommandUsage writes cmd's synopsis, what it does and its own flags.
func printCommandUsage(w io.Writer, flags *flag.FlagSet, cmd *Command, own map[string]bool) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", cmd.Usage, strings.TrimSpace(cmd.About))
	if len(own) > 0 {
		fmt.Fprintln(w, "\nFlags:")
		flags.VisitAll(func(f *flag.Flag) {
			if !own[f.Name] {
				return
			}
			kind, usage := flag.UnquoteUsage(f)
			line := "  -" + f.Name
			if kind != "" {
				line += " " + kind
			}
			fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
			if f.DefValue != "" && f.DefValue != "false" {
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(w)
		})
	}
	fmt.Fprintln(w, "\nIt reads inlet's configuration like inlet serve: configs/inlet.yaml, the\n"+
		"environment (INLET_*, DATABASE_URL, NATS_URL) and serve's flags; see 'inlet serve -h'.")
}

// printUsage writes the flags and the environment variables to w.
func printUsage(w io.Writer, flags *flag.FlagSet, all []setting) {
	fmt.Fprintln(w, "Usage of inlet:")
	flags.SetOutput(w)
	flags.PrintDefaults()
	flags.SetOutput(io.Discard)
	d := Default()
	fmt.Fprintln(w, "\nEnvironment (overrides the file; flags override it):")
	for _, s := range all {
		fmt.Fprintf(w, "  %s=%s\n    \t%s\n", s.env, show(s.field(&d)), s.usage)
	}
}
