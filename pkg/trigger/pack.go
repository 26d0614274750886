package trigger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Pack is a folder of trigger declarations.
type Pack struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Version     string `yaml:"version"`
	Triggers    []Declaration
}

// Declaration is a trigger as a pack declares it: the pack-owned columns and
// the webhook defaults used when the trigger is first created.
type Declaration struct {
	Ref           string
	Pack          string
	Name          string
	Description   string
	PayloadSchema json.RawMessage
	// Enabled asks for the webhook to be enabled (with a fresh key) when the
	// trigger is first created.
	Enabled  bool
	Settings Settings
}

type triggerFile struct {
	Name          string    `yaml:"name"`
	Pack          string    `yaml:"pack"`
	Description   string    `yaml:"description"`
	PayloadSchema any       `yaml:"payload_schema"`
	Webhook       yaml.Node `yaml:"webhook"`
}

// LoadPacks reads every packs/<pack>/pack.yaml and its triggers/*.yaml under
// dir, validating each. A missing dir is no packs. Errors name the file.
func LoadPacks(dir string) ([]Pack, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read packs: %w", err)
	}
	var packs []Pack
	var errs []error
	seen := map[string]string{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		p, err := loadPack(filepath.Join(dir, e.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, d := range p.Triggers {
			if prev, dup := seen[d.Ref]; dup {
				errs = append(errs, fmt.Errorf("trigger %s declared twice (%s and %s)", d.Ref, prev, p.Name))
			}
			seen[d.Ref] = p.Name
		}
		packs = append(packs, p)
	}
	return packs, errors.Join(errs...)
}

func loadPack(dir string) (Pack, error) {
	var p Pack
	path := filepath.Join(dir, "pack.yaml")
	if err := decodeYAML(path, &p); err != nil {
		return p, err
	}
	if !nameRe.MatchString(p.Name) {
		return p, fmt.Errorf("%s: pack name %q must match %s", path, p.Name, nameRe)
	}
	files, err := filepath.Glob(filepath.Join(dir, "triggers", "*.yaml"))
	if err != nil {
		return p, err
	}
	sort.Strings(files)
	var errs []error
	for _, f := range files {
		d, err := loadTrigger(f, p.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.Triggers = append(p.Triggers, d)
	}
	return p, errors.Join(errs...)
}

func loadTrigger(path, pack string) (Declaration, error) {
	var f triggerFile
	if err := decodeYAML(path, &f); err != nil {
		return Declaration{}, err
	}
	if f.Pack != "" && f.Pack != pack {
		return Declaration{}, fmt.Errorf("%s: pack %q does not match its folder's pack %q", path, f.Pack, pack)
	}
	if !nameRe.MatchString(f.Name) {
		return Declaration{}, fmt.Errorf("%s: trigger name %q must match %s", path, f.Name, nameRe)
	}
	d := Declaration{Ref: pack + "." + f.Name, Pack: pack, Name: f.Name, Description: f.Description, Settings: DefaultSettings()}
	if f.PayloadSchema != nil {
		raw, err := json.Marshal(f.PayloadSchema)
		if err != nil {
			return d, fmt.Errorf("%s: payload_schema: %w", path, err)
		}
		if err := ValidateSchema(raw); err != nil {
			return d, fmt.Errorf("%s: %w", path, err)
		}
		d.PayloadSchema = raw
	}
	if !f.Webhook.IsZero() {
		var w struct {
			Enabled bool `yaml:"enabled"`
		}
		if err := f.Webhook.Decode(&w); err != nil {
			return d, fmt.Errorf("%s: webhook: %w", path, err)
		}
		d.Enabled = w.Enabled
		if err := decodeWebhookDefaults(&f.Webhook, &d.Settings); err != nil {
			return d, fmt.Errorf("%s: webhook: %w", path, err)
		}
	}
	d.Settings.Normalize()
	if err := d.Settings.Validate(); err != nil {
		return d, fmt.Errorf("%s: webhook: %w", path, err)
	}
	return d, nil
}

// decodeWebhookDefaults applies a pack's webhook block onto s through JSON, so
// the YAML keys are exactly the API's. Secrets are refused: a pack lives in
// version control.
func decodeWebhookDefaults(n *yaml.Node, s *Settings) error {
	var m map[string]any
	if err := n.Decode(&m); err != nil {
		return err
	}
	delete(m, "enabled")
	if h, ok := m["hmac"].(map[string]any); ok {
		for _, k := range []string{"secret", "previous_secret", "previous_secret_expires_at"} {
			if _, ok := h[k]; ok {
				return fmt.Errorf("hmac.%s cannot be set in a pack (packs live in version control); set it with PATCH /api/v1/triggers/:ref/webhooks", k)
			}
		}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(s); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

func decodeYAML(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
