package store

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/inlet-dev/inlet/pkg/secret"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

// plainPrefix marks a key carried over from before keys were sealed; the
// next start seals it (Reseal).
const plainPrefix = "plain:"

// errNoKeyring is returned when a secret must be sealed or opened by a
// Store made without a keyring.
var errNoKeyring = errors.New("no secret keyring: set INLET_SECRET_KEY")

// keyring returns the keyring in use.
func (s *Store) keyring() (*secret.Keyring, error) {
	kr := s.kr.Load()
	if kr == nil {
		return nil, errNoKeyring
	}
	return kr, nil
}

// seal seals plain for context under the current key.
func (s *Store) seal(plain, context string) (string, error) {
	kr, err := s.keyring()
	if err != nil {
		return "", err
	}
	return kr.Seal([]byte(plain), context)
}

// open opens a value seal made for context. A value sealed under a key
// the keyring does not hold makes it reload the keyring once, since
// another process may just have rotated the keys.
func (s *Store) open(sealed, context string) (string, error) {
	if plain, ok := strings.CutPrefix(sealed, plainPrefix); ok {
		return plain, nil
	}
	kr, err := s.keyring()
	if err != nil {
		return "", err
	}
	b, err := kr.Open(sealed, context)
	var uk *secret.UnknownKeyError
	if errors.As(err, &uk) && s.reloadKeys != nil {
		if fresh, rerr := s.reloadKeys(); rerr == nil && fresh != nil {
			s.kr.Store(fresh)
			b, err = fresh.Open(sealed, context)
		}
	}
	if err != nil {
		return "", fmt.Errorf("open %s: %w", context, err)
	}
	return string(b), nil
}

// keyContext binds a sealed webhook key to its hash, so that it opens in
// no other row.
func keyContext(hash []byte) string { return "webhook_key/" + hex.EncodeToString(hash) }

func secretContext(ref, field string) string { return "trigger/" + ref + "/" + field }

// settingsDoc is how a trigger's settings are stored: the settings, whose
// secrets are never marshalled, and the secrets sealed.
type settingsDoc struct {
	trigger.Settings
	SealedSecret         string `json:"sealed_secret,omitempty"`
	SealedPreviousSecret string `json:"sealed_previous_secret,omitempty"`
}

// legacySecrets are the secrets of settings stored before secrets were
// sealed, in clear under hmac.
type legacySecrets struct {
	HMAC struct {
		Secret         string `json:"secret"`
		PreviousSecret string `json:"previous_secret"`
	} `json:"hmac"`
}

// encodeSettings returns the stored form of trigger ref's settings.
func (s *Store) encodeSettings(ref string, set trigger.Settings) ([]byte, error) {
	doc := settingsDoc{Settings: set}
	var err error
	if set.HMAC.Secret != "" {
		if doc.SealedSecret, err = s.seal(string(set.HMAC.Secret), secretContext(ref, "hmac.secret")); err != nil {
			return nil, err
		}
	}
	if set.HMAC.PreviousSecret != "" {
		if doc.SealedPreviousSecret, err = s.seal(string(set.HMAC.PreviousSecret), secretContext(ref, "hmac.previous_secret")); err != nil {
			return nil, err
		}
	}
	return json.Marshal(doc)
}

// decodeSettings reads trigger ref's stored settings, opening its secrets.
func (s *Store) decodeSettings(ref string, raw []byte) (trigger.Settings, error) {
	doc := settingsDoc{Settings: trigger.DefaultSettings()}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return doc.Settings, fmt.Errorf("decode settings of %s: %w", ref, err)
	}
	set := doc.Settings
	var legacy legacySecrets
	_ = json.Unmarshal(raw, &legacy) // the same document, which just parsed
	for _, f := range []struct {
		dst           *secret.Value
		sealed, plain string
		field         string
	}{
		{&set.HMAC.Secret, doc.SealedSecret, legacy.HMAC.Secret, "hmac.secret"},
		{&set.HMAC.PreviousSecret, doc.SealedPreviousSecret, legacy.HMAC.PreviousSecret, "hmac.previous_secret"},
	} {
		switch {
		case f.sealed != "":
			v, err := s.open(f.sealed, secretContext(ref, f.field))
			if err != nil {
				return set, err
			}
			*f.dst = secret.Value(v)
		case f.plain != "":
			*f.dst = secret.Value(f.plain)
		}
	}
	set.Normalize()
	return set, nil
}

// Reseal seals every secret the database holds in clear (keys and
// settings carried over from before secrets were sealed) or under a key
// other than the keyring's current one, and returns how many it sealed.
// It is what `inlet secrets rotate-key` runs after a new key is put first,
// and what inlet runs at start.
func (s *Store) Reseal(ctx context.Context) (int, error) {
	kr, err := s.keyring()
	if err != nil {
		return 0, err
	}
	stale := func(v string) bool { return v != "" && (!secret.IsSealed(v) || !kr.Current(v)) }
	n := 0
	var keys []struct {
		ID     int64  `db:"id"`
		Hash   []byte `db:"hash"`
		Sealed string `db:"sealed"`
	}
	if err := s.db.SelectContext(ctx, &keys, `SELECT id, hash, sealed FROM webhook_keys`); err != nil {
		return 0, fmt.Errorf("reseal: %w", err)
	}
	for _, k := range keys {
		if !stale(k.Sealed) {
			continue
		}
		plain, err := s.open(k.Sealed, keyContext(k.Hash))
		if err != nil {
			return n, fmt.Errorf("reseal key %d: %w", k.ID, err)
		}
		sealed, err := s.seal(plain, keyContext(k.Hash))
		if err != nil {
			return n, err
		}
		if _, err := s.db.ExecContext(ctx, `UPDATE webhook_keys SET sealed = $2 WHERE id = $1 AND sealed = $3`, k.ID, sealed, k.Sealed); err != nil {
			return n, fmt.Errorf("reseal key %d: %w", k.ID, err)
		}
		n++
	}
	var trs []struct {
		ID       int64  `db:"id"`
		Ref      string `db:"ref"`
		Settings []byte `db:"webhook_settings"`
	}
	if err := s.db.SelectContext(ctx, &trs, `SELECT id, ref, webhook_settings FROM triggers`); err != nil {
		return n, fmt.Errorf("reseal: %w", err)
	}
	for _, t := range trs {
		var doc settingsDoc
		var legacy legacySecrets
		if json.Unmarshal(t.Settings, &doc) != nil || json.Unmarshal(t.Settings, &legacy) != nil {
			continue // reported when the trigger is read
		}
		if !stale(doc.SealedSecret) && !stale(doc.SealedPreviousSecret) &&
			legacy.HMAC.Secret == "" && legacy.HMAC.PreviousSecret == "" {
			continue
		}
		_, err := s.UpdateSettings(ctx, t.ID, func(*trigger.Settings) error { return nil })
		if err != nil {
			return n, fmt.Errorf("reseal settings of %s: %w", t.Ref, err)
		}
		n++
	}
	return n, nil
}

// SealedKeyIDs returns the ids of the keys that the database's sealed
// values were sealed under, so that a start with a keyring lacking one of
// them fails at once, saying which.
func (s *Store) SealedKeyIDs(ctx context.Context) ([]string, error) {
	var vals []string
	if err := s.db.SelectContext(ctx, &vals, `
		SELECT sealed FROM webhook_keys WHERE sealed LIKE 'sealed:%'
		UNION ALL SELECT webhook_settings->>'sealed_secret' FROM triggers WHERE webhook_settings ? 'sealed_secret'
		UNION ALL SELECT webhook_settings->>'sealed_previous_secret' FROM triggers WHERE webhook_settings ? 'sealed_previous_secret'`); err != nil {
		return nil, fmt.Errorf("sealed key ids: %w", err)
	}
	var ids []string
	for _, v := range vals {
		if parts := strings.SplitN(v, ":", 4); len(parts) == 4 && !slices.Contains(ids, parts[2]) {
			ids = append(ids, parts[2])
		}
	}
	slices.Sort(ids)
	return ids, nil
}
