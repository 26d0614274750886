package verify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func defaultCases() []verifyCase {
	b := newBuilder(defaultScheme())
	cur := b.st.secrets[0]
	body := b.st.body
	hex256 := hex.EncodeToString(mac(sha256.New, cur, string(body)))
	hex1 := hex.EncodeToString(mac(sha1.New, cur, string(body)))
	hex512 := hex.EncodeToString(mac(sha512.New, cur, string(body)))
	for _, m := range []string{hex256, hex1, hex512} {
		raw, _ := hex.DecodeString(m)
		b.record(raw)
	}
	with := func(alg string, kv ...string) (Config, Request) {
		c := b.cfg(cur)
		c.Algorithm = alg
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return c, b.req(h, body)
	}
	row := func(name, alg string, want Reason, kv ...string) verifyCase {
		c, r := with(alg, kv...)
		return verifyCase{name: name, cfg: c, req: r, want: want}
	}
	custom := func(name, header string, want Reason, kv ...string) verifyCase {
		tc := row(name, "", want, kv...)
		tc.cfg.Header = header
		return tc
	}
	alias := row("hmac alias", "", "", "X-Webhook-Signature", "sha256="+hex256)
	alias.cfg.Preset = "hmac"
	cases := append(b.common(), alias,
		row("bare hex", "", "", "X-Webhook-Signature", hex256),
		row("upper-case hex", "", "", "X-Webhook-Signature", "sha256="+strings.ToUpper(hex256)),
		row("upper-case prefix", "", "", "X-Webhook-Signature", "SHA256="+hex256),
		row("surrounding spaces", "", "", "X-Webhook-Signature", "  sha256="+hex256+" "),
		row("explicit sha256", "SHA256", "", "X-Webhook-Signature", "sha256="+hex256),
		row("X-Hub-Signature-256", "", "", "X-Hub-Signature-256", "sha256="+hex256),
		row("X-Signature", "", "", "X-Signature", hex256),
		row("X-Webhook-Signature wins over X-Hub-Signature-256", "", ReasonMismatch,
			"X-Webhook-Signature", "sha256="+strings.Repeat("0", 64), "X-Hub-Signature-256", "sha256="+hex256),
		row("sha1 in X-Hub-Signature", "sha1", "", "X-Hub-Signature", "sha1="+hex1),
		row("sha1 prefers X-Hub-Signature over X-Hub-Signature-256", "sha1", "",
			"X-Hub-Signature-256", "sha256="+hex256, "X-Hub-Signature", "sha1="+hex1),
		row("sha256 prefers X-Hub-Signature-256 over X-Hub-Signature", "", "",
			"X-Hub-Signature-256", "sha256="+hex256, "X-Hub-Signature", "sha1="+hex1),
		row("sha1 signature when sha256 is configured", "", ReasonMismatch, "X-Hub-Signature", "sha1="+hex1),
		row("sha256 prefix when sha1 is configured", "sha1", ReasonMismatch, "X-Webhook-Signature", "sha256="+hex1),
		row("bare sha1 hex when sha256 is configured", "", ReasonMalformed, "X-Hub-Signature", hex1),
		row("sha512", "sha512", "", "X-Webhook-Signature", "sha512="+hex512),
		row("sha512 bare", "sha512", "", "X-Signature", hex512),
		row("sha512 signature truncated", "sha512", ReasonMalformed, "X-Webhook-Signature", "sha512="+hex512[:64]),
		row("unknown prefix", "", ReasonMalformed, "X-Webhook-Signature", "md5="+hex256),
		row("empty prefix", "", ReasonMalformed, "X-Webhook-Signature", "="+hex256),
		row("prefix only", "", ReasonMalformed, "X-Webhook-Signature", "sha256="),
		row("odd hex length", "", ReasonMalformed, "X-Webhook-Signature", hex256[1:]),
		row("too long", "", ReasonMalformed, "X-Webhook-Signature", hex256+hex256+hex256),
		row("unknown algorithm configured", "md5", ReasonUnknownPreset, "X-Webhook-Signature", hex256),
		row("two signatures, the second right", "", "", "X-Webhook-Signature", "sha256="+strings.Repeat("0", 64)+", sha256="+hex256),
		row("two signatures, the first right", "", "", "X-Signature", hex256+","+strings.Repeat("1", 64)),
		row("two wrong signatures", "", ReasonMismatch, "X-Webhook-Signature", "sha256="+strings.Repeat("0", 64)+",sha256="+strings.Repeat("1", 64)),
		row("a malformed and a wrong signature", "", ReasonMismatch, "X-Webhook-Signature", "sha256=xyz,sha256="+strings.Repeat("1", 64)),
		row("the right one after sixteen", "", ReasonMismatch, "X-Webhook-Signature", strings.Repeat(strings.Repeat("0", 64)+",", 16)+hex256),
		custom("custom header", "X-Acme-Signature", "", "X-Acme-Signature", "sha256="+hex256),
		custom("custom header is the only one read", "X-Acme-Signature", ReasonMissing, "X-Webhook-Signature", "sha256="+hex256),
	)
	return b.finish(cases)
}

func TestDefault(t *testing.T) { runCases(t, defaultCases()) }

func githubCases() []verifyCase {
	b := newBuilder(githubScheme())
	cases := append(b.common(),
		verifyCase{name: "legacy sha1 header only", cfg: b.cfg(b.st.secrets[0]), req: b.without("X-Hub-Signature-256")},
		verifyCase{name: "sha256 header preferred over a valid sha1 one", cfg: b.cfg(b.st.secrets[0]),
			req: b.with("X-Hub-Signature-256", "sha256="+strings.Repeat("ab", 32)), want: ReasonMismatch},
		verifyCase{name: "sha1 value in the sha256 header", cfg: b.cfg(b.st.secrets[0]),
			req: b.with("X-Hub-Signature-256", "sha1="+strings.Repeat("ab", 20)), want: ReasonMismatch},
		verifyCase{name: "algorithm setting ignored", cfg: Config{Preset: "github", Algorithm: "sha512", Secrets: [][]byte{b.st.secrets[0]}}, req: b.valid()},
	)
	return b.finish(cases)
}

func TestGitHub(t *testing.T) { runCases(t, githubCases()) }

func stripeCases() []verifyCase {
	b := newBuilder(stripeScheme())
	cur := b.st.secrets[0]
	now := testNow.Unix()
	valid := b.valid().Header.Get("Stripe-Signature") // t=...,v1=...
	ts, v1, _ := strings.Cut(valid, ",")
	other := "v1=" + strings.Repeat("ab", 32)
	oldV1 := strings.Replace(b.sign(b.st.secrets[1], b.st.body, now).Get("Stripe-Signature"), ts+",", "", 1)
	set := func(name, value string, want Reason) verifyCase {
		return verifyCase{name: name, cfg: b.cfg(cur), req: b.with("Stripe-Signature", value), want: want}
	}
	cases := append(b.common(),
		set("second of two v1 signatures", ts+","+other+","+v1, ""),
		set("rolled endpoint secret sends old and new v1", ts+","+oldV1+","+v1, ""),
		set("v0 ignored", ts+","+v1+",v0="+strings.Repeat("cd", 32), ""),
		set("only v0", ts+",v0="+strings.TrimPrefix(v1, "v1="), ReasonMalformed),
		set("unknown elements ignored", "scheme=x,"+ts+","+v1, ""),
		set("spaces after commas", ts+", "+v1, ""),
		set("signature first", v1+","+ts, ""),
		set("trailing comma", ts+","+v1+",", ""),
		set("upper-case V1 key is not v1", ts+","+strings.ToUpper(v1), ReasonMalformed),
		set("upper-case hex digits", ts+",v1="+strings.ToUpper(strings.TrimPrefix(v1, "v1=")), ""),
		set("no timestamp", v1, ReasonMalformed),
		set("two timestamps", ts+","+ts+","+v1, ReasonMalformed),
		set("negative timestamp", "t=-1,"+v1, ReasonMalformed),
		set("timestamp not a number", "t=now,"+v1, ReasonMalformed),
		set("element without =", ts+","+v1+",garbage", ReasonMalformed),
		set("short v1 ignored", ts+",v1=abcd", ReasonMalformed),
		set("v1 not hex ignored", ts+",v1="+strings.Repeat("zz", 32)+","+v1, ""),
		set("timestamp changed", "t="+strconv.FormatInt(now-1, 10)+","+v1, ReasonMismatch),
		set("valid signature beyond the first 16 is ignored", ts+","+strings.Repeat(other+",", maxSignatures)+v1, ReasonMismatch),
		set("valid signature as the 16th", ts+","+strings.Repeat(other+",", maxSignatures-1)+v1, ""),
	)
	return b.finish(cases)
}

func TestStripe(t *testing.T) { runCases(t, stripeCases()) }

func slackCases() []verifyCase {
	b := newBuilder(slackScheme())
	cur := b.st.secrets[0]
	set := func(name, header, value string, want Reason) verifyCase {
		return verifyCase{name: name, cfg: b.cfg(cur), req: b.with(header, value), want: want}
	}
	sig := b.valid().Header.Get("X-Slack-Signature")
	cases := append(b.common(),
		verifyCase{name: "missing timestamp", cfg: b.cfg(cur), req: b.without("X-Slack-Request-Timestamp"), want: ReasonMissing},
		set("timestamp not a number", "X-Slack-Request-Timestamp", "1700000000.5", ReasonMalformed),
		set("timestamp changed", "X-Slack-Request-Timestamp", "1700000001", ReasonMismatch),
		set("wrong version", "X-Slack-Signature", "v1="+strings.TrimPrefix(sig, "v0="), ReasonMalformed),
		set("bare hex", "X-Slack-Signature", strings.TrimPrefix(sig, "v0="), ReasonMalformed),
		set("upper-case hex", "X-Slack-Signature", "v0="+strings.ToUpper(strings.TrimPrefix(sig, "v0=")), ""),
	)
	return b.finish(cases)
}

func TestSlack(t *testing.T) { runCases(t, slackCases()) }

func shopifyCases() []verifyCase {
	b := newBuilder(shopifyScheme())
	cur := b.st.secrets[0]
	sig := b.valid().Header.Get("X-Shopify-Hmac-Sha256")
	events := b.without("X-Shopify-Hmac-Sha256")
	events.Header.(http.Header).Set("Shopify-Hmac-Sha256", sig)
	raw, _ := base64.StdEncoding.DecodeString(sig)
	cases := append(b.common(),
		verifyCase{name: "Shopify-Hmac-Sha256 (Events delivery)", cfg: b.cfg(cur), req: events},
		verifyCase{name: "hex instead of base64", cfg: b.cfg(cur), req: b.with("X-Shopify-Hmac-Sha256", hex.EncodeToString(raw)), want: ReasonMalformed},
		verifyCase{name: "unpadded base64", cfg: b.cfg(cur), req: b.with("X-Shopify-Hmac-Sha256", strings.TrimRight(sig, "=")), want: ReasonMalformed},
		verifyCase{name: "base64 of a sha1 digest", cfg: b.cfg(cur), req: b.with("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(raw[:20])), want: ReasonMalformed},
	)
	return b.finish(cases)
}

func TestShopify(t *testing.T) { runCases(t, shopifyCases()) }

func gitlabCases() []verifyCase {
	tok := newBuilder(gitlabTokenScheme())
	cur := tok.st.secrets[0]
	cases := tok.finish(append(tok.common(),
		verifyCase{name: "token with trailing text", cfg: tok.cfg(cur), req: tok.with("X-Gitlab-Token", string(cur)+"x"), want: ReasonMismatch},
		verifyCase{name: "token prefix", cfg: tok.cfg(cur), req: tok.with("X-Gitlab-Token", string(cur[:len(cur)-1])), want: ReasonMismatch},
		verifyCase{name: "token case differs", cfg: tok.cfg(cur), req: tok.with("X-Gitlab-Token", strings.ToUpper(string(cur))), want: ReasonMismatch},
	))
	for i := range cases {
		cases[i].name = "token/" + cases[i].name
	}
	sig := newBuilder(gitlabSignedScheme())
	wcur := sig.st.secrets[0]
	both := sig.valid()
	both.Header.(http.Header).Set("X-Gitlab-Token", "some-plain-token")
	badSig := sig.with("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32)))
	badSig.Header.(http.Header).Set("X-Gitlab-Token", string(wcur))
	signed := sig.finish(append(sig.common(),
		verifyCase{name: "signed with a token header too", cfg: sig.cfg(wcur, []byte("some-plain-token")), req: both},
		verifyCase{name: "bad signature does not fall back to the token", cfg: sig.cfg(wcur), req: badSig, want: ReasonMismatch},
		verifyCase{name: "missing webhook-id", cfg: sig.cfg(wcur), req: sig.without("webhook-id"), want: ReasonMissing},
		verifyCase{name: "svix spelling is not GitLab's", cfg: sig.cfg(wcur), req: svixRename(sig.valid()), want: ReasonMissing},
	))
	for i := range signed {
		signed[i].name = "signed/" + signed[i].name
	}
	return append(cases, signed...)
}

// svixRename moves webhook-* headers to their svix-* names.
func svixRename(r Request) Request {
	h := r.Header.(http.Header)
	for _, n := range []string{"id", "timestamp", "signature"} {
		h.Set("svix-"+n, h.Get("webhook-"+n))
		h.Del("webhook-" + n)
	}
	return r
}

func TestGitLab(t *testing.T) { runCases(t, gitlabCases()) }

func standardCases() []verifyCase {
	b := newBuilder(standardScheme("standard-webhooks", standardNames))
	cur := b.st.secrets[0]
	sig := b.valid().Header.Get("webhook-signature")
	other := "v1," + base64.StdEncoding.EncodeToString(make([]byte, 32))
	set := func(name, header, value string, want Reason) verifyCase {
		return verifyCase{name: name, cfg: b.cfg(cur), req: b.with(header, value), want: want}
	}
	noPrefix := []byte(strings.TrimPrefix(string(cur), "whsec_"))
	rawSecret := []byte("not base64: a raw secret!")
	rawReq := b.valid()
	{
		h := rawReq.Header.(http.Header)
		m := mac(sha256.New, rawSecret, h.Get("webhook-id"), ".", h.Get("webhook-timestamp"), ".", string(rawReq.Body))
		b.record(m)
		b.forbid = append(b.forbid, string(rawSecret))
		h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(m))
	}
	cases := append(b.common(),
		set("several signatures, last valid", "webhook-signature", other+" v1a,abc "+sig, ""),
		set("double spaces", "webhook-signature", other+"  "+sig, ""),
		set("v1a only", "webhook-signature", "v1a,"+strings.TrimPrefix(sig, "v1,"), ReasonMalformed),
		set("v2 only", "webhook-signature", "v2,"+strings.TrimPrefix(sig, "v1,"), ReasonMalformed),
		set("comma-separated instead of spaces", "webhook-signature", other+","+sig, ReasonMalformed),
		set("unpadded base64", "webhook-signature", strings.TrimRight(sig, "="), ReasonMalformed),
		set("valid signature beyond the first 16 is ignored", "webhook-signature", strings.Repeat(other+" ", maxSignatures)+sig, ReasonMismatch),
		set("valid signature as the 16th", "webhook-signature", strings.Repeat(other+" ", maxSignatures-1)+sig, ""),
		set("id changed", "webhook-id", "msg_other", ReasonMismatch),
		set("id with a dot", "webhook-id", "msg.1", ReasonMalformed),
		set("timestamp changed", "webhook-timestamp", strconv.FormatInt(testNow.Unix()+1, 10), ReasonMismatch),
		set("timestamp not a number", "webhook-timestamp", "2023-11-14T22:13:20Z", ReasonMalformed),
		verifyCase{name: "missing webhook-id", cfg: b.cfg(cur), req: b.without("webhook-id"), want: ReasonMissing},
		verifyCase{name: "missing webhook-timestamp", cfg: b.cfg(cur), req: b.without("webhook-timestamp"), want: ReasonMissing},
		verifyCase{name: "svix spelling", cfg: b.cfg(cur), req: svixRename(b.valid())},
		verifyCase{name: "secret without whsec_ prefix", cfg: b.cfg(noPrefix), req: b.valid()},
		verifyCase{name: "secret that is not base64 is used raw", cfg: b.cfg(rawSecret), req: rawReq},
	)
	return b.finish(cases)
}

func TestStandardWebhooks(t *testing.T) { runCases(t, standardCases()) }

func svixCases() []verifyCase {
	b := newBuilder(standardScheme("svix", svixNames))
	cur := b.st.secrets[0]
	cases := append(b.common(),
		verifyCase{name: "missing svix-timestamp", cfg: b.cfg(cur), req: b.without("svix-timestamp"), want: ReasonMissing},
	)
	return b.finish(cases)
}

func TestSvix(t *testing.T) { runCases(t, svixCases()) }

func twilioCases() []verifyCase {
	b := newBuilder(twilioScheme())
	cur := b.st.secrets[0]
	st := b.st
	// signURL signs body posted to rawURL; the request is sent to sentURL.
	signURL := func(rawURL, sentURL string, body []byte) Request {
		payload, err := twilioTestPayload(rawURL, body)
		if err != nil {
			panic(err)
		}
		m := mac(sha1.New, cur, payload)
		b.record(m)
		h := http.Header{}
		h.Set("X-Twilio-Signature", base64.StdEncoding.EncodeToString(m))
		return Request{Header: h, Body: body, URL: sentURL, Now: testNow}
	}
	const (
		noPort   = "https://inlet.example.com/hook?x=1"
		withPort = "https://inlet.example.com:443/hook?x=1"
	)
	jsonURL := func(body string) string {
		sum := sha256.Sum256([]byte(body))
		return "https://inlet.example.com/hook?bodySHA256=" + hex.EncodeToString(sum[:])
	}
	jsonReq := func(signedURL, sentURL, body string) Request {
		r := signURL(signedURL, sentURL, nil)
		r.Body = []byte(body)
		r.Header.(http.Header).Set("Content-Type", "application/json")
		return r
	}
	wrongHash := "https://inlet.example.com/hook?bodySHA256=" + strings.Repeat("0", 64)
	noURL := b.valid()
	noURL.URL = ""
	cases := append(b.common(),
		verifyCase{name: "signed without port, received with :443", cfg: b.cfg(cur), req: signURL(noPort, withPort, st.body)},
		verifyCase{name: "signed with :443, received without", cfg: b.cfg(cur), req: signURL(withPort, noPort, st.body)},
		verifyCase{name: "http with :80", cfg: b.cfg(cur), req: signURL("http://inlet.example.com:80/hook", "http://inlet.example.com/hook", st.body)},
		verifyCase{name: "http signed with :80, received without", cfg: b.cfg(cur), req: signURL("http://inlet.example.com/hook", "http://inlet.example.com:80/hook", st.body)},
		verifyCase{name: "other port is not stripped", cfg: b.cfg(cur), req: signURL(noPort, "https://inlet.example.com:8443/hook?x=1", st.body), want: ReasonMismatch},
		verifyCase{name: "userinfo in the URL", cfg: b.cfg(cur), req: signURL("https://u:p@inlet.example.com:443/hook", "https://u:p@inlet.example.com/hook", st.body)},
		verifyCase{name: "IPv6 host", cfg: b.cfg(cur), req: signURL("https://[2001:db8::1]:443/hook", "https://[2001:db8::1]/hook", st.body)},
		verifyCase{name: "different path", cfg: b.cfg(cur), req: signURL(noPort, "https://inlet.example.com/other?x=1", st.body), want: ReasonMismatch},
		verifyCase{name: "different query", cfg: b.cfg(cur), req: signURL(noPort, "https://inlet.example.com/hook?x=2", st.body), want: ReasonMismatch},
		verifyCase{name: "GET without body", cfg: b.cfg(cur), req: signURL(noPort, noPort, nil)},
		verifyCase{name: "parameter order does not matter", cfg: b.cfg(cur), req: func() Request {
			r := signURL(noPort, noPort, []byte("b=2&a=1&a=0"))
			r.Body = []byte("a=1&a=0&b=2")
			return r
		}()},
		verifyCase{name: "repeated identical pair", cfg: b.cfg(cur), req: signURL(noPort, noPort, []byte("a=1&a=1&b=2"))},
		verifyCase{name: "parameter moved into the query", cfg: b.cfg(cur), req: func() Request {
			r := signURL(noPort, noPort, []byte("a=1&b=2"))
			r.URL, r.Body = noPort+"&a=1", []byte("b=2")
			return r
		}(), want: ReasonMismatch},
		verifyCase{name: "bad escape in the body", cfg: b.cfg(cur), req: func() Request {
			r := b.valid()
			r.Body = append(r.Body, "&bad=%zz"...)
			return r
		}(), want: ReasonMalformed},
		verifyCase{name: "no URL", cfg: b.cfg(cur), req: noURL, want: ReasonMissing},
		verifyCase{name: "JSON body with bodySHA256", cfg: b.cfg(cur), req: jsonReq(jsonURL(jsonBody), jsonURL(jsonBody), jsonBody)},
		verifyCase{name: "JSON body with bodySHA256 and :443", cfg: b.cfg(cur), req: jsonReq(jsonURL(jsonBody), strings.Replace(jsonURL(jsonBody), ".com/", ".com:443/", 1), jsonBody)},
		verifyCase{name: "JSON body tampered", cfg: b.cfg(cur), req: jsonReq(jsonURL(jsonBody), jsonURL(jsonBody), jsonBody+" "), want: ReasonMismatch},
		verifyCase{name: "JSON body with a signed but wrong bodySHA256", cfg: b.cfg(cur), req: jsonReq(wrongHash, wrongHash, jsonBody), want: ReasonMismatch},
		verifyCase{name: "bodySHA256 not hex", cfg: b.cfg(cur), req: jsonReq(noPort+"&bodySHA256=xyz", noPort+"&bodySHA256=xyz", jsonBody), want: ReasonMalformed},
		verifyCase{name: "bodySHA256 twice", cfg: b.cfg(cur), req: jsonReq(jsonURL(jsonBody)+"&bodySHA256=00", jsonURL(jsonBody)+"&bodySHA256=00", jsonBody), want: ReasonMalformed},
		verifyCase{name: "JSON body without bodySHA256", cfg: b.cfg(cur), req: jsonReq(noPort, noPort, jsonBody), want: ReasonMismatch},
	)
	return b.finish(cases)
}

func TestTwilio(t *testing.T) { runCases(t, twilioCases()) }

func timestampedCases() []verifyCase {
	b := newBuilder(timestampedScheme())
	cur := b.st.secrets[0]
	h := b.valid().Header
	ts := h.Get("X-Webhook-Timestamp")
	m512 := mac(sha512.New, cur, ts, ".", string(b.st.body))
	b.record(m512)
	sha512Cfg := b.cfg(cur)
	sha512Cfg.Algorithm = "sha512"
	set := func(name, header, value string, want Reason) verifyCase {
		return verifyCase{name: name, cfg: b.cfg(cur), req: b.with(header, value), want: want}
	}
	cases := append(b.common(),
		verifyCase{name: "missing timestamp", cfg: b.cfg(cur), req: b.without("X-Webhook-Timestamp"), want: ReasonMissing},
		set("bare hex", "X-Webhook-Signature", strings.TrimPrefix(h.Get("X-Webhook-Signature"), "sha256="), ""),
		set("timestamp changed", "X-Webhook-Timestamp", strconv.FormatInt(testNow.Unix()-1, 10), ReasonMismatch),
		set("timestamp not a number", "X-Webhook-Timestamp", "yesterday", ReasonMalformed),
		set("timestamp in milliseconds", "X-Webhook-Timestamp", strconv.FormatInt(testNow.UnixMilli(), 10), ReasonMismatch),
		verifyCase{name: "sha512", cfg: sha512Cfg, req: b.with("X-Webhook-Signature", "sha512="+hex.EncodeToString(m512))},
		verifyCase{name: "sha256 prefix when sha512 is configured", cfg: sha512Cfg, req: b.valid(), want: ReasonMismatch},
	)
	return b.finish(cases)
}

func TestTimestamped(t *testing.T) { runCases(t, timestampedCases()) }

// sendgridWellFormed is a well-formed SendGrid signature, made by a key no
// case configures (testdata/sendgrid/sig-a.b64).
const sendgridWellFormed = "MEQCIE1+XV7G7/iUAW9af+Z0VHmbDx2SyZRrw82ZQ6twhfWfAiBvo+jPNlhuUeKQw4PmrTi77RvINA3Kx/Cxz4dULCytkw=="

// negateS returns the DER ECDSA signature sig over P-256 with S replaced by
// n - S: the other signature ECDSA accepts for the same message, with a high
// S when sig's is low and the reverse.
func negateS(sig []byte) []byte {
	var v struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(sig, &v); err != nil {
		panic(err)
	}
	v.S.Sub(elliptic.P256().Params().N, v.S)
	der, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return der
}

// spkiBase64 returns the base64 DER SubjectPublicKeyInfo of pub.
func spkiBase64(pub any) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return []byte(base64.StdEncoding.EncodeToString(der))
}

func sendgridCases() []verifyCase {
	b := newBuilder(sendgridScheme())
	cur, wrong := b.st.secrets[0], b.st.secrets[2]
	body := b.st.body
	ts := strconv.FormatInt(testNow.Unix(), 10)
	priv, _ := sendgridTestKeys()
	sig := sendgridTestSign(priv[0], ts, body)
	b.record(sig)
	b64 := base64.StdEncoding.EncodeToString
	with := func(name string, v []byte) verifyCase {
		return verifyCase{name: name, cfg: b.cfg(cur), req: b.with("X-Twilio-Email-Event-Webhook-Signature", b64(v))}
	}
	signed := func(name string, v []byte, want Reason) verifyCase {
		tc := with(name, v)
		tc.want = want
		b.record(v)
		return tc
	}
	secrets := func(name string, want Reason, secrets ...[]byte) verifyCase {
		return verifyCase{name: name, cfg: b.cfg(secrets...), req: b.req(b.sign(cur, body, testNow.Unix()), body), want: want}
	}
	set := func(name, header, value string, want Reason) verifyCase {
		return verifyCase{name: name, cfg: b.cfg(cur), req: b.with(header, value), want: want}
	}

	der, _ := base64.StdEncoding.DecodeString(string(cur))
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	certLabel := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	wrapped := string(cur[:64]) + "\n" + string(cur[64:]) + "\n"
	p384, err := ecdsa.ParseRawPrivateKey(elliptic.P384(), bytes.Repeat([]byte{0x1a}, 48))
	if err != nil {
		panic(err)
	}
	ed := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x1a}, ed25519.SeedSize)).Public()
	var sigVal struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(sig, &sigVal); err != nil {
		panic(err)
	}
	encode := func(r, s *big.Int) []byte {
		der, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
		if err != nil {
			panic(err)
		}
		return der
	}
	n := elliptic.P256().Params().N
	algo := b.cfg(cur)
	algo.Algorithm = "sha512"
	dotted := sendgridTestSign(priv[0], ts+".", body)
	bodyOnly := sendgridTestSign(priv[0], "", body)
	b.record(dotted)
	b.record(bodyOnly)

	cases := append(b.common(),
		verifyCase{name: "missing timestamp", cfg: b.cfg(cur), req: b.without("X-Twilio-Email-Event-Webhook-Timestamp"), want: ReasonMissing},
		set("timestamp changed", "X-Twilio-Email-Event-Webhook-Timestamp", strconv.FormatInt(testNow.Unix()-1, 10), ReasonMismatch),
		set("timestamp not a number", "X-Twilio-Email-Event-Webhook-Timestamp", "yesterday", ReasonMalformed),
		set("timestamp in milliseconds", "X-Twilio-Email-Event-Webhook-Timestamp", strconv.FormatInt(testNow.UnixMilli(), 10), ReasonMismatch),
		with("the signature the cases below alter", sig),
		signed("twin with n - s accepted, high S or low", negateS(sig), ""),
		signed("signed with a dot after the timestamp", dotted, ReasonMismatch),
		signed("signed without the timestamp", bodyOnly, ReasonMismatch),
		signed("r and s swapped", encode(sigVal.S, sigVal.R), ReasonMismatch),
		signed("s is n", encode(sigVal.R, n), ReasonMismatch),
		signed("s is zero", encode(sigVal.R, big.NewInt(0)), ReasonMalformed),
		signed("s negative", encode(sigVal.R, new(big.Int).Neg(sigVal.S)), ReasonMalformed),
		signed("trailing byte after the DER", append(slices.Clone(sig), 0), ReasonMalformed),
		signed("DER cut short", sig[:len(sig)-1], ReasonMalformed),
		signed("not DER", []byte("a signature, not DER"), ReasonMalformed),
		signed("raw r||s instead of DER", append(sigVal.R.FillBytes(make([]byte, 32)), sigVal.S.FillBytes(make([]byte, 32))...), ReasonMalformed),
		signed("well-formed DER longer than a P-256 signature", encode(new(big.Int).Lsh(sigVal.R, 256), sigVal.S), ReasonMalformed),
		// The length of a DER signature varies; this one's base64 ends in
		// "==".
		set("unpadded base64", "X-Twilio-Email-Event-Webhook-Signature", strings.TrimSuffix(sendgridWellFormed, "=="), ReasonMalformed),
		set("URL-safe base64 characters", "X-Twilio-Email-Event-Webhook-Signature", base64.URLEncoding.EncodeToString(sig)+"-_", ReasonMalformed),
		set("hex instead of base64", "X-Twilio-Email-Event-Webhook-Signature", hex.EncodeToString(sig), ReasonMalformed),
		secrets("key in PEM", "", pemKey),
		secrets("key with surrounding spaces", "", []byte("  "+string(cur)+"\n")),
		secrets("key wrapped over lines", "", []byte(wrapped)),
		secrets("shared secret instead of a key", ReasonNoSecret, []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")),
		secrets("P-384 key", ReasonNoSecret, spkiBase64(&p384.PublicKey)),
		secrets("Ed25519 key", ReasonNoSecret, spkiBase64(ed)),
		secrets("PEM block of another type", ReasonNoSecret, certLabel),
		secrets("key with bytes after the DER", ReasonNoSecret, []byte(base64.StdEncoding.EncodeToString(append(slices.Clone(der), 0)))),
		secrets("key cut short", ReasonNoSecret, []byte(base64.StdEncoding.EncodeToString(der[:len(der)-1]))),
		secrets("unusable secret skipped", "", []byte("not a key"), cur),
		secrets("unusable secret and a wrong key", ReasonMismatch, []byte("not a key"), wrong),
		verifyCase{name: "algorithm setting ignored", cfg: algo, req: b.valid()},
	)
	return b.finish(cases)
}

func TestSendGrid(t *testing.T) { runCases(t, sendgridCases()) }

// allCases returns every scheme's table by scheme name.
func allCases() map[string][]verifyCase {
	return map[string][]verifyCase{
		"default":           defaultCases(),
		"github":            githubCases(),
		"stripe":            stripeCases(),
		"slack":             slackCases(),
		"shopify":           shopifyCases(),
		"gitlab":            gitlabCases(),
		"standard-webhooks": standardCases(),
		"svix":              svixCases(),
		"twilio":            twilioCases(),
		"sendgrid":          sendgridCases(),
		"timestamped":       timestampedCases(),
	}
}

func TestErrorTextHasNoSecrets(t *testing.T) {
	for scheme, cases := range allCases() {
		for _, tt := range cases {
			if tt.want == "" {
				continue
			}
			t.Run(scheme+"/"+tt.name, func(t *testing.T) {
				err := Verify(tt.cfg, tt.req)
				if err == nil {
					t.Fatalf("Verify() = nil, want reason %q", tt.want)
				}
				text := err.Error()
				for _, s := range tt.forbid {
					if len(s) >= 8 && strings.Contains(text, s) {
						t.Errorf("Verify() error %q contains the secret or signature %q", text, s)
					}
				}
				// Nothing resembling a digest may appear either: no
				// run of 16 or more hex digits.
				run := 0
				for _, c := range text {
					if strings.ContainsRune("0123456789abcdefABCDEF", c) {
						run++
					} else {
						run = 0
					}
					if run >= 16 {
						t.Fatalf("Verify() error %q contains a long hex run", text)
					}
				}
			})
		}
	}
}

func TestErrorDetails(t *testing.T) {
	secret := [][]byte{[]byte("It's a Secret to Everybody")}
	body := []byte("Hello, World!")
	stripeAt := func(ts int64) Header {
		t := strconv.FormatInt(ts, 10)
		return http.Header{"Stripe-Signature": {"t=" + t + ",v1=" + hex.EncodeToString(mac(sha256.New, secret[0], t, ".", string(body)))}}
	}
	_, keys := sendgridTestKeys()
	sendgridKeys := [][]byte{keys[0]}
	sendgridHeader := func(sig string) Header {
		return http.Header{
			"X-Twilio-Email-Event-Webhook-Signature": {sig},
			"X-Twilio-Email-Event-Webhook-Timestamp": {strconv.FormatInt(testNow.Unix(), 10)},
		}
	}
	tests := []struct {
		name string
		cfg  Config
		req  Request
		want string
	}{
		{
			name: "missing github header",
			cfg:  Config{Preset: "github", Secrets: secret},
			req:  Request{Header: http.Header{}, Body: body, Now: testNow},
			want: "missing X-Hub-Signature-256 header",
		},
		{
			name: "missing default header",
			cfg:  Config{Secrets: secret},
			req:  Request{Body: body, Now: testNow},
			want: "missing signature header: send one of X-Webhook-Signature, X-Hub-Signature-256, X-Hub-Signature or X-Signature",
		},
		{
			name: "missing custom header",
			cfg:  Config{Header: "X-Acme-Sig", Secrets: secret},
			req:  Request{Body: body, Now: testNow},
			want: "missing X-Acme-Sig header",
		},
		{
			name: "mismatch",
			cfg:  Config{Preset: "github", Secrets: secret},
			req:  Request{Header: http.Header{"X-Hub-Signature-256": {"sha256=" + strings.Repeat("0", 64)}}, Body: body, Now: testNow},
			want: "signature does not match",
		},
		{
			name: "algorithm mismatch",
			cfg:  Config{Secrets: secret},
			req:  Request{Header: http.Header{"X-Hub-Signature": {"sha1=" + strings.Repeat("0", 40)}}, Body: body, Now: testNow},
			want: "X-Hub-Signature header carries a sha1 signature, but sha256 is expected",
		},
		{
			name: "wrong length",
			cfg:  Config{Secrets: secret},
			req:  Request{Header: http.Header{"X-Signature": {strings.Repeat("0", 40)}}, Body: body, Now: testNow},
			want: "X-Signature header has 40 hex digits, a sha256 signature has 64",
		},
		{
			name: "stale",
			cfg:  Config{Preset: "stripe", Secrets: secret},
			req:  Request{Header: stripeAt(testNow.Unix() - 412), Body: body, Now: testNow},
			want: "timestamp is 412s older than the 300s tolerance",
		},
		{
			name: "stale by a fraction of a second",
			cfg:  Config{Preset: "stripe", Secrets: secret},
			req:  Request{Header: stripeAt(testNow.Unix() - 300), Body: body, Now: testNow.Add(time.Millisecond)},
			want: "timestamp is 301s older than the 300s tolerance",
		},
		{
			name: "future",
			cfg:  Config{Preset: "stripe", Secrets: secret},
			req:  Request{Header: stripeAt(testNow.Unix() + 1200), Body: body, Now: testNow},
			want: "timestamp is in the future by 20m0s, beyond the 300s tolerance",
		},
		{
			name: "custom tolerance",
			cfg:  Config{Preset: "stripe", Secrets: secret, Tolerance: 1500 * time.Millisecond},
			req:  Request{Header: stripeAt(testNow.Unix() - 2), Body: body, Now: testNow},
			want: "timestamp is 2s older than the 1.5s tolerance",
		},
		{
			name: "missing sendgrid timestamp",
			cfg:  Config{Preset: "sendgrid", Secrets: sendgridKeys},
			req:  Request{Header: http.Header{"X-Twilio-Email-Event-Webhook-Signature": {"MEUCIQ=="}}, Body: body, Now: testNow},
			want: "missing X-Twilio-Email-Event-Webhook-Timestamp header",
		},
		{
			name: "sendgrid signature not DER",
			cfg:  Config{Preset: "sendgrid", Secrets: sendgridKeys},
			req:  Request{Header: sendgridHeader("MEUCIQ=="), Body: body, Now: testNow},
			want: "X-Twilio-Email-Event-Webhook-Signature header is not a base64 DER ECDSA signature",
		},
		{
			name: "sendgrid secret that is not a key",
			cfg:  Config{Preset: "sendgrid", Secrets: secret},
			req:  Request{Header: sendgridHeader(sendgridWellFormed), Body: body, Now: testNow},
			want: "no configured secret is a SendGrid verification key (the base64 of a P-256 public key)",
		},
		{
			name: "no secret",
			cfg:  Config{Preset: "github"},
			req:  Request{Body: body, Now: testNow},
			want: "no signing secret is configured",
		},
		{
			name: "unknown preset",
			cfg:  Config{Preset: "paypal", Secrets: secret},
			req:  Request{Body: body, Now: testNow},
			want: `unknown signature preset "paypal"`,
		},
		{
			name: "unknown algorithm",
			cfg:  Config{Algorithm: "md5", Secrets: secret},
			req:  Request{Body: body, Now: testNow},
			want: `unknown signature algorithm "md5"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.cfg, tt.req)
			if err == nil {
				t.Fatalf("Verify() = nil, want %q", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Verify() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestZeroNowMeansCurrentTime(t *testing.T) {
	secret := []byte("s3cret-for-the-clock-test")
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	body := []byte("{}")
	h := http.Header{}
	h.Set("Stripe-Signature", "t="+ts+",v1="+hex.EncodeToString(mac(sha256.New, secret, ts, ".", string(body))))
	if err := Verify(Config{Preset: "stripe", Secrets: [][]byte{secret}}, Request{Header: h, Body: body}); err != nil {
		t.Errorf("Verify() with zero Now = %v, want nil", err)
	}
}

func TestVerifyDoesNotModifySecrets(t *testing.T) {
	secrets := [][]byte{nil, []byte("a"), {}}
	want := fmt.Sprint(secrets)
	_ = Verify(Config{Secrets: secrets}, Request{})
	if got := fmt.Sprint(secrets); got != want {
		t.Errorf("Secrets after Verify = %s, want %s", got, want)
	}
}

func TestKnownPreset(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"", true},
		{"hmac", true},
		{"github", true},
		{"stripe", true},
		{"slack", true},
		{"shopify", true},
		{"gitlab", true},
		{"standard-webhooks", true},
		{"svix", true},
		{"twilio", true},
		{"sendgrid", true},
		{"timestamped", true},
		{"SendGrid", false},
		{"GitHub", false},
		{"paypal", false},
		{" github", false},
	}
	for _, tt := range tests {
		if got := KnownPreset(tt.name); got != tt.want {
			t.Errorf("KnownPreset(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestPresets(t *testing.T) {
	got := Presets()
	want := []string{"github", "gitlab", "hmac", "sendgrid", "shopify", "slack", "standard-webhooks", "stripe", "svix", "timestamped", "twilio"}
	if !slices.Equal(got, want) {
		t.Errorf("Presets() = %q, want %q", got, want)
	}
	for _, name := range got {
		if !KnownPreset(name) {
			t.Errorf("KnownPreset(%q) = false for a name Presets() lists", name)
		}
	}
	got[0] = "changed"
	if Presets()[0] != "github" {
		t.Errorf("Presets() shares its slice between calls")
	}
}

func TestDefaultDeliveryID(t *testing.T) {
	tests := []struct {
		preset string
		want   string
	}{
		{"", ""},
		{"hmac", ""},
		{"github", "X-GitHub-Delivery"},
		{"stripe", "$.id"},
		{"slack", "$.event_id"},
		{"shopify", "X-Shopify-Event-Id"},
		{"gitlab", "Idempotency-Key"},
		{"standard-webhooks", "webhook-id"},
		{"svix", "svix-id"},
		{"twilio", "I-Twilio-Idempotency-Token"},
		{"sendgrid", ""},
		{"timestamped", "X-Webhook-ID"},
		{"paypal", ""},
	}
	for _, tt := range tests {
		if got := DefaultDeliveryID(tt.preset); got != tt.want {
			t.Errorf("DefaultDeliveryID(%q) = %q, want %q", tt.preset, got, tt.want)
		}
	}
}
