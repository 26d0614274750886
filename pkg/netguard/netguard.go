// Package netguard refuses outbound connections to addresses that reach the
// host itself or the networks behind it: loopback, private, link-local,
// multicast, unspecified and a few other special-purpose ranges, unless the
// operator allowed them (INLET_DESTINATION_ALLOW_CIDRS).
//
// The check belongs on the address actually dialed, after DNS resolution:
// Guard.Control has the signature of net.Dialer.Control, which the net
// package calls with the resolved "ip:port" after creating the socket and
// before connect(2). A name that resolves to a public address when a URL is
// saved and to 127.0.0.1 when it is used (DNS rebinding) is refused at the
// second resolution, and nothing is sent to a refused address. When a name
// has several addresses, the dialer tries the next one after a refusal and
// reports the first error if none connects.
//
// Two things defeat the guard, so its callers must avoid them: an HTTP proxy
// (http.Transport's Proxy must be nil, or the guard judges the proxy's
// address, not the destination's), and a ControlContext set on the dialer
// (the net package then ignores Control).
//
// A Guard is immutable and safe for concurrent use.
package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// AllowEnv is the environment variable operators set to allow refused
// ranges; error messages name it.
const AllowEnv = "INLET_DESTINATION_ALLOW_CIDRS"

// The rules an address can be refused by, as found in RefusedError.Rule.
// They are stable and fit an attempt's last_error, logs and metric labels.
const (
	// RuleLoopback: 127.0.0.0/8 and ::1, the host itself.
	RuleLoopback = "loopback"
	// RulePrivate: RFC 1918 (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16),
	// unique local IPv6 (fc00::/7, which holds AWS's fd00:ec2::254
	// metadata address), the deprecated site-local fec0::/10 and the
	// local-use NAT64 prefix 64:ff9b:1::/48.
	RulePrivate = "private"
	// RuleLinkLocal: 169.254.0.0/16 (where the cloud metadata service
	// 169.254.169.254 lives) and fe80::/10, zoned or not.
	RuleLinkLocal = "link-local"
	// RuleMulticast: 224.0.0.0/4 and ff00::/8.
	RuleMulticast = "multicast"
	// RuleUnspecified: 0.0.0.0 and ::, which Linux and macOS connect to the
	// host itself.
	RuleUnspecified = "unspecified"
	// RuleThisNetwork: the rest of 0.0.0.0/8.
	RuleThisNetwork = "this-network"
	// RuleSharedAddressSpace: 100.64.0.0/10, carrier-grade NAT space that
	// clouds and overlay networks use internally.
	RuleSharedAddressSpace = "shared-address-space"
	// RuleBroadcast: 255.255.255.255.
	RuleBroadcast = "broadcast"
	// RuleReserved: 240.0.0.0/4 and the deprecated IPv4-compatible IPv6
	// addresses ::/96.
	RuleReserved = "reserved"
	// RuleInvalid: the zero netip.Addr.
	RuleInvalid = "invalid"
)

// refusedRange is one refused range, its rule and how an error describes it.
type refusedRange struct {
	prefix netip.Prefix
	rule   string
	desc   string
}

// ranges lists every refused range. An address is judged by the first
// range holding it, so a narrower range comes before a wider one that
// contains it. It is never modified.
//
// Sources: the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC
// 6890), and the RFCs named beside each range.
var ranges = []refusedRange{
	// IPv4.
	{pfx("0.0.0.0/32"), RuleUnspecified, "unspecified address (0.0.0.0)"},
	// RFC 1122 section 3.2.1.3: "this host on this network", valid only as
	// a source. Linux connects 0.0.0.0 to the host itself and, since 5.3,
	// may route the rest of 0.0.0.0/8 as unicast, so none of it is safe.
	{pfx("0.0.0.0/8"), RuleThisNetwork, `"this network" (0.0.0.0/8, RFC 1122)`},
	{pfx("10.0.0.0/8"), RulePrivate, "private network (RFC 1918)"},
	// RFC 6598: shared address space between a carrier's NAT and its
	// customers. Clouds and overlays use it for internal services (Alibaba
	// Cloud's metadata service is 100.100.100.200, Tailscale hands out
	// 100.64.0.0/10 addresses), so it is as internal as RFC 1918 space.
	{pfx("100.64.0.0/10"), RuleSharedAddressSpace, "shared address space (100.64.0.0/10, RFC 6598)"},
	{pfx("127.0.0.0/8"), RuleLoopback, "loopback address (127.0.0.0/8)"},
	{pfx("169.254.0.0/16"), RuleLinkLocal, "link-local address (169.254.0.0/16, cloud metadata services live here)"},
	{pfx("172.16.0.0/12"), RulePrivate, "private network (RFC 1918)"},
	{pfx("192.168.0.0/16"), RulePrivate, "private network (RFC 1918)"},
	{pfx("224.0.0.0/4"), RuleMulticast, "multicast address (224.0.0.0/4)"},
	// RFC 919 and RFC 8190: the limited broadcast address, never
	// forwarded, which a host may deliver to its whole local segment.
	{pfx("255.255.255.255/32"), RuleBroadcast, "limited broadcast address (255.255.255.255)"},
	// RFC 1112 section 4: "class E", reserved for future use; no public
	// host has one, and some stacks accept it for private use.
	{pfx("240.0.0.0/4"), RuleReserved, "reserved address (240.0.0.0/4, RFC 1112)"},

	// IPv6. IPv4-mapped addresses (::ffff:0:0/96) never get here: they are
	// judged as the IPv4 address they carry, since the socket layer sends
	// to that address (RFC 4291 section 2.5.5.2).
	{pfx("::/128"), RuleUnspecified, "unspecified address (::)"},
	{pfx("::1/128"), RuleLoopback, "loopback address (::1)"},
	// RFC 4291 section 2.5.5.1 deprecated the IPv4-compatible addresses
	// ::a.b.c.d; a stack that still has an automatic tunnel sends them to
	// the embedded IPv4 address, and no public destination uses them.
	{pfx("::/96"), RuleReserved, "deprecated IPv4-compatible address (::/96, RFC 4291)"},
	// RFC 8215: the local-use NAT64 prefix. Where its IPv4 address sits
	// depends on the prefix length the operator chose, so it cannot be
	// judged; by definition it serves a local network.
	{pfx("64:ff9b:1::/48"), RulePrivate, "local-use NAT64 prefix (64:ff9b:1::/48, RFC 8215)"},
	{pfx("fc00::/7"), RulePrivate, "private network (unique local fc00::/7, RFC 4193)"},
	{pfx("fe80::/10"), RuleLinkLocal, "link-local address (fe80::/10)"},
	// RFC 3879 deprecated site-local addresses, but a network may still
	// route them internally.
	{pfx("fec0::/10"), RulePrivate, "site-local address (fec0::/10, RFC 3879)"},
	{pfx("ff00::/8"), RuleMulticast, "multicast address (ff00::/8)"},
}

// Embedded IPv4 addresses. Two IPv6 ranges are reached through the IPv4
// address they carry, so that address is judged too and the IPv6 address
// is refused for whatever would refuse the IPv4 one:
//
//   - 64:ff9b::/96, the NAT64 well-known prefix (RFC 6052 section 2.1): a
//     NAT64 gateway on the path opens a TCP connection to the last 32 bits.
//     RFC 6052 section 3.1 forbids the prefix for non-global IPv4 addresses,
//     but gateways do not all enforce it, and a hostile DNS answer need not
//     follow it.
//   - 2002::/16, 6to4 (RFC 3056 section 2): bits 16 to 47 are the IPv4
//     address of the relay the packets are tunnelled to. RFC 3964 (6to4
//     security considerations) calls private, loopback, broadcast and
//     multicast addresses there invalid.
//
// Teredo (2001::/32, RFC 4380) is not unwrapped: its embedded addresses are
// only reached as UDP-encapsulated IPv6 by a local Teredo client, which a
// server does not run, and never as a TCP connection to a service there.
var (
	nat64Prefix = pfx("64:ff9b::/96")
	sixToFour   = pfx("2002::/16")
)

// pfx parses a prefix known at compile time.
func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// RefusedError is the error of a refused address. Its message names the
// rule and the setting that would allow it.
type RefusedError struct {
	// Addr is the address refused, as dialed, except that an IPv4-mapped
	// address is shown as the IPv4 address it carries.
	Addr netip.Addr
	// Rule is one of the Rule constants.
	Rule string
	// Via is, for a NAT64 or 6to4 address, the embedded IPv4 address that
	// was refused; otherwise the zero Addr.
	Via netip.Addr
}

// Error reads like "address 10.1.2.3 is refused: private network (RFC
// 1918); allow it with INLET_DESTINATION_ALLOW_CIDRS".
func (e *RefusedError) Error() string {
	if !e.Addr.IsValid() {
		return "address is refused: not a valid IP address"
	}
	desc := e.Rule
	judged := e.Addr
	if e.Via.IsValid() {
		judged = e.Via
	}
	if r, ok := lookup(judged.WithZone("")); ok && r.rule == e.Rule {
		desc = r.desc
	}
	if e.Via.IsValid() {
		desc += " through the IPv4 address " + e.Via.String() + " it embeds"
	}
	return fmt.Sprintf("address %s is refused: %s; allow it with %s", e.Addr, desc, AllowEnv)
}

// ErrNotIP is wrapped by the error Control returns for an address that is
// not an IP address and port.
var ErrNotIP = errors.New("not an IP address and port")

// Guard judges destination addresses against the refused ranges and an
// allow list.
type Guard struct {
	allow []netip.Prefix
}

// New returns a Guard that lets through, despite the rules, any address in
// one of the allow prefixes. IPv4-mapped IPv6 prefixes such as
// ::ffff:10.0.0.0/104 are taken as the IPv4 prefix they denote; a prefix
// with host bits set is masked. A nil or empty list allows nothing extra.
func New(allow []netip.Prefix) *Guard {
	g := &Guard{allow: make([]netip.Prefix, 0, len(allow))}
	for _, p := range allow {
		if p = normalize(p); p.IsValid() {
			g.allow = append(g.allow, p)
		}
	}
	return g
}

// normalize masks p and turns an IPv4-mapped prefix of 96 bits or more into
// the IPv4 prefix it covers, since addresses are unmapped before they are
// matched.
func normalize(p netip.Prefix) netip.Prefix {
	if !p.IsValid() {
		return netip.Prefix{}
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// ParseAllowList parses the value of INLET_DESTINATION_ALLOW_CIDRS: CIDRs
// separated by commas, such as "10.0.0.0/8, fd00::/8". Spaces around an entry
// and empty entries are ignored; a bare address stands for itself alone (/32
// or /128). The error lists every bad entry. An empty string gives an empty
// list.
func ParseAllowList(s string) ([]netip.Prefix, error) {
	var (
		list []netip.Prefix
		errs []error
	)
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		p, err := parseEntry(entry)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		list = append(list, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return list, nil
}

// parseEntry parses one allow-list entry, a CIDR or a bare address.
func parseEntry(entry string) (netip.Prefix, error) {
	if !strings.Contains(entry, "/") {
		a, err := netip.ParseAddr(entry)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("allow list entry %q is not a CIDR such as 10.0.0.0/8 or fd00::/8", entry)
		}
		return normalize(netip.PrefixFrom(a, a.BitLen())), nil
	}
	p, err := netip.ParsePrefix(entry)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("allow list entry %q is not a CIDR such as 10.0.0.0/8 or fd00::/8", entry)
	}
	return normalize(p), nil
}

// Allowed returns the guard's allow list, normalized as New does.
func (g *Guard) Allowed() []netip.Prefix {
	if g == nil {
		return nil
	}
	return append([]netip.Prefix(nil), g.allow...)
}

// Check returns nil when a connection to addr is permitted, else a
// *RefusedError naming the rule. IPv4-mapped addresses are judged as IPv4
// and zones are ignored (fe80::1%eth0 is link-local). An address in the
// allow list is permitted whatever the rules say; for a NAT64 or 6to4
// address, the allow list is also matched against the IPv4 address it
// embeds, so that allowing 10.0.0.0/8 also allows 10.0.0.0/8 reached through
// NAT64 (an IPv6-only network with DNS64 presents internal hosts that way).
// The zero Addr is refused with RuleInvalid. A nil *Guard has an empty allow
// list.
func (g *Guard) Check(addr netip.Addr) error {
	if !addr.IsValid() {
		return &RefusedError{Addr: addr, Rule: RuleInvalid}
	}
	shown := addr.Unmap()
	// Prefixes never hold a zoned address, and a zone does not change
	// which network an address belongs to.
	a := shown.WithZone("")
	if g.allows(a) {
		return nil
	}
	if r, ok := lookup(a); ok {
		return &RefusedError{Addr: shown, Rule: r.rule}
	}
	if v4, ok := embedded(a); ok && !g.allows(v4) {
		if r, ok := lookup(v4); ok {
			return &RefusedError{Addr: shown, Rule: r.rule, Via: v4}
		}
	}
	return nil
}

// allows reports whether a is in the allow list.
func (g *Guard) allows(a netip.Addr) bool {
	if g == nil {
		return false
	}
	for _, p := range g.allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// lookup returns the first refused range holding a, an unmapped address
// without a zone.
func lookup(a netip.Addr) (refusedRange, bool) {
	for _, r := range ranges {
		if r.prefix.Contains(a) {
			return r, true
		}
	}
	return refusedRange{}, false
}

// embedded returns the IPv4 address carried by a NAT64 (64:ff9b::/96) or
// 6to4 (2002::/16) address.
func embedded(a netip.Addr) (netip.Addr, bool) {
	b := a.As16()
	switch {
	case nat64Prefix.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// Control checks the address a net.Dialer is about to connect to; it has
// the signature of net.Dialer.Control, which calls it with the resolved
// "ip:port" (or "[ip%zone]:port") before connect(2). It returns Check's
// *RefusedError for a refused address and an error wrapping ErrNotIP for an
// address it cannot parse (a host name, a Unix socket path), so that only
// judged IP addresses are ever connected to. The raw connection is not
// used.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refuse to dial %s address %q: %w", network, address, ErrNotIP)
	}
	return g.Check(ap.Addr())
}

// Dialer returns a net.Dialer whose Control is g.Control, with the given
// connect timeout (zero means none but the operating system's) and TCP
// keep-alives probing an idle connection after 30 seconds, every 15 seconds,
// 4 times. Set neither ControlContext nor a proxy on what uses it: either
// bypasses the check.
func (g *Guard) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout: timeout,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable:   true,
			Idle:     30 * time.Second,
			Interval: 15 * time.Second,
			Count:    4,
		},
		Control: g.Control,
	}
}
