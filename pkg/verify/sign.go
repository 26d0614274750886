package verify

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"time"
)

// ErrCannotSign is returned by Sign for a scheme whose configured secret
// cannot make a signature: SendGrid's, where inlet holds only the public
// verification key and SendGrid the private key.
var ErrCannotSign = errors.New("this scheme's secret is a public key: only the sender can sign")

// Sign returns the headers a sender of scheme c adds to request r, signed
// with secret at r.Now (time.Now() when zero): the mirror of Verify, so that
// Verify(c with secret, r with the headers) is nil. It is a pure function,
// like Verify.
//
// Values r.Header already has for the parts a scheme signs are kept and
// signed: a Standard Webhooks webhook-id (else one is derived from the
// timestamp and the body), an X-Webhook-ID for the timestamped scheme. For
// Twilio, r.URL must be the URL the request is sent to; a URL with a
// bodySHA256 query parameter signs the URL alone (JSON bodies), any other
// signs the URL and the form parameters of the body. It fails with a *Error
// for an unknown preset or algorithm or an empty secret, and with
// ErrCannotSign for sendgrid.
func Sign(c Config, secret []byte, r Request) (map[string]string, error) {
	if _, ok := schemes[c.Preset]; !ok {
		return nil, fail(ReasonUnknownPreset, "unknown signature preset %q", c.Preset)
	}
	if len(secret) == 0 {
		return nil, fail(ReasonNoSecret, "no signing secret is configured")
	}
	if r.Header == nil {
		r.Header = noHeader{}
	}
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	ts := strconv.FormatInt(r.Now.Unix(), 10)
	hexSum := func(alg algorithm, parts ...[]byte) string { return hex.EncodeToString(sum(alg, secret, parts...)) }
	b64Sum := func(alg algorithm, parts ...[]byte) string {
		return base64.StdEncoding.EncodeToString(sum(alg, secret, parts...))
	}
	switch c.Preset {
	case "", "hmac":
		alg, err := configuredAlgorithm(c)
		if err != nil {
			return nil, err
		}
		name := c.Header
		if name == "" {
			name = "X-Webhook-Signature"
		}
		return map[string]string{name: alg.name + "=" + hexSum(alg, r.Body)}, nil
	case "github":
		return map[string]string{"X-Hub-Signature-256": "sha256=" + hexSum(algSHA256, r.Body)}, nil
	case "stripe":
		return map[string]string{"Stripe-Signature": "t=" + ts + ",v1=" + hexSum(algSHA256, []byte(ts), []byte("."), r.Body)}, nil
	case "slack":
		return map[string]string{
			"X-Slack-Request-Timestamp": ts,
			"X-Slack-Signature":         "v0=" + hexSum(algSHA256, []byte("v0:"), []byte(ts), []byte(":"), r.Body),
		}, nil
	case "shopify":
		return map[string]string{"X-Shopify-Hmac-Sha256": b64Sum(algSHA256, r.Body)}, nil
	case "gitlab":
		// GitLab's plain token; a signing token would sign as Standard
		// Webhooks, which the preset accepts too.
		return map[string]string{"X-Gitlab-Token": string(secret)}, nil
	case "standard-webhooks", "svix":
		names := standardNames
		if c.Preset == "svix" {
			names = svixNames
		}
		id := header(r.Header, names.id)
		if id == "" {
			d := sha256.Sum256(append([]byte(ts+"."), r.Body...))
			id = "msg_" + hex.EncodeToString(d[:12])
		}
		sig := standardSignature(standardKey(secret), id, ts, r.Body)
		return map[string]string{
			names.id:        id,
			names.timestamp: ts,
			names.signature: "v1," + base64.StdEncoding.EncodeToString(sig),
		}, nil
	case "twilio":
		if r.URL == "" {
			return nil, fail(ReasonMissing, "request URL is unknown, and Twilio signatures cover it")
		}
		var params []formParam
		if _, hashed, ok := queryParam(r.URL, "bodySHA256"); !ok {
			return nil, fail(ReasonMalformed, "URL has more than one or a badly escaped bodySHA256 parameter")
		} else if !hashed {
			var err error
			if params, err = parseTwilioForm(r.Body); err != nil {
				return nil, fail(ReasonMalformed, "body is not a valid form: %v", err)
			}
		}
		m := hmac.New(sha1.New, secret)
		m.Write([]byte(r.URL))
		for _, p := range params {
			m.Write([]byte(p.name))
			m.Write([]byte(p.value))
		}
		return map[string]string{"X-Twilio-Signature": base64.StdEncoding.EncodeToString(m.Sum(nil))}, nil
	case "sendgrid":
		return nil, ErrCannotSign
	case "timestamped":
		alg, err := configuredAlgorithm(c)
		if err != nil {
			return nil, err
		}
		h := map[string]string{
			"X-Webhook-Timestamp": ts,
			"X-Webhook-Signature": alg.name + "=" + hexSum(alg, []byte(ts), []byte("."), r.Body),
		}
		if id := header(r.Header, "X-Webhook-ID"); id != "" {
			h["X-Webhook-ID"] = id
		}
		return h, nil
	}
	return nil, fail(ReasonUnknownPreset, "signing with preset %q is not supported", c.Preset)
}

// BodySHA256 returns the hex SHA-256 of body: the bodySHA256 query
// parameter of a Twilio request with a JSON body.
func BodySHA256(body []byte) string {
	d := sha256.Sum256(body)
	return hex.EncodeToString(d[:])
}
