package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-gw/sluice/control/store"
)

// Access rules.

// PutRule implements store.Store.
func (s *Store) PutRule(ctx context.Context, r store.AccessRule) error {
	pj, err := json.Marshal(r.Policy)
	if err != nil {
		return fmt.Errorf("put rule %s: policy: %w", r.Name, err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO access_rules(`+ruleCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT(name) DO UPDATE SET groups = excluded.groups, connections = excluded.connections,
			policy = excluded.policy, require_review = excluded.require_review,
			review_statements = excluded.review_statements, max_session = excluded.max_session,
			hours = excluded.hours, updated_at = excluded.updated_at`,
		r.Name, nonNil(r.Groups), nonNil(r.Connections), string(pj), r.RequireReview, nonNil(r.ReviewStatements),
		int64(r.MaxSession), r.Hours, r.CreatedAt, r.UpdatedAt)
	if err != nil {
		return fmt.Errorf("put rule %s: %w", r.Name, err)
	}
	return nil
}

const ruleCols = `name, groups, connections, policy, require_review, review_statements, max_session, hours, created_at, updated_at`

func scanRule(r pgx.Row) (store.AccessRule, error) {
	var x store.AccessRule
	var pj string
	var maxSession int64
	if err := r.Scan(&x.Name, &x.Groups, &x.Connections, &pj, &x.RequireReview, &x.ReviewStatements, &maxSession,
		&x.Hours, &x.CreatedAt, &x.UpdatedAt); err != nil {
		return x, err
	}
	if err := json.Unmarshal([]byte(pj), &x.Policy); err != nil {
		return x, fmt.Errorf("policy of rule %s: %w", x.Name, err)
	}
	x.Groups, x.Connections, x.ReviewStatements = nonNil(x.Groups), nonNil(x.Connections), nonNil(x.ReviewStatements)
	x.MaxSession = time.Duration(maxSession)
	utc(&x.CreatedAt, &x.UpdatedAt)
	return x, nil
}

// GetRule implements store.Store.
func (s *Store) GetRule(ctx context.Context, name string) (store.AccessRule, error) {
	r, err := scanRule(s.pool.QueryRow(ctx, `SELECT `+ruleCols+` FROM access_rules WHERE name = $1`, name))
	if err != nil {
		return store.AccessRule{}, notFound("get rule "+name, err)
	}
	return r, nil
}

// ListRules implements store.Store.
func (s *Store) ListRules(ctx context.Context) ([]store.AccessRule, error) {
	return list(ctx, s.pool, "list rules", scanRule, `SELECT `+ruleCols+` FROM access_rules ORDER BY name`)
}

// DeleteRule implements store.Store.
func (s *Store) DeleteRule(ctx context.Context, name string) error {
	return s.execOne(ctx, "delete rule "+name, `DELETE FROM access_rules WHERE name = $1`, name)
}

// Groups.

// PutGroup implements store.Store.
func (s *Store) PutGroup(ctx context.Context, g store.Group) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO user_groups(name, description, created_at) VALUES ($1, $2, $3)
		ON CONFLICT(name) DO UPDATE SET description = excluded.description`, g.Name, g.Description, g.CreatedAt)
	if err != nil {
		return fmt.Errorf("put group %s: %w", g.Name, err)
	}
	return nil
}

func scanGroup(r pgx.Row) (store.Group, error) {
	var g store.Group
	if err := r.Scan(&g.Name, &g.Description, &g.CreatedAt); err != nil {
		return g, err
	}
	utc(&g.CreatedAt)
	return g, nil
}

// GetGroup implements store.Store.
func (s *Store) GetGroup(ctx context.Context, name string) (store.Group, error) {
	g, err := scanGroup(s.pool.QueryRow(ctx, `SELECT name, description, created_at FROM user_groups WHERE name = $1`, name))
	if err != nil {
		return store.Group{}, notFound("get group "+name, err)
	}
	return g, nil
}

// ListGroups implements store.Store.
func (s *Store) ListGroups(ctx context.Context) ([]store.Group, error) {
	return list(ctx, s.pool, "list groups", scanGroup, `SELECT name, description, created_at FROM user_groups ORDER BY name`)
}

// DeleteGroup implements store.Store: the group row goes, and array_remove
// takes its name out of every user's and every rule's groups, in one
// transaction.
func (s *Store) DeleteGroup(ctx context.Context, name string) error {
	what := "delete group " + name
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM user_groups WHERE name = $1`, name)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%s: %w", what, store.ErrNotFound)
		}
		for _, table := range []string{"users", "access_rules"} {
			if _, err := tx.Exec(ctx, `UPDATE `+table+` SET groups = array_remove(groups, $1) WHERE $1 = ANY(groups)`, name); err != nil {
				return fmt.Errorf("%s: %s: %w", what, table, err)
			}
		}
		return nil
	})
}
