package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Day is the unit of the "d" suffix of a Retention.
const Day = 24 * time.Hour

// Retention is how long rows are kept before the pruner deletes them; 0
// keeps them forever. It is written as a number of days ("90d") or as a
// Go duration ("720h", "90m"); a bare "0" is forever.
type Retention time.Duration

// ParseRetention reads a Retention written as "90d", "720h" or "0".
func ParseRetention(s string) (Retention, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		// 100,000 days keeps a Duration far from overflowing.
		if err != nil || n < 0 || n > 100_000 {
			return 0, fmt.Errorf("%q is not a number of days such as \"90d\"", s)
		}
		return Retention(time.Duration(n) * Day), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a retention such as \"90d\", \"720h\" or 0 (forever)", s)
	}
	return Retention(d), nil
}

// Duration returns r as a time.Duration; 0 means forever.
func (r Retention) Duration() time.Duration { return time.Duration(r) }

// Forever reports whether r keeps rows forever.
func (r Retention) Forever() bool { return r == 0 }

// String writes r as ParseRetention reads it: whole days as "90d", 0 as
// "0", anything else as a Go duration.
func (r Retention) String() string {
	d := time.Duration(r)
	switch {
	case d == 0:
		return "0"
	case d > 0 && d%Day == 0:
		return strconv.FormatInt(int64(d/Day), 10) + "d"
	}
	return d.String()
}

// UnmarshalYAML reads a Retention from a YAML scalar: "90d", 720h or 0.
func (r *Retention) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a retention such as \"90d\", \"720h\" or 0", n.Line)
	}
	v, err := ParseRetention(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*r = v
	return nil
}
