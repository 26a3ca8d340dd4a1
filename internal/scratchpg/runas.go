package scratchpg

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// fallbackUser is created (useradd --system) when running as root on a
// machine without a "postgres" system user.
const fallbackUser = "sluicepg"

// runAs describes the OS identity that runs initdb and postgres.
// A nil *runAs means "the current user".
type runAs struct {
	name     string
	uid, gid int
}

var userMu sync.Mutex // serialises useradd within this process

// serverUser returns nil when not root, otherwise the unprivileged user that
// should own the cluster, creating the sluicepg user if needed.
func serverUser(ctx context.Context) (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	userMu.Lock()
	defer userMu.Unlock()
	for _, name := range []string{"postgres", fallbackUser} {
		if u, err := lookupUser(name); err == nil {
			return u, nil
		}
	}
	useradd, err := exec.LookPath("useradd")
	if err != nil {
		return nil, fmt.Errorf("scratchpg: running as root, no %q or %q user exists and useradd is unavailable: %w (install the server with: %s, which creates the postgres user)",
			"postgres", fallbackUser, err, InstallHint)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, addErr := exec.CommandContext(cctx, useradd, "--system", "--no-create-home",
		"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", fallbackUser).CombinedOutput()
	// Another process may have created it concurrently; look it up either way.
	if u, err := lookupUser(fallbackUser); err == nil {
		return u, nil
	}
	return nil, fmt.Errorf("scratchpg: running as root and no postgres user exists; useradd --system %s failed: %v: %s",
		fallbackUser, addErr, out)
}

func lookupUser(name string) (*runAs, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("scratchpg: user %s has non-numeric uid %q", name, u.Uid)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("scratchpg: user %s has non-numeric gid %q", name, u.Gid)
	}
	return &runAs{name: name, uid: uid, gid: gid}, nil
}

// sysProcAttr returns the attributes for a child that must run as r.
func (r *runAs) sysProcAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{}
	if r != nil {
		attr.Credential = &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.gid)}
	}
	setParentDeathSignal(attr)
	return attr
}

// chown makes path owned by r (no-op for the current user).
func (r *runAs) chown(path string) error {
	if r == nil {
		return nil
	}
	if err := os.Lchown(path, r.uid, r.gid); err != nil {
		return fmt.Errorf("scratchpg: chown %s to %s: %w", path, r.name, err)
	}
	return nil
}

// checkTraversable verifies that r can reach dir: every ancestor must be
// searchable by r. Root's TMPDIR under /root is the usual culprit.
func (r *runAs) checkTraversable(dir string) error {
	if r == nil {
		return nil
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("scratchpg: stat %s: %w", p, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok {
			mode := fi.Mode().Perm()
			okSearch := (int(st.Uid) == r.uid && mode&0o100 != 0) ||
				(int(st.Gid) == r.gid && mode&0o010 != 0) ||
				mode&0o001 != 0
			if !okSearch {
				return fmt.Errorf("scratchpg: directory %s is not searchable by user %s, which must run postgres because we are root; "+
					"use Options.Dir (or TMPDIR) somewhere world-searchable such as /tmp", p, r.name)
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func (r *runAs) String() string {
	if r == nil {
		if u, err := user.Current(); err == nil {
			return u.Username
		}
		return "uid " + strconv.Itoa(os.Getuid())
	}
	return r.name
}
