package netguard

import (
	"errors"
	"net/netip"
	"testing"
)

// refusedByRule is an independent statement of the documented rules, built
// on net/netip's predicates and byte arithmetic rather than on the package's
// range table. a is unmapped and has no zone.
func refusedByRule(a netip.Addr) bool {
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsUnspecified() {
		return true
	}
	b := a.As16()
	if a.Is4() {
		v := a.As4()
		return v[0] == 0 || // this network
			v[0] == 100 && v[1]&0xc0 == 64 || // shared address space
			v[0] >= 240 // reserved and broadcast
	}
	zero12 := true
	for _, x := range b[:12] {
		zero12 = zero12 && x == 0
	}
	return zero12 || // IPv4-compatible
		b[0] == 0xfe && b[1]&0xc0 == 0xc0 || // site-local
		b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b[4] == 0 && b[5] == 1 // local-use NAT64
}

// embeddedV4 returns the IPv4 address of a NAT64 or 6to4 address.
func embeddedV4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	nat64 := [12]byte{0, 0x64, 0xff, 0x9b}
	if [12]byte(b[:12]) == nat64 {
		return netip.AddrFrom4([4]byte(b[12:])), true
	}
	if b[0] == 0x20 && b[1] == 0x02 {
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// addrFrom makes an address of the fuzzer's bytes: four bytes give IPv4,
// anything else is cut or zero-padded to 16 bytes of IPv6 (which covers the
// IPv4-mapped forms).
func addrFrom(b []byte) netip.Addr {
	if len(b) == 4 {
		return netip.AddrFrom4([4]byte(b))
	}
	var a [16]byte
	copy(a[:], b)
	return netip.AddrFrom16(a)
}

func FuzzCheck(f *testing.F) {
	f.Add([]byte{10, 0, 0, 1}, []byte(nil), uint8(0))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1}, []byte{127, 0, 0, 0}, uint8(8))
	f.Add([]byte{0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1}, []byte{10, 0, 0, 0}, uint8(8))
	f.Add([]byte{0x20, 0x02, 192, 168, 1, 1}, []byte{0x20, 0x02}, uint8(16))
	f.Add([]byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, []byte(nil), uint8(0))
	f.Add([]byte{100, 100, 100, 200}, []byte{100, 64, 0, 0}, uint8(10))
	f.Add([]byte{8, 8, 8, 8}, []byte(nil), uint8(0))
	f.Fuzz(func(t *testing.T, addrBytes, allowBytes []byte, bits uint8) {
		addr := addrFrom(addrBytes)
		var allow []netip.Prefix
		if len(allowBytes) > 0 {
			base := addrFrom(allowBytes)
			p := netip.PrefixFrom(base, int(bits)%(base.BitLen()+1))
			allow = append(allow, p)
		}
		allowed := func(a netip.Addr) bool {
			for _, p := range allow {
				// Compare with the same unmapping New documents.
				if p.Addr().Is4In6() && p.Bits() >= 96 {
					p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
				}
				if p.Masked().Contains(a) {
					return true
				}
			}
			return false
		}

		a := addr.Unmap()
		want := false
		if !allowed(a) {
			want = refusedByRule(a)
			if v4, ok := embeddedV4(a); ok && !want && !allowed(v4) {
				want = refusedByRule(v4)
			}
		}

		err := New(allow).Check(addr)
		if got := err != nil; got != want {
			t.Fatalf("Check(%s) with allow %v = %v, want refused %v", addr, allow, err, want)
		}
		if err != nil {
			var re *RefusedError
			if !errors.As(err, &re) || re.Rule == "" || re.Rule == RuleInvalid {
				t.Fatalf("Check(%s) = %v, want a *RefusedError with a rule", addr, err)
			}
			_ = re.Error()
		}
	})
}
