package verify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"math/big"
)

// The headers of SendGrid's Signed Event Webhook.
// Source: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features
// and the constants of sendgrid-go helpers/eventwebhook/eventwebhook.go.
const (
	sendgridSignatureHeader = "X-Twilio-Email-Event-Webhook-Signature"
	sendgridTimestampHeader = "X-Twilio-Email-Event-Webhook-Timestamp"
)

// maxP256SignatureDER is the length of the longest DER ECDSA-Sig-Value
// over P-256: a SEQUENCE header of 2 bytes around two INTEGERs, each a
// 2-byte header and at most 33 bytes (32 plus a leading zero when the top
// bit is set). A longer header value is refused before it is decoded.
const maxP256SignatureDER = 2 + 2*(2+33)

// sendgridSignature decodes the X-Twilio-Email-Event-Webhook-Signature
// value: padded standard base64 of a DER ECDSA-Sig-Value, SEQUENCE { r
// INTEGER, s INTEGER }, with r and s positive and nothing after it. It
// returns the DER bytes, which ecdsa.VerifyASN1 parses again, strictly; this
// check only tells a malformed header from a signature that does not verify.
func sendgridSignature(v string) ([]byte, bool) {
	enc := base64.StdEncoding.Strict()
	if len(v) > enc.EncodedLen(maxP256SignatureDER) {
		return nil, false
	}
	der, err := enc.DecodeString(v)
	if err != nil {
		return nil, false
	}
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) != 0 || sig.R.Sign() <= 0 || sig.S.Sign() <= 0 {
		return nil, false
	}
	return der, true
}

// sendgridKey parses a SendGrid verification key, the "secret" of the
// sendgrid preset: the base64 of a DER SubjectPublicKeyInfo holding a P-256
// public key, as SendGrid's settings page and its API show it, or the same
// key in a PEM "PUBLIC KEY" block. ok is false for anything else, another
// curve or an RSA key included. Sources: sendgrid-go
// helpers/eventwebhook/eventwebhook.go (ConvertPublicKeyBase64ToECDSA:
// base64 then x509.ParsePKIXPublicKey); sendgrid-python
// sendgrid/helpers/eventwebhook/__init__.py (wraps the same base64 in PEM);
// the keys of SendGrid's library tests name the prime256v1 curve.
func sendgridKey(secret []byte) (key *ecdsa.PublicKey, ok bool) {
	s := bytes.TrimSpace(secret)
	var der []byte
	if block, rest := pem.Decode(s); block != nil {
		if block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
			return nil, false
		}
		der = block.Bytes
	} else {
		der = make([]byte, base64.StdEncoding.DecodedLen(len(s)))
		n, err := base64.StdEncoding.Decode(der, s)
		if err != nil {
			return nil, false
		}
		der = der[:n]
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, false
	}
	key, ok = pub.(*ecdsa.PublicKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, false
	}
	return key, true
}

// verifySendGrid checks SendGrid's Signed Event Webhook: the
// X-Twilio-Email-Event-Webhook-Signature header is the base64 of a DER
// ECDSA P-256 signature over the SHA-256 of the
// X-Twilio-Email-Event-Webhook-Timestamp value followed by the raw body, with
// no separator. Each secret is a verification key (see sendgridKey); secrets
// that are not one are skipped, and with none left the configuration is at
// fault (ReasonNoSecret).
//
// A signature with a high S (s > n/2) verifies: crypto/ecdsa accepts both s
// and n-s, as ECDSA itself does, and SendGrid signs that way, since the
// signature of the vector its own libraries test with has a high S. The
// malleability this allows gives an attacker nothing: the twin signature
// covers the same timestamp and body.
//
// SendGrid's libraries (sendgrid-go VerifySignature, @sendgrid/eventwebhook,
// sendgrid-python, sendgrid-java) only put the timestamp into the signed
// message and never check its age, and SendGrid documents no window; inlet
// applies Config.Tolerance to it, both ways, as for the other timestamped
// schemes.
//
// Sources: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features;
// sendgrid-go helpers/eventwebhook/eventwebhook.go (VerifySignature: hash
// timestamp then payload with SHA-256, ecdsa.Verify); sendgrid-java
// helpers/eventwebhook/EventWebhook.java ("SHA256withECDSA" over
// timestamp + payload).
func verifySendGrid(c Config, r Request, secrets [][]byte) *Error {
	v := header(r.Header, sendgridSignatureHeader)
	if v == "" {
		return fail(ReasonMissing, "missing %s header", sendgridSignatureHeader)
	}
	ts := header(r.Header, sendgridTimestampHeader)
	if ts == "" {
		return fail(ReasonMissing, "missing %s header", sendgridTimestampHeader)
	}
	t, ok := parseUnix(ts)
	if !ok {
		return fail(ReasonMalformed, "%s header is not a Unix time in seconds", sendgridTimestampHeader)
	}
	sig, ok := sendgridSignature(v)
	if !ok {
		return fail(ReasonMalformed, "%s header is not a base64 DER ECDSA signature", sendgridSignatureHeader)
	}
	h := sha256.New()
	h.Write([]byte(ts))
	h.Write(r.Body)
	digest := h.Sum(nil)
	keys := 0
	for _, s := range secrets {
		// Keys are parsed on every request, since Config carries raw
		// secrets and the package keeps no state between calls. That is
		// cheap: parsing took about 5µs (BenchmarkSendGridKey) where the
		// whole check took about 150µs (BenchmarkVerify/sendgrid), nearly
		// all of it the P-256 verification.
		key, ok := sendgridKey(s)
		if !ok {
			continue
		}
		keys++
		if ecdsa.VerifyASN1(key, digest, sig) {
			return checkTime(t, r.Now, tolerance(c))
		}
	}
	if keys == 0 {
		return fail(ReasonNoSecret, "no configured secret is a SendGrid verification key (the base64 of a P-256 public key)")
	}
	return errMismatch()
}
