// Command sluice is the single Sluice binary: gateway, agent, demo, and the
// user/admin command-line client that talks to the gateway REST API.
package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
)

// app carries the process environment so the CLI can be driven from tests.
type app struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	// httpClient is used for REST API calls; nil means a client with a default timeout.
	httpClient *http.Client
}

// usageError marks a command-line misuse: it is reported with exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

const usageText = `Usage: sluice <command> [arguments]

Server commands:
  gateway                 run the gateway (control plane, tunnels, protocol listeners)
  agent                   run an agent (key DSN from SLUICE_KEY)
  demo                    run gateway + agent + a scratch PostgreSQL on loopback

User commands:
  login --user NAME       log in with a local password (read from stdin or a prompt)
  token                   print the saved access token
  token list [--user U] [-o json]         list your access tokens (an admin: anyone's)
  token revoke ID                         revoke one of your tokens (an admin: anyone's)
  ls [-o json]            list the connections you can reach
  connect NAME [--port N] forward a local Postgres port to connection NAME

Admin commands:
  admin create agent NAME                 create (or rotate) an agent; prints its key DSN
  admin create token USER [--ttl 8h] [--name LABEL]
                                          issue an access token for USER
  admin create user NAME [--groups a,b] [--password-stdin]
  admin create connection NAME --agent A --type T --target URL
  admin apply -f FILE                     apply YAML documents (-f - reads stdin): agents,
                                          groups, users, connections, rules, webhooks
  admin get agents|connections|users|groups|rules|webhooks [NAME] [-o json]
  admin get sessions [--user U] [--connection C] [--outcome O] [--since T] [--until T] [--limit N] [-o json]
  admin get session ID [-o json]          one session record
  admin get statements SESSION [--limit N] [-o json]
  admin get recording SESSION [-o FILE]   download the recording (verified as it streams)
  admin get dead-letters [--webhook W] [--limit N] [-o json]
  admin audit verify SESSION [-o json]    check a recording's hash chain; exit 1 unless intact and complete
  admin review list [--status pending] [--user U] [--connection C] [--kind K] [-o json]
  admin review approve ID [--duration 2h] [--note TEXT]
  admin review reject ID [--note TEXT]
  admin kill SESSION                      end a live session
  admin redeliver DEAD_LETTER_ID          send a dead letter again; deleted once delivered
  admin delete agent|connection|user|group|rule|webhook NAME
  admin delete dead-letter ID

Other:
  version                 print the version
  help                    print this help

Environment:
  SLUICE_API        REST API base URL (default http://127.0.0.1:8009)
  SLUICE_TOKEN      access token (default: the saved login, then $SLUICE_DATA_DIR/admin.token)
  SLUICE_HOME       where the login is saved (default ~/.sluice)
  SLUICE_DATA_DIR   gateway data directory (default ./.sluice)
  SLUICE_PG_ADDR    gateway Postgres address for connect (default: from the API)
`

func main() {
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(a.run(os.Args[1:]))
}

// run executes one command line and returns the process exit status.
func (a *app) run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(a.stderr, usageText)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "gateway":
		err = runGateway(rest)
	case "agent":
		err = runAgent(rest)
	case "demo":
		err = runDemo(rest)
	case "admin":
		err = a.runAdmin(rest)
	case "login":
		err = a.runLogin(rest)
	case "token":
		err = a.runToken(rest)
	case "ls":
		err = a.runLs(rest)
	case "connect":
		err = a.runConnect(rest)
	case "version", "--version", "-version":
		fmt.Fprintf(a.stdout, "sluice %s\n", version)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(a.stdout, usageText)
	default:
		fmt.Fprintf(a.stderr, "sluice: unknown command %q\n\n", cmd)
		fmt.Fprint(a.stderr, usageText)
		return 2
	}
	return a.exitStatus(err)
}

func (a *app) exitStatus(err error) int {
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(a.stderr, "sluice: %s\n", ue.msg)
		fmt.Fprintln(a.stderr, "Run 'sluice help' for usage.")
		return 2
	}
	if errors.Is(err, errFlagHelp) {
		return 0
	}
	fmt.Fprintf(a.stderr, "sluice: %s\n", err)
	return 1
}
