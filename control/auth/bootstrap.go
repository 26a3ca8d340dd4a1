package auth

import (
	"context"
	"errors"
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
	AdminRule      = "admin"
	AdminTokenFile = "admin.token"
	adminTokenTTL  = 10 * 365 * 24 * time.Hour
)

// Bootstrap makes a fresh gateway usable:
//
//   - on a store with no access rules it creates group "admin" and rule
//     "admin" granting that group every connection ("*"). Admin is a group,
//     not a special case: no code path tests a user name. (A store upgraded
//     from before access rules gets the rule too, so its admins keep their
//     access; other users need rules.)
//   - on a store with no users it creates user "admin" in group "admin" (no
//     password) and writes a long-lived access token for it to
//     <dataDir>/admin.token (mode 0600, one line). On a store that already
//     has users it leaves users and the file alone.
//
// It reports whether it created the admin user.
func (s *Service) Bootstrap(ctx context.Context, dataDir string) (bool, error) {
	if err := s.bootstrapRules(ctx); err != nil {
		return false, fmt.Errorf("bootstrap: %w", err)
	}
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

// bootstrapRules creates the admin group and rule when there is no rule.
func (s *Service) bootstrapRules(ctx context.Context) error {
	rules, err := s.store.ListRules(ctx)
	if err != nil {
		return err
	}
	if len(rules) > 0 {
		return nil
	}
	now := s.now().UTC()
	if _, err := s.store.GetGroup(ctx, AdminGroup); errors.Is(err, store.ErrNotFound) {
		g := store.Group{Name: AdminGroup, Description: "administrators: rule \"admin\" grants them every connection", CreatedAt: now}
		if err := s.store.PutGroup(ctx, g); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	r := store.AccessRule{Name: AdminRule, Groups: []string{AdminGroup}, Connections: []string{AnyConnection}, CreatedAt: now, UpdatedAt: now}
	if err := s.store.PutRule(ctx, r); err != nil {
		return err
	}
	s.log.Info("bootstrap: created access rule for group admin", "rule", AdminRule, "group", AdminGroup)
	return nil
}
