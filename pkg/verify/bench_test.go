package verify

import (
	"bytes"
	"testing"
)

func BenchmarkVerify(b *testing.B) {
	body := bytes.Repeat([]byte(`{"k":"0123456789abcdef"},`), 41)[:1024]
	tests := []struct {
		name string
		st   schemeTest
	}{
		{"default-sha256", defaultScheme()},
		{"github", githubScheme()},
		{"stripe", stripeScheme()},
		{"standard-webhooks", standardScheme("standard-webhooks", standardNames)},
		{"sendgrid", sendgridScheme()},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			secret := tt.st.secrets[0]
			h, _ := tt.st.sign(secret, body, testNow.Unix())
			cfg := tt.st.cfg
			cfg.Secrets = [][]byte{secret}
			r := Request{Header: h, Body: body, Now: testNow}
			if err := Verify(cfg, r); err != nil {
				b.Fatalf("Verify() = %v, want nil", err)
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := Verify(cfg, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSendGridKey measures parsing a verification key, which the
// sendgrid preset does for every secret on every request, to set it beside
// BenchmarkVerify/sendgrid.
func BenchmarkSendGridKey(b *testing.B) {
	_, pub := sendgridTestKeys()
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := sendgridKey(pub[0]); !ok {
			b.Fatal("sendgridKey() = false")
		}
	}
}
