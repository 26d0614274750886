package trigger_test

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/inlet-dev/inlet/pkg/payload"
	"github.com/inlet-dev/inlet/pkg/trigger"
	"github.com/inlet-dev/inlet/pkg/verify"
)

func FuzzParseCIDR(f *testing.F) {
	for _, s := range []string{
		"10.0.0.0/8", "192.168.1.7", "192.168.1.7/24", " 172.16.0.0/12 ", "0.0.0.0/0", "255.255.255.255/32",
		"2001:db8::/32", "::1", "::/0", "::ffff:10.0.0.1", "::ffff:10.0.0.0/104", "::ffff:1.2.3.4/90",
		"fe80::1%eth0", "fe80::1%eth0/64", "1.2.3.4/33", "1.2.3.4/08", "1.2.3.4/-1", "01.2.3.4", "1.2.3", "",
		"/", "1.2.3.4/", "/24", "2001:db8::/129", "::ffff:0.0.0.0/96", "1.2.3.4/32/1", "\x00", "1.2.3.4\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := trigger.ParseCIDR(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("ParseCIDR(%q) returned an empty error", s)
			}
			checkValidates(t, s, false)
			return
		}
		if !p.IsValid() {
			t.Fatalf("ParseCIDR(%q) = %v, an invalid prefix, without an error", s, p)
		}
		if p != p.Masked() {
			t.Fatalf("ParseCIDR(%q) = %v, not masked (%v)", s, p, p.Masked())
		}
		if p.Addr().Is4In6() || p.Addr().Zone() != "" {
			t.Fatalf("ParseCIDR(%q) = %v: mapped or zoned addresses never match a client address", s, p)
		}
		if !p.Contains(p.Addr()) {
			t.Fatalf("ParseCIDR(%q) = %v does not contain its own address", s, p)
		}
		again, err := trigger.ParseCIDR(p.String())
		if err != nil || again != p {
			t.Fatalf("ParseCIDR(%q) = %v, but ParseCIDR(%q) = %v, %v", s, p, p.String(), again, err)
		}
		// Whatever the standard library parses must mean the same here.
		trimmed := strings.TrimSpace(s)
		if std, err := netip.ParsePrefix(trimmed); err == nil && !std.Addr().Is4In6() && std.Masked() != p {
			t.Fatalf("ParseCIDR(%q) = %v, netip.ParsePrefix gives %v", s, p, std.Masked())
		}
		if a, err := netip.ParseAddr(trimmed); err == nil && (!p.Contains(a.Unmap().WithZone("")) || p.Bits() != a.Unmap().BitLen()) {
			t.Fatalf("ParseCIDR(%q) = %v, want the single address %v", s, p, a)
		}
		checkValidates(t, s, true)
	})
}

// checkValidates checks that settings with s in their allowlist validate
// exactly when ParseCIDR accepts s.
func checkValidates(t *testing.T, s string, want bool) {
	t.Helper()
	set := trigger.DefaultSettings()
	set.IPAllowlist = trigger.IPAllowlist{Enabled: true, CIDRs: []string{s}}
	if err := set.Validate(); (err == nil) != want {
		t.Fatalf("allowlist [%q]: Validate() = %v, but ParseCIDR accepts it: %v", s, err, want)
	}
}

// TestParseCIDRMappedShortPrefix: an IPv4-mapped IPv6 network shorter than
// /96 has no IPv4 equivalent and must be refused, not turned into an
// invalid prefix that settings validation accepts and that matches nothing.
func TestParseCIDRMappedShortPrefix(t *testing.T) {
	for _, s := range []string{"::ffff:1.2.3.4/90", "::ffff:0.0.0.0/0"} {
		if p, err := trigger.ParseCIDR(s); err == nil {
			t.Errorf("ParseCIDR(%q) = %v, nil; want an error", s, p)
		}
	}
}

func FuzzSettingsValidate(f *testing.F) {
	def, _ := json.Marshal(trigger.DefaultSettings())
	f.Add(def)
	for _, s := range []string{
		`{"hmac":{"enabled":true,"algorithm":"sha512","secret":"s","preset":"github","tolerance_seconds":60},"rate_limit":{"enabled":true,"requests":5,"window_seconds":1},"ip_allowlist":{"enabled":true,"cidrs":["10.0.0.0/8","2001:db8::/32"]},"payload_size_limit_kb":25600,"payload_mapping":{"a":"$.a","b":"$.b[0].c"},"delivery_id":"$.id"}`,
		`{"hmac":{"algorithm":"md5","preset":"nope","header":"Bad Header"},"rate_limit":{"requests":0,"window_seconds":-1},"payload_size_limit_kb":-5}`,
		`{"ip_allowlist":{"enabled":true,"cidrs":[]},"payload_mapping":{"x":"$.a["},"delivery_id":"not a header"}`,
		`{"ip_allowlist":{"enabled":true,"cidrs":["::ffff:1.2.3.4/90"]}}`,
		`{"hmac":{"tolerance_seconds":86401,"secret":"` + strings.Repeat("s", 1025) + `"},"payload_size_limit_kb":25601}`,
		`{"delivery_id":"X-GitHub-Delivery","payload_mapping":{"":"$"}}`,
		`{"rate_limit":{"requests":1e9,"window_seconds":1}}`,
		`null`, `{}`, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := trigger.DefaultSettings()
		if json.Unmarshal(data, &s) != nil {
			return
		}
		s.Normalize()
		err := s.Validate()
		if err != nil {
			var ve *trigger.ValidationError
			if !errors.As(err, &ve) || len(ve.Fields) == 0 {
				t.Fatalf("Validate() = %#v, want a *ValidationError naming fields", err)
			}
			for _, fe := range ve.Fields {
				if fe.Field == "" || fe.Message == "" {
					t.Fatalf("Validate() field error %+v lacks a field or message", fe)
				}
			}
			return
		}
		// Valid settings are what the receiver compiles on its hot path:
		// nothing there may fail or misbehave for them.
		prefixes, perr := s.IPAllowlist.Prefixes()
		if perr != nil {
			t.Fatalf("valid settings, but Prefixes() = %v", perr)
		}
		for i, p := range prefixes {
			if !p.IsValid() {
				t.Fatalf("valid settings, but allowlist entry %q gives invalid prefix %v", s.IPAllowlist.CIDRs[i], p)
			}
		}
		if s.IPAllowlist.Enabled && len(prefixes) == 0 {
			t.Fatal("valid settings with an enabled, empty allowlist")
		}
		if _, err := payload.CompileMapping(s.PayloadMapping); err != nil {
			t.Fatalf("valid settings, but CompileMapping(%v) = %v", s.PayloadMapping, err)
		}
		if d := s.DeliveryID; strings.HasPrefix(d, "$") {
			if _, err := payload.CompilePath(d); err != nil {
				t.Fatalf("valid settings, but delivery id path %q: %v", d, err)
			}
		}
		if lim := s.PayloadLimit(); lim <= 0 || lim > trigger.MaxPayloadLimitKB*1024 {
			t.Fatalf("valid settings with payload limit %d bytes", lim)
		}
		if s.RateLimit.Requests <= 0 || s.RateLimit.WindowSeconds <= 0 {
			t.Fatalf("valid settings with rate limit %+v", s.RateLimit)
		}
		if tol := s.HMAC.Tolerance(); tol <= 0 {
			t.Fatalf("valid settings with tolerance %v", tol)
		}
		if !verify.KnownPreset(s.HMAC.Preset) {
			t.Fatalf("valid settings with unknown preset %q", s.HMAC.Preset)
		}
		// Settings survive their JSON form, which is how they are stored.
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		back := trigger.DefaultSettings()
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("stored form %s does not load: %v", b, err)
		}
		back.Normalize()
		if err := back.Validate(); err != nil {
			t.Fatalf("settings valid before storing are invalid after: %v (%s)", err, b)
		}
	})
}
