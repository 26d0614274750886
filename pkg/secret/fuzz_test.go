package secret

import (
	"encoding/hex"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// FuzzOpen feeds arbitrary text and contexts to Open. Nothing the fuzzer
// makes can authenticate except the seeds themselves, and every error must
// be one of the documented kinds, with a message from a fixed list.
func FuzzOpen(f *testing.F) {
	kr := mustParse(f, hex.EncodeToString(testKey)+","+collideA)
	const plain, context = "dest_secret", "destination/9/secret"
	second := mustParse(f, collideA)
	sealed, err := second.Seal([]byte(plain), context)
	if err != nil {
		f.Fatal(err)
	}
	unknown, err := mustParse(f, GenerateKey()).Seal([]byte(plain), context)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(goldenSealed, goldenContext)
	f.Add(sealed, context)
	f.Add(unknown, context)
	f.Add(goldenSealed, "")
	f.Add("", "")
	f.Add("sealed:", "c")
	f.Add("sealed:v1:", "c")
	f.Add("sealed:v1:6357fd74:", "c")
	f.Add("sealed:v1:6357fd74:"+strings.Repeat("A", 38), "c")
	f.Add("sealed:v9:6357fd74:AAAA", "c")
	f.Add("sealed:v1:ZZZZZZZZ:AAAA:BBBB", "c")
	f.Add(goldenSealed+"\n", goldenContext)
	f.Add("whsec_plain", "trigger/1/hmac.secret")

	messages := []string{
		ErrNotSealed.Error(),
		ErrTampered.Error(),
		"malformed sealed value: " + ErrTampered.Error(),
		"unsupported sealed format version: " + ErrTampered.Error(),
		"malformed key id: " + ErrTampered.Error(),
		"malformed payload: " + ErrTampered.Error(),
	}
	f.Fuzz(func(t *testing.T, s, ctx string) {
		got, err := kr.Open(s, ctx)
		if err == nil {
			ok := (ctx == goldenContext && string(got) == goldenPlain) || (ctx == context && string(got) == plain)
			if !ok || !sealedForm.MatchString(s) {
				t.Fatalf("Open(%q, %q) = %q, nil; only the seeds may open", s, ctx, got)
			}
			return
		}
		if got != nil {
			t.Fatalf("Open(%q, %q) = %q with error %v, want nil", s, ctx, got, err)
		}
		var u *UnknownKeyError
		switch {
		case errors.As(err, &u):
			if !keyIDForm.MatchString(u.ID) || slices.Contains(kr.IDs(), u.ID) {
				t.Fatalf("Open(%q) = unknown key %q, want the id of a key not held", s, u.ID)
			}
			if err.Error() != "sealed with key "+u.ID+", which the keyring does not hold" {
				t.Fatalf("Open(%q) error = %q, not the documented text", s, err)
			}
		case errors.Is(err, ErrNotSealed), errors.Is(err, ErrTampered):
			if !slices.Contains(messages, err.Error()) {
				t.Fatalf("Open(%q) error = %q, not a documented message", s, err)
			}
		default:
			t.Fatalf("Open(%q) error = %v, not a documented kind", s, err)
		}
		if errors.Is(err, ErrNotSealed) == IsSealed(s) {
			t.Fatalf("Open(%q) error = %v while IsSealed = %v", s, err, IsSealed(s))
		}
	})
}

// parseTemplates are the messages ParseKeyring may return, with numbers
// written as #.
var parseTemplates = []string{
	"no key given",
	"key # of # is empty",
	"key # of # is # hex digits, want #",
	"key # of # is # bytes, want #",
	"key # of # is all zero bytes",
	"key # of # has a character outside base64 and hex at position #",
	"key # of # mixes the standard and URL-safe base64 alphabets",
	"key # of # has misplaced base64 padding",
	"key # of # is not valid base64",
	"key # of # repeats key #",
	"key # of # has the same id as key #; generate another",
}

var (
	digits    = regexp.MustCompile(`[0-9]+`)
	keyIDForm = regexp.MustCompile(`^[0-9a-f]{8}$`)
)

// FuzzParseKeyring checks that ParseKeyring never panics, that what it
// accepts works, and that no error repeats any part of its input: no eight
// characters of the input may appear in an error unless the message
// templates hold them too.
func FuzzParseKeyring(f *testing.F) {
	for _, s := range []string{
		"",
		",",
		GenerateKey(),
		GenerateKey() + ", " + hex.EncodeToString(testKey),
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
		"-_-_" + GenerateKey()[4:],
		strings.Repeat("0", 64),
		strings.Repeat("f", 63),
		collideA + "," + collideB,
		"key 1 of 1 is empty",
		"hunter2,correct horse battery staple",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGx=dHh8=",
	} {
		f.Add(s)
	}
	// Numbers in the templates ("base64") are normalized as in messages.
	templates := make([]string, len(parseTemplates))
	for i, m := range parseTemplates {
		templates[i] = digits.ReplaceAllString(m, "#")
	}
	template := strings.Join(templates, "\n")
	f.Fuzz(func(t *testing.T, s string) {
		kr, err := ParseKeyring(s)
		if err == nil {
			ids := kr.IDs()
			if len(ids) != strings.Count(s, ",")+1 || kr.ID() != ids[0] {
				t.Fatalf("ParseKeyring(%q) = ids %v, want one per comma-separated key", s, ids)
			}
			sealed, err := kr.Seal([]byte("x"), "c")
			if err != nil {
				t.Fatalf("Seal() error = %v", err)
			}
			if got, err := kr.Open(sealed, "c"); err != nil || string(got) != "x" {
				t.Fatalf("Open(Seal(x)) = %q, %v", got, err)
			}
			return
		}
		msg := digits.ReplaceAllString(err.Error(), "#")
		in := digits.ReplaceAllString(s, "#")
		for i := 0; i+8 <= len(in); i++ {
			if w := in[i : i+8]; strings.Contains(msg, w) && !strings.Contains(template, w) {
				t.Fatalf("ParseKeyring(%q) error = %q, repeats %q of the input", s, err, w)
			}
		}
		// Stricter still: the message is a template with numbers filled in,
		// so a new message must be added to the templates to pass.
		if !slices.Contains(templates, msg) {
			t.Fatalf("ParseKeyring(%q) error = %q, not one of the templates", s, err)
		}
	})
}
