package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v, want nil", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(c *Config)
		want   []string // substrings, one per expected error
	}{
		{
			name: "valid with every option set",
			modify: func(c *Config) {
				c.PublicURL = "https://hooks.example.com/inlet/"
				c.TrustedProxies = []string{"10.0.0.0/8", "::1/128"}
			},
		},
		{
			name:   "address where a CIDR belongs",
			modify: func(c *Config) { c.TrustedProxies = []string{"10.1.2.3"} },
			want:   []string{`trusted_proxies (INLET_TRUSTED_PROXIES): "10.1.2.3" is an address, not a CIDR; write 10.1.2.3/32`},
		},
		{
			name:   "public URL with credentials is not echoed",
			modify: func(c *Config) { c.PublicURL = "https://user:hunter2@hooks.example.com" },
			want:   []string{"public_url (INLET_PUBLIC_URL): must not contain credentials"},
		},
		{
			name:   "public URL with a query",
			modify: func(c *Config) { c.PublicURL = "https://hooks.example.com/?a=b" },
			want:   []string{"must not have a query or fragment"},
		},
		{
			name:   "subject prefix with an empty token",
			modify: func(c *Config) { c.SubjectPrefix = "inlet..events" },
			want:   []string{"subject_prefix (INLET_SUBJECT_PREFIX): \"inlet..events\" has an empty token"},
		},
		{
			name:   "stream with a path separator",
			modify: func(c *Config) { c.Stream = "a/b" },
			want:   []string{"stream (INLET_STREAM): \"a/b\" must not contain"},
		},
		{
			name: "every problem at once",
			modify: func(c *Config) {
				c.HTTPAddr = "8080"
				c.PublicURL = "ftp://files.example.com"
				c.PacksDir = ""
				c.DataDir = ""
				c.TrustedProxies = []string{"10.0.0.0/8", "not-a-cidr", "192.168.0.0/33"}
				c.DestinationAllowCIDRs = []string{"10.0.0.0/8", "example.com"}
				c.Stream = "inlet.events"
				c.SubjectPrefix = "inlet.*"
				c.StreamReplicas = -1
				c.IPRateLimit = -1
				c.UnknownKeyLimit = -2
				c.WriteQueue = 0
				c.DBMaxConns = -5
				c.ShutdownTimeout = 0
				c.ReadHeaderTimeout = -time.Second
				c.ReadTimeout = 0
				c.WriteTimeout = 0
				c.IdleTimeout = 0
				c.LogFormat = "xml"
				c.LogLevel = "verbose"
			},
			want: []string{
				`http_addr (INLET_HTTP_ADDR): "8080" is not a host:port address`,
				`public_url (INLET_PUBLIC_URL): "ftp://files.example.com" is not an absolute http or https URL`,
				"packs_dir (INLET_PACKS_DIR): must not be empty",
				"data_dir (INLET_DATA_DIR): must not be empty",
				`trusted_proxies (INLET_TRUSTED_PROXIES): "not-a-cidr" is not a CIDR`,
				`trusted_proxies (INLET_TRUSTED_PROXIES): "192.168.0.0/33" is not a CIDR`,
				`destination_allow_cidrs (INLET_DESTINATION_ALLOW_CIDRS): `,
				`stream (INLET_STREAM): "inlet.events" must not contain`,
				`subject_prefix (INLET_SUBJECT_PREFIX): "inlet.*" must not contain whitespace or the wildcards`,
				"stream_replicas (INLET_STREAM_REPLICAS): must be between 1 and 5, got -1",
				"ip_rate_limit (INLET_IP_RATE_LIMIT): must not be negative, got -1",
				"unknown_key_limit (INLET_UNKNOWN_KEY_LIMIT): must not be negative, got -2",
				"write_queue (INLET_WRITE_QUEUE): must be greater than 0, got 0",
				"db_max_conns (INLET_DB_MAX_CONNS): must be greater than 0, got -5",
				"shutdown_timeout (INLET_SHUTDOWN_TIMEOUT): must be greater than 0, got 0s",
				"read_header_timeout (INLET_READ_HEADER_TIMEOUT): must be greater than 0, got -1s",
				"read_timeout (INLET_READ_TIMEOUT): must be greater than 0",
				"write_timeout (INLET_WRITE_TIMEOUT): must be greater than 0",
				"idle_timeout (INLET_IDLE_TIMEOUT): must be greater than 0",
				`log_format (INLET_LOG_FORMAT): "xml" is not one of json, text`,
				`log_level (INLET_LOG_LEVEL): "verbose" is not one of debug, info, warn, error`,
			},
		},
		{
			name:   "most stream replicas JetStream allows",
			modify: func(c *Config) { c.StreamReplicas = 5 },
		},
		{
			name:   "no stream replicas",
			modify: func(c *Config) { c.StreamReplicas = 0 },
			want:   []string{"stream_replicas (INLET_STREAM_REPLICAS): must be between 1 and 5, got 0"},
		},
		{
			name:   "more stream replicas than JetStream allows",
			modify: func(c *Config) { c.StreamReplicas = 6 },
			want:   []string{"stream_replicas (INLET_STREAM_REPLICAS): must be between 1 and 5, got 6"},
		},
		{
			name:   "empty stream and prefix",
			modify: func(c *Config) { c.Stream = ""; c.SubjectPrefix = "" },
			want: []string{
				"stream (INLET_STREAM): must not be empty",
				"subject_prefix (INLET_SUBJECT_PREFIX): must not be empty",
			},
		},
		{
			name:   "spaces in stream and prefix",
			modify: func(c *Config) { c.Stream = "INLET EVENTS"; c.SubjectPrefix = "inlet events" },
			want:   []string{`stream (INLET_STREAM): "INLET EVENTS"`, `subject_prefix (INLET_SUBJECT_PREFIX): "inlet events"`},
		},
		{
			name:   "relative public URL",
			modify: func(c *Config) { c.PublicURL = "/hooks" },
			want:   []string{`public_url (INLET_PUBLIC_URL): "/hooks" is not an absolute http or https URL`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.modify(&c)
			err := c.Validate()
			got := joined(err)
			if len(got) != len(tt.want) {
				t.Fatalf("Validate() returned %d errors, want %d:\n%v", len(got), len(tt.want), err)
			}
			for i, want := range tt.want {
				if !strings.Contains(got[i].Error(), want) {
					t.Errorf("Validate() error %d = %q, want it to contain %q", i, got[i], want)
				}
			}
			if strings.Contains(fmt.Sprint(err), "hunter2") {
				t.Errorf("Validate() = %v, reveals a password", err)
			}
		})
	}
}

// joined returns the errors err joins, or err alone.
func joined(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestPublicBaseURL(t *testing.T) {
	tests := []struct {
		httpAddr, publicURL string
		want                string
	}{
		{":8080", "", "http://localhost:8080"},
		{"127.0.0.1:9000", "", "http://127.0.0.1:9000"},
		{"0.0.0.0:8080", "", "http://localhost:8080"},
		{"[::]:8080", "", "http://localhost:8080"},
		{"[::1]:8080", "", "http://[::1]:8080"},
		{"inlet.internal:80", "", "http://inlet.internal:80"},
		{":8080", "https://hooks.example.com", "https://hooks.example.com"},
		{":8080", "https://hooks.example.com/", "https://hooks.example.com"},
		{":8080", "https://example.com/inlet//", "https://example.com/inlet"},
	}
	for _, tt := range tests {
		c := Default()
		c.HTTPAddr, c.PublicURL = tt.httpAddr, tt.publicURL
		if got := c.PublicBaseURL(); got != tt.want {
			t.Errorf("Config{HTTPAddr: %q, PublicURL: %q}.PublicBaseURL() = %q, want %q", tt.httpAddr, tt.publicURL, got, tt.want)
		}
	}
}

func TestTrustedProxyPrefixes(t *testing.T) {
	c := Default()
	c.TrustedProxies = []string{"10.0.0.0/8", "fd00::/8"}
	got := c.TrustedProxyPrefixes()
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TrustedProxyPrefixes() = %v, want %v", got, want)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	const token = "tok_s3cr3t_value"
	const dbPassword = "pg_pa55word"
	const natsToken = "nats_t0ken"
	c := Default()
	c.AdminToken = token
	c.DatabaseURL = "postgres://inlet:" + dbPassword + "@db.example.com:5432/inlet?sslmode=require&password=" + dbPassword
	c.NATSURL = "nats://" + natsToken + "@n1.example.com:4222,nats://user:" + natsToken + "@n2.example.com:4222"

	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outputs["Sprintf "+verb+" value"] = fmt.Sprintf(verb, c)
		outputs["Sprintf "+verb+" pointer"] = fmt.Sprintf(verb, &c)
		outputs["Sprintf "+verb+" token"] = fmt.Sprintf(verb, c.AdminToken)
		outputs["Sprintf "+verb+" in a struct"] = fmt.Sprintf(verb, struct{ C Config }{c})
	}
	outputs["Sprint"] = fmt.Sprint(c, c.AdminToken)
	outputs["String"] = c.String()
	b, err := json.Marshal(c.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	outputs["json token"] = string(b)

	var text, js bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&text, nil), slog.NewJSONHandler(&js, nil)} {
		l := slog.New(h)
		l.Info("config", "config", c, "token", c.AdminToken)
		l.Info("config", slog.Any("config", &c))
		l.Info("config", slog.Group("g", "c", c))
	}
	outputs["slog text"] = text.String()
	outputs["slog json"] = js.String()

	for name, out := range outputs {
		for _, secret := range []string{token, dbPassword, natsToken} {
			if strings.Contains(out, secret) {
				t.Errorf("%s = %s, contains secret %q", name, out, secret)
			}
		}
	}
	if !strings.Contains(outputs["slog json"], `"admin_token":"REDACTED"`) {
		t.Errorf("slog json = %s, want admin_token REDACTED", outputs["slog json"])
	}
	if !strings.Contains(outputs["String"], "database_url=postgres://db.example.com:5432/inlet") {
		t.Errorf("String() = %s, want the database host kept", outputs["String"])
	}
	if !strings.Contains(outputs["String"], "stream_replicas=1") {
		t.Errorf("String() = %s, want stream_replicas shown", outputs["String"])
	}
	if !strings.Contains(outputs["String"], "http_addr=:8080") {
		t.Errorf("String() = %s, want the settings shown", outputs["String"])
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"postgres://u:p@db:5432/inlet?sslmode=disable", "postgres://db:5432/inlet"},
		{"host=db user=inlet password=secret", "REDACTED"},
		{"nats://t@a:4222, nats://b:4222", "nats://a:4222,nats://b:4222"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestValidateJoinsErrors(t *testing.T) {
	c := Default()
	c.WriteQueue = 0
	c.LogLevel = "loud"
	err := c.Validate()
	var target interface{ Unwrap() []error }
	if !errors.As(err, &target) {
		t.Fatalf("Validate() = %T, want an errors.Join result", err)
	}
}

func TestParseRetention(t *testing.T) {
	tests := []struct {
		in   string
		want Retention
		str  string
		err  bool
	}{
		{in: "0", want: 0, str: "0"},
		{in: "90d", want: Retention(90 * Day), str: "90d"},
		{in: " 1d ", want: Retention(Day), str: "1d"},
		{in: "720h", want: Retention(30 * Day), str: "30d"},
		{in: "36h", want: Retention(36 * time.Hour), str: "36h0m0s"},
		{in: "90m", want: Retention(90 * time.Minute), str: "1h30m0s"},
		{in: "0s", want: 0, str: "0"},
		{in: "d", err: true},
		{in: "1.5d", err: true},
		{in: "-3d", err: true},
		{in: "99999999999d", err: true},
		{in: "90", err: true},
		{in: "", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRetention(tt.in)
			if tt.err {
				if err == nil {
					t.Errorf("ParseRetention(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseRetention(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("ParseRetention(%q).String() = %q, want %q", tt.in, s, tt.str)
			}
			if back, err := ParseRetention(got.String()); err != nil || back != got {
				t.Errorf("ParseRetention(%q) = %v, %v; want %v", got.String(), back, err, got)
			}
		})
	}
}
