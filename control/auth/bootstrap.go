package auth

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sluice-gw/sluice/control/store"
)

// Bootstrap names.
const (
	AdminUser      = "admin"
	AdminGroup     = "admin"
	AdminTokenFile = "admin.token"
	adminTokenTTL  = 10 * 365 * 24 * time.Hour
)

// Bootstrap makes a fresh gateway usable: on a store with no users it creates
// user "admin" in group "admin" (no password) and writes a long-lived access
// token for it to <dataDir>/admin.token (mode 0600, one line). On any store
// that already has users it does nothing and leaves the file alone. It
// reports whether it created the admin.
func (s *Service) Bootstrap(ctx context.Context, dataDir string) (bool, error) {
	users, err := s.store.ListUsers(ctx)
	if err != nil {
		return false, fmt.Errorf("bootstrap: %w", err)
	}
	if len(users) > 0 {
		return false, nil
	}
	secret, err := NewToken()
	if err != nil {
		return false, fmt.Errorf("bootstrap: %w", err)
	}
	id, err := newID()
	if err != nil {
		return false, fmt.Errorf("bootstrap: %w", err)
	}
	// The file is written before the store: if the store write fails the
	// store is still empty and the next start overwrites the file; the other
	// order could leave an admin whose token nobody has.
	path := filepath.Join(dataDir, AdminTokenFile)
	if err := writeSecretFile(path, []byte(secret+"\n")); err != nil {
		return false, fmt.Errorf("bootstrap: %w", err)
	}
	now := s.now().UTC()
	if err := s.store.PutUser(ctx, store.User{Name: AdminUser, Groups: []string{AdminGroup}, CreatedAt: now}); err != nil {
		return false, fmt.Errorf("bootstrap: %w", err)
	}
	t := store.Token{ID: id, UserName: AdminUser, Hash: Hash(secret), ExpiresAt: now.Add(adminTokenTTL), CreatedAt: now}
	if err := s.store.CreateToken(ctx, t); err != nil {
		return false, fmt.Errorf("bootstrap: %w", err)
	}
	s.log.Info("bootstrap: created admin user", "token_file", path)
	return true, nil
}

// writeSecretFile writes data to path with mode 0600, atomically.
func writeSecretFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	// CreateTemp already uses 0600; Chmod makes it explicit against odd umasks.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
