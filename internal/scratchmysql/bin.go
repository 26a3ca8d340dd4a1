package scratchmysql

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// InstallHint is the remedy included in the errors for missing binaries.
const InstallHint = "apt-get install -y mariadb-server mariadb-client (or run `make deps`)"

// ErrNotInstalled is wrapped by the error [Start] and [FindBinaries] return
// when the MariaDB server binaries are missing.
var ErrNotInstalled = errors.New("scratchmysql: MariaDB server binaries (mariadb-install-db, mariadbd) not found")

// binDirs are searched after $PATH: Debian puts mariadbd in /usr/sbin, which
// is not on a normal user's PATH.
var binDirs = []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"}

// lookBin returns the first of names found on $PATH or in binDirs.
func lookBin(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		for _, d := range binDirs {
			if p := inDir(d, n); p != "" {
				return p
			}
		}
	}
	return ""
}

// FindBinaries returns the paths of the data-directory initialiser and the
// server, from dir only when it is set. The error wraps [ErrNotInstalled]
// and names the packages.
func FindBinaries(dir string) (installDB, server string, err error) {
	if dir != "" {
		installDB, server = inDir(dir, "mariadb-install-db", "mysql_install_db"), inDir(dir, "mariadbd", "mysqld")
	} else {
		installDB, server = lookBin("mariadb-install-db", "mysql_install_db"), lookBin("mariadbd", "mysqld")
	}
	if installDB == "" || server == "" {
		where := "$PATH and " + strings.Join(binDirs, ", ")
		if dir != "" {
			where = dir
		}
		return "", "", fmt.Errorf("%w in %s; install them with: %s", ErrNotInstalled, where, InstallHint)
	}
	return installDB, server, nil
}

func inDir(dir string, names ...string) string {
	for _, n := range names {
		p := filepath.Join(dir, n)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// ClientPath returns the mariadb (or mysql) command-line client.
func ClientPath() (string, error) {
	if p := lookBin("mariadb", "mysql"); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("scratchmysql: the mariadb/mysql client is not installed; install it with: %s", InstallHint)
}
