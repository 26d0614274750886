package sign

import (
	"bytes"
	"testing"
)

func BenchmarkSign(b *testing.B) {
	body := bytes.Repeat([]byte(`{"k":"0123456789abcdef"},`), 41)[:1024]
	tests := []struct {
		scheme Scheme
		secret string
	}{
		{StandardWebhooks, whsecNew},
		{HMACSHA256, hmacNew},
		{HMACSHA1, hmacNew},
	}
	for _, tt := range tests {
		b.Run(string(tt.scheme), func(b *testing.B) {
			secrets := []string{tt.secret}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Sign(tt.scheme, "evt_01HZX3J8Q7T9V2W4Y6A8C0E2G4", testTime, body, secrets); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
