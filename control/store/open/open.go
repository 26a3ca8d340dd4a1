package open

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/control/store/postgres"
	"github.com/sluice-gw/sluice/control/store/sqlite"
)

// SQLiteFile is the name of the sqlite database inside the data directory.
const SQLiteFile = "sluice.db"

// Open opens the store spec names:
//   - "" or "sqlite": the sqlite backend at dataDir/sluice.db (dataDir must
//     be set and exist);
//   - "postgres://..." or "postgresql://..." (scheme in any case): the
//     PostgreSQL backend on that URL (see postgres.Open).
//
// Anything else is an error. ctx bounds opening and migrating. Errors never
// contain the spec's password.
func Open(ctx context.Context, spec, dataDir string) (store.Store, error) {
	switch {
	case spec == "" || spec == "sqlite":
		if dataDir == "" {
			return nil, errors.New("open store: sqlite needs a data directory")
		}
		s, err := sqlite.OpenContext(ctx, filepath.Join(dataDir, SQLiteFile))
		if err != nil {
			return nil, err
		}
		return s, nil
	case isPostgres(spec):
		// Schemes are case-insensitive; pgx wants them in lower case.
		i := strings.Index(spec, "://")
		s, err := postgres.Open(ctx, strings.ToLower(spec[:i])+spec[i:])
		if err != nil {
			return nil, err
		}
		return s, nil
	default:
		return nil, fmt.Errorf("open store: unsupported store %q (want \"sqlite\" or a postgres:// URL)", Redact(spec))
	}
}

func isPostgres(spec string) bool {
	l := strings.ToLower(spec)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// Redact returns spec fit for a log line: a URL's password is replaced by
// "xxxxx", and a password= query parameter too. A spec that does not parse
// as a URL is returned as its scheme only (or "<invalid>").
func Redact(spec string) string {
	if spec == "" || spec == "sqlite" {
		return spec
	}
	u, err := url.Parse(spec)
	if err != nil {
		if i := strings.Index(spec, "://"); i > 0 {
			return spec[:i] + "://<invalid>"
		}
		return "<invalid>"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}
