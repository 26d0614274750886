package netguard

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// These tests call Control directly for every address but loopback ones:
// nothing here may connect outside 127.0.0.0/8.

func TestControl(t *testing.T) {
	tests := []struct {
		name    string
		network string
		address string
		rule    string // "" when permitted
		notIP   bool
	}{
		{name: "RFC 1918", network: "tcp4", address: "10.0.0.1:80", rule: RulePrivate},
		{name: "unique local", network: "tcp6", address: "[fd00::1]:443", rule: RulePrivate},
		{name: "cloud metadata", network: "tcp4", address: "169.254.169.254:80", rule: RuleLinkLocal},
		{name: "AWS IPv6 metadata", network: "tcp6", address: "[fd00:ec2::254]:80", rule: RulePrivate},
		{name: "zoned link-local", network: "tcp6", address: "[fe80::1%eth0]:80", rule: RuleLinkLocal},
		{name: "IPv4-mapped loopback", network: "tcp6", address: "[::ffff:127.0.0.1]:8080", rule: RuleLoopback},
		{name: "unspecified", network: "tcp4", address: "0.0.0.0:80", rule: RuleUnspecified},
		{name: "public IPv4", network: "tcp4", address: "93.184.215.14:443"},
		{name: "public IPv6", network: "tcp6", address: "[2606:4700::6810:84e5]:443"},
		{name: "host name", network: "tcp", address: "example.com:80", notIP: true},
		{name: "no port", network: "tcp", address: "10.0.0.1", notIP: true},
		{name: "Unix socket", network: "unix", address: "/run/inlet.sock", notIP: true},
		{name: "empty", network: "tcp", address: "", notIP: true},
	}
	g := New(nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := g.Control(tt.network, tt.address, nil)
			switch {
			case tt.notIP:
				if !errors.Is(err, ErrNotIP) {
					t.Errorf("Control(%q, %q) = %v, want ErrNotIP", tt.network, tt.address, err)
				}
			case tt.rule == "":
				if err != nil {
					t.Errorf("Control(%q, %q) = %v, want nil", tt.network, tt.address, err)
				}
			default:
				var re *RefusedError
				if !errors.As(err, &re) || re.Rule != tt.rule {
					t.Errorf("Control(%q, %q) = %v, want rule %q", tt.network, tt.address, err, tt.rule)
				}
			}
		})
	}
}

func TestDialerLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	// The first connection the listener accepts; the goroutine ends when
	// the listener is closed at the latest.
	first := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(first)
			return
		}
		first <- c
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr := ln.Addr().String()

	c, err := New(nil).Dialer(5*time.Second).DialContext(ctx, "tcp", addr)
	if err == nil {
		c.Close()
		t.Fatalf("Dial(%s) without an allow list = nil error, want a refusal", addr)
	}
	var re *RefusedError
	if !errors.As(err, &re) || re.Rule != RuleLoopback {
		t.Fatalf("Dial(%s) without an allow list = %v, want rule %q", addr, err, RuleLoopback)
	}

	allow, err := ParseAllowList("127.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	c, err = New(allow).Dialer(5*time.Second).DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("Dial(%s) with 127.0.0.0/8 allowed = %v, want a connection", addr, err)
	}
	const marker = "allowed"
	if _, err := io.WriteString(c, marker); err != nil {
		t.Fatalf("write: %v", err)
	}
	c.Close()

	// Connections are accepted in the order they were established, so had
	// the refused dial connected, it would be the first one and would not
	// carry the marker.
	var got []byte
	select {
	case sc, ok := <-first:
		if !ok {
			t.Fatal("accept failed")
		}
		defer sc.Close()
		sc.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err = io.ReadAll(sc)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the listener accepted nothing")
	}
	if string(got) != marker {
		t.Errorf("first accepted connection sent %q, want %q: the refused dial reached the listener", got, marker)
	}
}
