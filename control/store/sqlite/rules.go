package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/sluice-gw/sluice/control/store"
)

// Access rules.

// PutRule implements store.Store.
func (s *Store) PutRule(ctx context.Context, r store.AccessRule) error {
	gj, err1 := encodeList(r.Groups)
	cj, err2 := encodeList(r.Connections)
	sj, err3 := encodeList(r.ReviewStatements)
	pj, err4 := json.Marshal(r.Policy)
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			return fmt.Errorf("put rule %s: %w", r.Name, err)
		}
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO access_rules(`+ruleCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET groups_json = excluded.groups_json, connections_json = excluded.connections_json,
			policy_json = excluded.policy_json, require_review = excluded.require_review,
			review_statements_json = excluded.review_statements_json, max_session = excluded.max_session,
			hours = excluded.hours, updated_at = excluded.updated_at`,
		r.Name, gj, cj, string(pj), r.RequireReview, sj, int64(r.MaxSession), r.Hours, toNanos(r.CreatedAt), toNanos(r.UpdatedAt))
	if err != nil {
		return fmt.Errorf("put rule %s: %w", r.Name, err)
	}
	return nil
}

const ruleCols = `name, groups_json, connections_json, policy_json, require_review, review_statements_json, max_session, hours, created_at, updated_at`

func scanRule(r scanner) (store.AccessRule, error) {
	var x store.AccessRule
	var gj, cj, pj, sj string
	var maxSession, created, updated int64
	if err := r.Scan(&x.Name, &gj, &cj, &pj, &x.RequireReview, &sj, &maxSession, &x.Hours, &created, &updated); err != nil {
		return x, err
	}
	var err error
	if x.Groups, err = decodeList(gj); err != nil {
		return x, fmt.Errorf("groups of rule %s: %w", x.Name, err)
	}
	if x.Connections, err = decodeList(cj); err != nil {
		return x, fmt.Errorf("connections of rule %s: %w", x.Name, err)
	}
	if x.ReviewStatements, err = decodeList(sj); err != nil {
		return x, fmt.Errorf("review statements of rule %s: %w", x.Name, err)
	}
	if err := json.Unmarshal([]byte(pj), &x.Policy); err != nil {
		return x, fmt.Errorf("policy of rule %s: %w", x.Name, err)
	}
	x.MaxSession = time.Duration(maxSession)
	x.CreatedAt, x.UpdatedAt = fromNanos(created), fromNanos(updated)
	return x, nil
}

// GetRule implements store.Store.
func (s *Store) GetRule(ctx context.Context, name string) (store.AccessRule, error) {
	r, err := scanRule(s.db.QueryRowContext(ctx, `SELECT `+ruleCols+` FROM access_rules WHERE name = ?`, name))
	if err != nil {
		return store.AccessRule{}, notFound("get rule "+name, err)
	}
	return r, nil
}

// ListRules implements store.Store.
func (s *Store) ListRules(ctx context.Context) ([]store.AccessRule, error) {
	return list(ctx, s.db, "list rules", scanRule, `SELECT `+ruleCols+` FROM access_rules ORDER BY name`)
}

// DeleteRule implements store.Store.
func (s *Store) DeleteRule(ctx context.Context, name string) error {
	return s.execOne(ctx, "delete rule "+name, `DELETE FROM access_rules WHERE name = ?`, name)
}

// Groups.

// PutGroup implements store.Store.
func (s *Store) PutGroup(ctx context.Context, g store.Group) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO user_groups(name, description, created_at) VALUES (?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET description = excluded.description`, g.Name, g.Description, toNanos(g.CreatedAt))
	if err != nil {
		return fmt.Errorf("put group %s: %w", g.Name, err)
	}
	return nil
}

func scanGroup(r scanner) (store.Group, error) {
	var g store.Group
	var created int64
	if err := r.Scan(&g.Name, &g.Description, &created); err != nil {
		return g, err
	}
	g.CreatedAt = fromNanos(created)
	return g, nil
}

// GetGroup implements store.Store.
func (s *Store) GetGroup(ctx context.Context, name string) (store.Group, error) {
	g, err := scanGroup(s.db.QueryRowContext(ctx, `SELECT name, description, created_at FROM user_groups WHERE name = ?`, name))
	if err != nil {
		return store.Group{}, notFound("get group "+name, err)
	}
	return g, nil
}

// ListGroups implements store.Store.
func (s *Store) ListGroups(ctx context.Context) ([]store.Group, error) {
	return list(ctx, s.db, "list groups", scanGroup, `SELECT name, description, created_at FROM user_groups ORDER BY name`)
}

// DeleteGroup implements store.Store: the group row goes, and its name is
// taken out of users.groups_json and access_rules.groups_json, all in one
// (immediate, hence serialised) transaction.
func (s *Store) DeleteGroup(ctx context.Context, name string) error {
	what := "delete group " + name
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", what, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM user_groups WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	} else if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	for _, table := range []string{"users", "access_rules"} {
		if err := dropGroup(ctx, tx, table, name); err != nil {
			return fmt.Errorf("%s: %s: %w", what, table, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", what, err)
	}
	return nil
}

// dropGroup removes group from the groups_json of every row of table
// (users or access_rules, both keyed by name) that holds it.
func dropGroup(ctx context.Context, tx *sql.Tx, table, group string) error {
	type row struct{ name, groups string }
	rows, err := list(ctx, tx, "find members", func(r scanner) (row, error) {
		var x row
		return x, r.Scan(&x.name, &x.groups)
	}, `SELECT name, groups_json FROM `+table+` WHERE EXISTS (SELECT 1 FROM json_each(`+table+`.groups_json) WHERE value = ?)`, group)
	if err != nil {
		return err
	}
	for _, r := range rows {
		groups, err := decodeList(r.groups)
		if err != nil {
			return fmt.Errorf("groups of %s: %w", r.name, err)
		}
		gj, err := encodeList(slices.DeleteFunc(groups, func(g string) bool { return g == group }))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET groups_json = ? WHERE name = ?`, gj, r.name); err != nil {
			return fmt.Errorf("update %s: %w", r.name, err)
		}
	}
	return nil
}
