package sign

import (
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/verify"
)

// FuzzSignVerify signs arbitrary ids and bodies: Sign either refuses the id
// or produces headers that inlet's receiver accepts.
func FuzzSignVerify(f *testing.F) {
	f.Add("evt_01HZX3J8Q7T9V2W4Y6A8C0E2G4", []byte(`{"n":1}`), int64(1700000000))
	f.Add("msg.1", []byte(""), int64(0))
	f.Add("evt_1\r\n", []byte{0, 0xff}, int64(-1))
	f.Fuzz(func(t *testing.T, id string, body []byte, unix int64) {
		at := time.Unix(unix, 0)
		for _, sc := range []Scheme{StandardWebhooks, HMACSHA256, HMACSHA1} {
			secret := hmacNew
			if sc == StandardWebhooks {
				secret = whsecNew
			}
			hs, err := Sign(sc, id, at, body, []string{secret})
			if err != nil {
				continue
			}
			cfg := verifyConfig[sc]
			cfg.Secrets = [][]byte{[]byte(secret)}
			if err := verify.Verify(cfg, verify.Request{Header: httpHeader(hs), Body: body, Now: at}); err != nil {
				t.Fatalf("Sign(%s, %q, %d) = %q, which verify rejects: %v", sc, id, unix, hs, err)
			}
		}
	})
}
