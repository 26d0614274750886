package verify

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestVectors checks the senders' published test vectors, and values derived
// from the same inputs where a sender publishes none (marked "derived": not
// official, computed independently).
func TestVectors(t *testing.T) {
	// GitHub: https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
	// ("Testing the webhook payload validation").
	githubSecret := [][]byte{[]byte("It's a Secret to Everybody")}
	githubBody := []byte("Hello, World!")
	const githubSHA256 = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	// Derived, not official: the GitHub inputs under sha1 and sha512.
	const derivedSHA1 = "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59"
	const derivedSHA512 = "11ed355a617e98134e842012a7944ccf59c10256cb182357bd7e3a42013ff07c376f8c14cf5cc1923da20b51d64256b2fb8ebbf100aa67a61326f61fea8111bc"
	// Derived, not official: the GitHub inputs as Shopify would sign them
	// (base64 instead of hex); Shopify publishes no vector.
	const derivedShopify = "dXEH6g6yUJ/CESIczphLijdXC211hsIsRvQ3nIsEPhc="

	// Stripe publishes no reproducible vector. Derived, not official:
	// secret whsec_test_secret, t=1492774577, body "Hello, World!".
	stripeSecret := [][]byte{[]byte("whsec_test_secret")}
	const stripeHeader = "t=1492774577,v1=d7fa6c5474642565ac0b906bdbee5c71876b3a8ba5d29ef0897d5a933b476a5e"
	stripeNow := time.Unix(1492774577, 0).Add(time.Minute)

	// Slack: https://api.slack.com/authentication/verifying-requests-from-slack
	// (the walk-through's example request).
	slackSecret := [][]byte{[]byte("8f742231b10e8888abcd99yyyzzz85a5")}
	slackBody := []byte("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
	slackHeader := http.Header{
		"X-Slack-Signature":         {"v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"},
		"X-Slack-Request-Timestamp": {"1531420618"},
	}
	slackNow := time.Unix(1531420618, 0).Add(30 * time.Second)

	// Standard Webhooks: libraries/go/webhook_test.go, TestWebhookSign, a
	// vector shared by the reference libraries
	// (https://github.com/standard-webhooks/standard-webhooks).
	swSecret := [][]byte{[]byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")}
	swBody := []byte(`{"test": 2432232314}`)
	swHeader := func(prefix, sig string) http.Header {
		h := http.Header{}
		h.Set(prefix+"-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
		h.Set(prefix+"-timestamp", "1614265330")
		h.Set(prefix+"-signature", sig)
		return h
	}
	const swSig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	// The negative case of the same file: this signature must not verify.
	const swBad = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
	swNow := time.Unix(1614265330, 0)

	// Twilio: https://www.twilio.com/docs/usage/security (the example
	// request, auth token 12345).
	twilioSecret := [][]byte{[]byte("12345")}
	const twilioURL = "https://example.com/myapp.php?foo=1&bar=2"
	twilioBody := []byte(url.Values{
		"CallSid": {"CA1234567890ABCDE"},
		"Caller":  {"+14158675310"},
		"Digits":  {"1234"},
		"From":    {"+14158675310"},
		"To":      {"+18005551212"},
	}.Encode())
	twilioHeader := http.Header{"X-Twilio-Signature": {"L/OH5YylLD5NRKLltdqwSvS0BnU="}}

	tests := []struct {
		name string
		cfg  Config
		req  Request
		want Reason
	}{
		{
			name: "github official sha256",
			cfg:  Config{Preset: "github", Secrets: githubSecret},
			req:  Request{Header: http.Header{"X-Hub-Signature-256": {githubSHA256}}, Body: githubBody, Now: testNow},
		},
		{
			name: "github official sha256, default scheme",
			cfg:  Config{Secrets: githubSecret},
			req:  Request{Header: http.Header{"X-Hub-Signature-256": {githubSHA256}}, Body: githubBody, Now: testNow},
		},
		{
			name: "github official sha256, body changed",
			cfg:  Config{Preset: "github", Secrets: githubSecret},
			req:  Request{Header: http.Header{"X-Hub-Signature-256": {githubSHA256}}, Body: []byte("Hello, World?"), Now: testNow},
			want: ReasonMismatch,
		},
		{
			name: "derived sha1, github legacy header",
			cfg:  Config{Preset: "github", Secrets: githubSecret},
			req:  Request{Header: http.Header{"X-Hub-Signature": {derivedSHA1}}, Body: githubBody, Now: testNow},
		},
		{
			name: "derived sha1, default scheme",
			cfg:  Config{Algorithm: "sha1", Secrets: githubSecret},
			req:  Request{Header: http.Header{"X-Hub-Signature": {derivedSHA1}}, Body: githubBody, Now: testNow},
		},
		{
			name: "derived sha512, default scheme",
			cfg:  Config{Algorithm: "sha512", Secrets: githubSecret},
			req:  Request{Header: http.Header{"X-Webhook-Signature": {derivedSHA512}}, Body: githubBody, Now: testNow},
		},
		{
			name: "derived shopify",
			cfg:  Config{Preset: "shopify", Secrets: githubSecret},
			req:  Request{Header: http.Header{"X-Shopify-Hmac-Sha256": {derivedShopify}}, Body: githubBody, Now: testNow},
		},
		{
			name: "derived stripe",
			cfg:  Config{Preset: "stripe", Secrets: stripeSecret},
			req:  Request{Header: http.Header{"Stripe-Signature": {stripeHeader}}, Body: githubBody, Now: stripeNow},
		},
		{
			name: "derived stripe, secret base64-decoded does not verify",
			cfg:  Config{Preset: "stripe", Secrets: [][]byte{[]byte("test_secret")}},
			req:  Request{Header: http.Header{"Stripe-Signature": {stripeHeader}}, Body: githubBody, Now: stripeNow},
			want: ReasonMismatch,
		},
		{
			name: "slack official",
			cfg:  Config{Preset: "slack", Secrets: slackSecret},
			req:  Request{Header: slackHeader, Body: slackBody, Now: slackNow},
		},
		{
			name: "slack official, six minutes later",
			cfg:  Config{Preset: "slack", Secrets: slackSecret},
			req:  Request{Header: slackHeader, Body: slackBody, Now: slackNow.Add(6 * time.Minute)},
			want: ReasonStale,
		},
		{
			name: "standard webhooks official",
			cfg:  Config{Preset: "standard-webhooks", Secrets: swSecret},
			req:  Request{Header: swHeader("webhook", swSig), Body: swBody, Now: swNow},
		},
		{
			name: "standard webhooks official negative",
			cfg:  Config{Preset: "standard-webhooks", Secrets: swSecret},
			req:  Request{Header: swHeader("webhook", swBad), Body: swBody, Now: swNow},
			want: ReasonMismatch,
		},
		{
			name: "standard webhooks official, svix spelling",
			cfg:  Config{Preset: "svix", Secrets: swSecret},
			req:  Request{Header: swHeader("svix", swSig), Body: swBody, Now: swNow},
		},
		{
			name: "standard webhooks official, gitlab signing token",
			cfg:  Config{Preset: "gitlab", Secrets: swSecret},
			req:  Request{Header: swHeader("webhook", swSig), Body: swBody, Now: swNow},
		},
		{
			name: "standard webhooks official, gitlab negative",
			cfg:  Config{Preset: "gitlab", Secrets: swSecret},
			req:  Request{Header: swHeader("webhook", swBad), Body: swBody, Now: swNow},
			want: ReasonMismatch,
		},
		{
			name: "twilio official",
			cfg:  Config{Preset: "twilio", Secrets: twilioSecret},
			req:  Request{Header: twilioHeader, Body: twilioBody, URL: twilioURL, Now: testNow},
		},
		{
			name: "twilio official, received with :443",
			cfg:  Config{Preset: "twilio", Secrets: twilioSecret},
			req:  Request{Header: twilioHeader, Body: twilioBody, URL: "https://example.com:443/myapp.php?foo=1&bar=2", Now: testNow},
		},
		{
			name: "twilio official, a parameter added",
			cfg:  Config{Preset: "twilio", Secrets: twilioSecret},
			req:  Request{Header: twilioHeader, Body: append(twilioBody, "&Digits=9"...), URL: twilioURL, Now: testNow},
			want: ReasonMismatch,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.cfg, tt.req)
			if got := reasonOf(t, err); got != tt.want {
				t.Errorf("Verify() = %v (reason %q), want reason %q", err, got, tt.want)
			}
		})
	}
}
