package netguard

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		addr string
		rule string // "" when the address is permitted
		via  string // the embedded IPv4 address refused, if any
	}{
		{name: "public IPv4", addr: "8.8.8.8"},
		{name: "public IPv6", addr: "2606:4700:4700::1111"},
		{name: "IPv4-mapped public", addr: "::ffff:8.8.8.8"},

		{name: "loopback", addr: "127.0.0.1", rule: RuleLoopback},
		{name: "loopback last", addr: "127.255.255.255", rule: RuleLoopback},
		{name: "below loopback", addr: "126.255.255.255"},
		{name: "above loopback", addr: "128.0.0.0"},
		{name: "IPv6 loopback", addr: "::1", rule: RuleLoopback},
		{name: "IPv4-mapped loopback", addr: "::ffff:127.0.0.1", rule: RuleLoopback},

		{name: "10/8 first", addr: "10.0.0.0", rule: RulePrivate},
		{name: "10/8 last", addr: "10.255.255.255", rule: RulePrivate},
		{name: "below 10/8", addr: "9.255.255.255"},
		{name: "above 10/8", addr: "11.0.0.0"},
		{name: "below 172.16/12", addr: "172.15.255.255"},
		{name: "172.16/12 first", addr: "172.16.0.0", rule: RulePrivate},
		{name: "172.16/12 last", addr: "172.31.255.255", rule: RulePrivate},
		{name: "above 172.16/12", addr: "172.32.0.0"},
		{name: "below 192.168/16", addr: "192.167.255.255"},
		{name: "192.168/16 first", addr: "192.168.0.0", rule: RulePrivate},
		{name: "192.168/16 last", addr: "192.168.255.255", rule: RulePrivate},
		{name: "above 192.168/16", addr: "192.169.0.0"},
		{name: "IPv4-mapped private", addr: "::ffff:10.0.0.1", rule: RulePrivate},
		{name: "unique local first", addr: "fc00::", rule: RulePrivate},
		{name: "unique local last", addr: "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", rule: RulePrivate},
		{name: "below unique local", addr: "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{name: "AWS IPv6 metadata", addr: "fd00:ec2::254", rule: RulePrivate},
		{name: "site-local", addr: "fec0::1", rule: RulePrivate},
		{name: "local-use NAT64", addr: "64:ff9b:1::a00:1", rule: RulePrivate},

		{name: "link-local first", addr: "169.254.0.0", rule: RuleLinkLocal},
		{name: "cloud metadata", addr: "169.254.169.254", rule: RuleLinkLocal},
		{name: "link-local last", addr: "169.254.255.255", rule: RuleLinkLocal},
		{name: "below link-local", addr: "169.253.255.255"},
		{name: "above link-local", addr: "169.255.0.0"},
		{name: "IPv6 link-local", addr: "fe80::1", rule: RuleLinkLocal},
		{name: "IPv6 link-local zoned", addr: "fe80::1%eth0", rule: RuleLinkLocal},
		{name: "IPv6 link-local last", addr: "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", rule: RuleLinkLocal},
		{name: "IPv4-mapped metadata", addr: "::ffff:169.254.169.254", rule: RuleLinkLocal},

		{name: "multicast first", addr: "224.0.0.0", rule: RuleMulticast},
		{name: "multicast last", addr: "239.255.255.255", rule: RuleMulticast},
		{name: "below multicast", addr: "223.255.255.255"},
		{name: "IPv6 multicast", addr: "ff02::1", rule: RuleMulticast},
		{name: "IPv6 global multicast", addr: "ff0e::1", rule: RuleMulticast},
		{name: "IPv4-mapped multicast", addr: "::ffff:224.0.0.1", rule: RuleMulticast},

		{name: "unspecified", addr: "0.0.0.0", rule: RuleUnspecified},
		{name: "IPv6 unspecified", addr: "::", rule: RuleUnspecified},
		{name: "IPv4-mapped unspecified", addr: "::ffff:0.0.0.0", rule: RuleUnspecified},
		{name: "this network", addr: "0.1.2.3", rule: RuleThisNetwork},
		{name: "this network last", addr: "0.255.255.255", rule: RuleThisNetwork},
		{name: "above this network", addr: "1.0.0.0"},

		{name: "below shared space", addr: "100.63.255.255"},
		{name: "shared space first", addr: "100.64.0.0", rule: RuleSharedAddressSpace},
		{name: "Alibaba Cloud metadata", addr: "100.100.100.200", rule: RuleSharedAddressSpace},
		{name: "shared space last", addr: "100.127.255.255", rule: RuleSharedAddressSpace},
		{name: "above shared space", addr: "100.128.0.0"},

		{name: "broadcast", addr: "255.255.255.255", rule: RuleBroadcast},
		{name: "reserved first", addr: "240.0.0.0", rule: RuleReserved},
		{name: "reserved below broadcast", addr: "255.255.255.254", rule: RuleReserved},
		{name: "IPv4-compatible private", addr: "::10.0.0.1", rule: RuleReserved},
		{name: "IPv4-compatible public", addr: "::8.8.8.8", rule: RuleReserved},

		{name: "NAT64 public", addr: "64:ff9b::8.8.8.8"},
		{name: "NAT64 private", addr: "64:ff9b::10.0.0.1", rule: RulePrivate, via: "10.0.0.1"},
		{name: "NAT64 loopback", addr: "64:ff9b::7f00:1", rule: RuleLoopback, via: "127.0.0.1"},
		{name: "NAT64 metadata", addr: "64:ff9b::169.254.169.254", rule: RuleLinkLocal, via: "169.254.169.254"},
		{name: "6to4 public", addr: "2002:808:808::1"},
		{name: "6to4 private", addr: "2002:a00:1::1", rule: RulePrivate, via: "10.0.0.1"},
		{name: "6to4 loopback", addr: "2002:7f00:1::", rule: RuleLoopback, via: "127.0.0.1"},
		{name: "6to4 192.168", addr: "2002:c0a8:101:1::1", rule: RulePrivate, via: "192.168.1.1"},
		{name: "6to4 unspecified", addr: "2002::1", rule: RuleUnspecified, via: "0.0.0.0"},
		// Teredo is not unwrapped; see the comment on nat64Prefix.
		{name: "Teredo", addr: "2001:0:4136:e378:8000:63bf:3fff:fdd2"},
		// Documentation ranges are not routed; refusing them protects
		// nothing.
		{name: "documentation IPv6", addr: "2001:db8::1"},
	}
	g := New(nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := netip.MustParseAddr(tt.addr)
			err := g.Check(addr)
			if tt.rule == "" {
				if err != nil {
					t.Fatalf("Check(%s) = %v, want nil", tt.addr, err)
				}
				return
			}
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("Check(%s) = %v, want a *RefusedError", tt.addr, err)
			}
			if re.Rule != tt.rule {
				t.Errorf("Check(%s).Rule = %q, want %q", tt.addr, re.Rule, tt.rule)
			}
			if got, want := re.Addr, addr.Unmap(); got != want {
				t.Errorf("Check(%s).Addr = %v, want %v", tt.addr, got, want)
			}
			var via netip.Addr
			if tt.via != "" {
				via = netip.MustParseAddr(tt.via)
			}
			if re.Via != via {
				t.Errorf("Check(%s).Via = %v, want %v", tt.addr, re.Via, via)
			}
			msg := err.Error()
			if !strings.Contains(msg, re.Addr.String()) || !strings.Contains(msg, AllowEnv) {
				t.Errorf("Check(%s) message %q, want it to name the address and %s", tt.addr, msg, AllowEnv)
			}
		})
	}
}

func TestRefusedErrorMessage(t *testing.T) {
	tests := []struct {
		addr string
		want string
	}{
		{"10.1.2.3", "address 10.1.2.3 is refused: private network (RFC 1918); allow it with INLET_DESTINATION_ALLOW_CIDRS"},
		{"::ffff:10.1.2.3", "address 10.1.2.3 is refused: private network (RFC 1918); allow it with INLET_DESTINATION_ALLOW_CIDRS"},
		{"fe80::1%eth0", "address fe80::1%eth0 is refused: link-local address (fe80::/10); allow it with INLET_DESTINATION_ALLOW_CIDRS"},
		{"64:ff9b::a00:1", "address 64:ff9b::a00:1 is refused: private network (RFC 1918) through the IPv4 address 10.0.0.1 it embeds; allow it with INLET_DESTINATION_ALLOW_CIDRS"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := New(nil).Check(netip.MustParseAddr(tt.addr))
			if err == nil {
				t.Fatalf("Check(%s) = nil, want an error", tt.addr)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Check(%s) = %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
}

func TestCheckInvalid(t *testing.T) {
	var re *RefusedError
	err := New(nil).Check(netip.Addr{})
	if !errors.As(err, &re) || re.Rule != RuleInvalid {
		t.Fatalf("Check(zero Addr) = %v, want a *RefusedError with rule %q", err, RuleInvalid)
	}
	if got, want := err.Error(), "address is refused: not a valid IP address"; got != want {
		t.Errorf("Check(zero Addr) = %q, want %q", got, want)
	}
}

func TestAllowList(t *testing.T) {
	tests := []struct {
		name  string
		allow string
		addr  string
		rule  string // "" when permitted
	}{
		{name: "allowed private", allow: "10.0.0.0/8", addr: "10.1.2.3"},
		{name: "other private still refused", allow: "10.0.0.0/8", addr: "172.16.0.1", rule: RulePrivate},
		{name: "narrow allow", allow: "10.1.2.0/24", addr: "10.1.3.1", rule: RulePrivate},
		{name: "single host", allow: "169.254.169.254", addr: "169.254.169.254"},
		{name: "IPv4 allow matches mapped", allow: "10.0.0.0/8", addr: "::ffff:10.0.0.1"},
		{name: "mapped allow matches IPv4", allow: "::ffff:10.0.0.0/104", addr: "10.9.9.9"},
		{name: "IPv4 allow matches NAT64", allow: "10.0.0.0/8", addr: "64:ff9b::a00:1"},
		{name: "IPv4 allow matches 6to4", allow: "127.0.0.0/8", addr: "2002:7f00:1::1"},
		{name: "NAT64 allow", allow: "64:ff9b::/96", addr: "64:ff9b::a00:1"},
		{name: "zoned link-local", allow: "fe80::/10", addr: "fe80::1%eth0"},
		{name: "unique local", allow: "fd00::/8", addr: "fd00:ec2::254"},
		{name: "fd00::/8 leaves fc00::/8", allow: "fd00::/8", addr: "fc00::1", rule: RulePrivate},
		{name: "IPv4 everything leaves IPv6", allow: "0.0.0.0/0", addr: "::1", rule: RuleLoopback},
		{name: "IPv4 everything", allow: "0.0.0.0/0", addr: "127.0.0.1"},
		{name: "IPv6 allow leaves IPv4", allow: "::/0", addr: "127.0.0.1", rule: RuleLoopback},
		{name: "host bits masked", allow: "192.168.1.77/24", addr: "192.168.1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allow, err := ParseAllowList(tt.allow)
			if err != nil {
				t.Fatalf("ParseAllowList(%q) = %v", tt.allow, err)
			}
			err = New(allow).Check(netip.MustParseAddr(tt.addr))
			if tt.rule == "" {
				if err != nil {
					t.Errorf("Check(%s) with %s allowed = %v, want nil", tt.addr, tt.allow, err)
				}
				return
			}
			var re *RefusedError
			if !errors.As(err, &re) || re.Rule != tt.rule {
				t.Errorf("Check(%s) with %s allowed = %v, want rule %q", tt.addr, tt.allow, err, tt.rule)
			}
		})
	}
}

func TestParseAllowList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{in: "", want: nil},
		{in: " , ", want: nil},
		{in: "10.0.0.0/8", want: []string{"10.0.0.0/8"}},
		{in: " 10.0.0.0/8 , fd00::/8,", want: []string{"10.0.0.0/8", "fd00::/8"}},
		{in: "192.0.2.1,2001:db8::1", want: []string{"192.0.2.1/32", "2001:db8::1/128"}},
		{in: "10.1.2.3/8", want: []string{"10.0.0.0/8"}},
		{in: "::ffff:127.0.0.0/104", want: []string{"127.0.0.0/8"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			list, err := ParseAllowList(tt.in)
			if err != nil {
				t.Fatalf("ParseAllowList(%q) = %v", tt.in, err)
			}
			var got []string
			for _, p := range list {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ParseAllowList(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseAllowListErrors(t *testing.T) {
	in := "10.0.0.0/8, nope, 10.0.0.0/33, fe80::1%eth0, 192.168.0.0/16, 300.1.1.1"
	list, err := ParseAllowList(in)
	if err == nil {
		t.Fatalf("ParseAllowList(%q) = %v, nil, want an error", in, list)
	}
	if list != nil {
		t.Errorf("ParseAllowList(%q) list = %v, want nil with an error", in, list)
	}
	for _, bad := range []string{`"nope"`, `"10.0.0.0/33"`, `"fe80::1%eth0"`, `"300.1.1.1"`} {
		if !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseAllowList(%q) = %q, want it to name %s", in, err, bad)
		}
	}
	for _, good := range []string{`"10.0.0.0/8"`, `"192.168.0.0/16"`} {
		if strings.Contains(err.Error(), good) {
			t.Errorf("ParseAllowList(%q) = %q, want it not to name the valid %s", in, err, good)
		}
	}
}

func TestNilGuard(t *testing.T) {
	var g *Guard
	if err := g.Check(netip.MustParseAddr("8.8.8.8")); err != nil {
		t.Errorf("nil Guard Check(8.8.8.8) = %v, want nil", err)
	}
	if err := g.Check(netip.MustParseAddr("127.0.0.1")); err == nil {
		t.Error("nil Guard Check(127.0.0.1) = nil, want an error")
	}
}
