package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const defaultAPI = "http://127.0.0.1:8009"

// credentials is the saved login, $SLUICE_HOME/credentials.json (mode 0600).
type credentials struct {
	API       string `json:"api"`
	User      string `json:"user"`
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at,omitempty"`
}

// expired reports whether the saved token has an expiry that has passed.
func (c *credentials) expired(now time.Time) bool {
	if c.ExpiresAt == "" {
		return false
	}
	t, err := time.Parse(time.RFC3339Nano, c.ExpiresAt)
	return err == nil && !now.Before(t)
}

// config is what the client commands need: where the API is and which token to send.
type config struct {
	api         string
	token       string
	tokenSource string       // "SLUICE_TOKEN", "login", "admin.token" or "" (none)
	creds       *credentials // saved login, nil when there is none
	credsPath   string
	tokenErr    error // why there is no token, when there is none
}

// sluiceHome is where the saved login lives: $SLUICE_HOME, else ~/.sluice.
func (a *app) sluiceHome() (string, error) {
	if h := a.getenv("SLUICE_HOME"); h != "" {
		return h, nil
	}
	home := a.getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", fmt.Errorf("cannot find the home directory (set SLUICE_HOME): %w", err)
		}
	}
	return filepath.Join(home, ".sluice"), nil
}

// dataDir is the gateway's data directory: $SLUICE_DATA_DIR, else ./.sluice.
func (a *app) dataDir() string {
	if d := a.getenv("SLUICE_DATA_DIR"); d != "" {
		return d
	}
	return ".sluice"
}

func normalizeAPI(s string) string { return strings.TrimRight(strings.TrimSpace(s), "/") }

// loadConfig resolves the API base and the token.
//
// API: $SLUICE_API, else the API of the saved login, else http://127.0.0.1:8009.
// Token: $SLUICE_TOKEN, else the saved login's token (only when it was issued by
// that same API and has not expired), else $SLUICE_DATA_DIR/admin.token.
func (a *app) loadConfig() (*config, error) {
	home, err := a.sluiceHome()
	if err != nil {
		return nil, err
	}
	cfg := &config{credsPath: filepath.Join(home, "credentials.json")}
	creds, err := readCredentials(cfg.credsPath)
	if err != nil {
		return nil, err
	}
	cfg.creds = creds

	switch {
	case a.getenv("SLUICE_API") != "":
		cfg.api = normalizeAPI(a.getenv("SLUICE_API"))
	case creds != nil && creds.API != "":
		cfg.api = normalizeAPI(creds.API)
	default:
		cfg.api = defaultAPI
	}

	if t := strings.TrimSpace(a.getenv("SLUICE_TOKEN")); t != "" {
		cfg.token, cfg.tokenSource = t, "SLUICE_TOKEN"
		return cfg, nil
	}
	if creds != nil && creds.Token != "" && normalizeAPI(creds.API) == cfg.api {
		if !creds.expired(time.Now()) {
			cfg.token, cfg.tokenSource = creds.Token, "login"
			return cfg, nil
		}
		cfg.tokenErr = fmt.Errorf("the saved login for %s expired at %s: run 'sluice login --user %s'", creds.User, creds.ExpiresAt, creds.User)
	}
	adminPath := filepath.Join(a.dataDir(), "admin.token")
	if b, err := os.ReadFile(adminPath); err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			cfg.token, cfg.tokenSource, cfg.tokenErr = t, "admin.token", nil
			return cfg, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: %w", adminPath, err)
	}
	if cfg.tokenErr == nil {
		cfg.tokenErr = errors.New("not logged in: run 'sluice login --user NAME' or set SLUICE_TOKEN")
	}
	return cfg, nil
}

// requireToken returns an error explaining why no token is available.
func (cfg *config) requireToken() error {
	if cfg.token == "" {
		return cfg.tokenErr
	}
	return nil
}

// readCredentials reads the saved login; a missing file is (nil, nil).
func readCredentials(path string) (*credentials, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading saved login: %w", err)
	}
	var c credentials
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("reading saved login %s: %w", path, err)
	}
	return &c, nil
}

// writeCredentials saves the login atomically with mode 0600 (directory 0700).
func writeCredentials(path string, c *credentials) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("saving login: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".credentials-*.json")
	if err != nil {
		return fmt.Errorf("saving login: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("saving login: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("saving login: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving login: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("saving login: %w", err)
	}
	return nil
}
