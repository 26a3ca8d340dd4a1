package scratchpg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// InstallHint is the remedy included in the error returned when no
// PostgreSQL server installation can be found.
const InstallHint = "apt-get install -y postgresql-15"

// ErrNotInstalled is wrapped by the error returned by [FindBinDir] and
// [Start] when no PostgreSQL server binaries (initdb and postgres) exist.
var ErrNotInstalled = errors.New("scratchpg: PostgreSQL server binaries (initdb, postgres) not found")

// debianPGRoot is where Debian/Ubuntu install versioned PostgreSQL servers.
// It is a variable so tests can point it elsewhere.
var debianPGRoot = "/usr/lib/postgresql"

// FindBinDir returns the directory holding the PostgreSQL server binaries
// (initdb, postgres, pg_ctl, ...).
//
// It asks `pg_config --bindir` first. Debian's /usr/bin/pg_config (from
// libpq-dev) may report /usr/bin, which holds no initdb; in that case, or if
// pg_config is absent, it uses the newest /usr/lib/postgresql/<version>/bin
// that contains both initdb and postgres. If nothing is found the error wraps
// [ErrNotInstalled] and says to run `apt-get install -y postgresql-15`.
func FindBinDir() (string, error) {
	var tried []string
	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, pgConfig, "--bindir").Output()
		cancel()
		if err == nil {
			dir := strings.TrimSpace(string(out))
			if hasServerBinaries(dir) {
				return dir, nil
			}
			tried = append(tried, dir+" (from "+pgConfig+" --bindir)")
		}
	}
	if dir := newestDebianBinDir(); dir != "" {
		return dir, nil
	}
	tried = append(tried, filepath.Join(debianPGRoot, "*", "bin"))
	return "", fmt.Errorf("%w (looked in %s); install the PostgreSQL server with: %s",
		ErrNotInstalled, strings.Join(tried, ", "), InstallHint)
}

func hasServerBinaries(dir string) bool {
	if dir == "" {
		return false
	}
	for _, name := range []string{"initdb", "postgres"} {
		if !isExecutable(filepath.Join(dir, name)) {
			return false
		}
	}
	return true
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// newestDebianBinDir returns the bin dir of the highest-versioned server
// under debianPGRoot, or "".
func newestDebianBinDir() string {
	entries, err := os.ReadDir(debianPGRoot)
	if err != nil {
		return ""
	}
	type cand struct {
		ver []int
		dir string
	}
	var cands []cand
	for _, e := range entries {
		dir := filepath.Join(debianPGRoot, e.Name(), "bin")
		if !hasServerBinaries(dir) {
			continue
		}
		cands = append(cands, cand{parseVersion(e.Name()), dir})
	}
	if len(cands) == 0 {
		return ""
	}
	sort.Slice(cands, func(i, j int) bool { return versionLess(cands[j].ver, cands[i].ver) })
	return cands[0].dir
}

// parseVersion turns "15", "9.6" or "17beta1" into comparable integers.
func parseVersion(s string) []int {
	var v []int
	for _, part := range strings.Split(s, ".") {
		end := 0
		for end < len(part) && part[end] >= '0' && part[end] <= '9' {
			end++
		}
		n, _ := strconv.Atoi(part[:end])
		v = append(v, n)
	}
	return v
}

func versionLess(a, b []int) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

// findPsql prefers psql next to the server binaries, then /usr/bin/psql, then $PATH.
func findPsql(binDir string) (string, error) {
	for _, p := range []string{filepath.Join(binDir, "psql"), "/usr/bin/psql"} {
		if isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("psql"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("scratchpg: psql not found in %s, /usr/bin or $PATH; install it with: %s", binDir, InstallHint)
}

// cleanEnv returns the current environment without PG* variables (PGDATA,
// PGPASSWORD, PGSSLMODE, ... would otherwise leak into the child) plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// tail returns roughly the last n lines of the file at path.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	const maxBytes = 8 << 10
	if len(data) > maxBytes {
		data = data[len(data)-maxBytes:]
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
