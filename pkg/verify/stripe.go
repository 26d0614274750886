package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// stripeHeader is a parsed Stripe-Signature header.
type stripeHeader struct {
	// ts is the t= value as sent: it is what Stripe signed.
	ts string
	// sigs[:n] are the decoded v1 signatures.
	sigs [maxSignatures][sha256.Size]byte
	n    int
}

// parseStripeHeader parses "t=<unix>,v1=<hex>[,v1=<hex>...][,v0=<hex>]".
// Elements other than t and v1 are ignored, as are v1 values that are not 64
// hex digits and any v1 after the first 16. It fails when an element has no
// "=", when t is absent, repeated or not a Unix time, and when no usable v1
// remains. Format: stripe/stripe-go webhook/client.go, parseSignatureHeader.
func parseStripeHeader(v string) (stripeHeader, *Error) {
	var h stripeHeader
	for rest := v; rest != ""; {
		var item string
		item, rest, _ = strings.Cut(rest, ",")
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		key, val, ok := strings.Cut(item, "=")
		if !ok {
			return h, fail(ReasonMalformed, "Stripe-Signature header has an element without \"=\"")
		}
		switch key {
		case "t":
			if h.ts != "" {
				return h, fail(ReasonMalformed, "Stripe-Signature header has more than one t= timestamp")
			}
			if _, ok := parseUnix(val); !ok {
				return h, fail(ReasonMalformed, "Stripe-Signature header t= is not a Unix time in seconds")
			}
			h.ts = val
		case "v1":
			if h.n == maxSignatures || len(val) != 2*sha256.Size {
				continue
			}
			if _, err := hex.Decode(h.sigs[h.n][:], []byte(val)); err == nil {
				h.n++
			}
		}
	}
	if h.ts == "" {
		return h, fail(ReasonMalformed, "Stripe-Signature header has no t= timestamp")
	}
	if h.n == 0 {
		return h, fail(ReasonMalformed, "Stripe-Signature header has no v1=<64 hex digits> signature")
	}
	return h, nil
}

// verifyStripe checks Stripe-Signature: hex HMAC-SHA256 of "<t>.<body>",
// keyed with the endpoint secret's bytes as they are (whsec_ prefix
// included, not base64-decoded), against every v1 signature. Unlike
// stripe-go, which only rejects old timestamps, a timestamp too far in the
// future is rejected too.
func verifyStripe(c Config, r Request, secrets [][]byte) *Error {
	v := header(r.Header, "Stripe-Signature")
	if v == "" {
		return fail(ReasonMissing, "missing Stripe-Signature header")
	}
	h, err := parseStripeHeader(v)
	if err != nil {
		return err
	}
	t, _ := parseUnix(h.ts)
	for _, s := range secrets {
		want := sum(algSHA256, s, []byte(h.ts), []byte("."), r.Body)
		for i := range h.n {
			if hmac.Equal(want, h.sigs[i][:]) {
				return checkTime(t, r.Now, tolerance(c))
			}
		}
	}
	return errMismatch()
}
