package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-gw/sluice/agent"
	"github.com/sluice-gw/sluice/internal/server"
	"github.com/sluice-gw/sluice/transport"
)

// faultProxy sits between an agent and the gateway's tunnel port, on TCP
// (gRPC) and UDP (QUIC) at once. Cut drops every connection and refuses or
// blackholes new traffic until Restore: the agent's network path is gone.
type faultProxy struct {
	target string
	ln     net.Listener
	pc     net.PacketConn

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	udp   map[string]*net.UDPConn // client address → socket towards the gateway
	wg    sync.WaitGroup
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	p := &faultProxy{target: target, conns: map[net.Conn]struct{}{}, udp: map[string]*net.UDPConn{}}
	for try := 0; ; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err == nil {
			p.ln, p.pc = ln, pc
			break
		}
		ln.Close()
		if try == 9 {
			t.Fatal(err)
		}
	}
	p.wg.Add(2)
	go p.serveTCP()
	go p.serveUDP()
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) Addr() string { return p.ln.Addr().String() }

func (p *faultProxy) serveTCP() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

func (p *faultProxy) serveUDP() {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := p.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			continue
		}
		up := p.udp[from.String()]
		if up == nil {
			raddr, _ := net.ResolveUDPAddr("udp", p.target)
			if up, err = net.DialUDP("udp", nil, raddr); err != nil {
				p.mu.Unlock()
				continue
			}
			p.udp[from.String()] = up
			go func(up *net.UDPConn, client net.Addr) {
				b := make([]byte, 64<<10)
				for {
					n, err := up.Read(b)
					if err != nil {
						return
					}
					p.mu.Lock()
					cut := p.cut
					p.mu.Unlock()
					if !cut {
						p.pc.WriteTo(b[:n], client)
					}
				}
			}(up, from)
		}
		p.mu.Unlock()
		up.Write(buf[:n])
	}
}

// Cut drops the path: TCP connections are closed and new ones refused, UDP
// packets are dropped both ways.
func (p *faultProxy) Cut() {
	p.mu.Lock()
	p.cut = true
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

func (p *faultProxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

func (p *faultProxy) close() {
	p.Cut()
	p.ln.Close()
	p.pc.Close()
	p.mu.Lock()
	for _, u := range p.udp {
		u.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// resumeRig is an agent whose tunnel runs through a faultProxy, serving its
// own connection on the shared gateway.
type resumeRig struct {
	t          *testing.T
	name       string
	connection string
	transport  string
	dsn        string
	proxy      *faultProxy

	mu     sync.Mutex
	tunnel transport.Tunnel
	agent  *agent.Agent
	stop   func()
}

func newResumeRig(t *testing.T, transportName string) *resumeRig {
	t.Helper()
	r := &resumeRig{t: t, transport: transportName}
	r.name = fmt.Sprintf("resume-%s-%d", transportName, time.Now().UnixNano()%1e6)
	r.connection = "pg-" + r.name
	r.proxy = newFaultProxy(t, E.gw.TunnelAddr)
	var out struct{ DSN string }
	json.Unmarshal(E.must("POST", "/api/v1/agents", map[string]any{"name": r.name}), &out)
	u, err := url.Parse(out.DSN)
	if err != nil || out.DSN == "" {
		t.Fatalf("agent dsn %q: %v", out.DSN, err)
	}
	u.Host = r.proxy.Addr()
	if transportName == "quic" {
		u.Scheme = "quic"
	}
	r.dsn = u.String()
	E.must("PUT", "/api/v1/connections/"+r.connection, map[string]any{"agent": r.name, "type": "postgres", "target": E.pg.URL("app", "app-secret", "app")})
	r.start()
	t.Cleanup(func() {
		r.mu.Lock()
		stop := r.stop
		r.mu.Unlock()
		if stop != nil {
			stop()
		}
		E.api("DELETE", "/api/v1/connections/"+r.connection, nil)
		E.api("DELETE", "/api/v1/agents/"+r.name, nil)
	})
	if err := E.waitOnline(r.name); err != nil {
		t.Fatal(err)
	}
	return r
}

// start runs a fresh in-process agent (a new process, as far as the
// gateway can tell: its sessions are its own).
func (r *resumeRig) start() {
	a, err := server.NewAgent(server.AgentConfig{DSN: r.dsn, Logger: testLogger(), OnTunnel: func(t transport.Tunnel) {
		r.mu.Lock()
		r.tunnel = t
		r.mu.Unlock()
	}})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	r.mu.Lock()
	r.agent = a
	r.stop = func() { cancel(); <-done }
	r.mu.Unlock()
}

// drain is what SIGTERM does to `sluice agent`.
func (r *resumeRig) drain(timeout time.Duration) {
	r.mu.Lock()
	a := r.agent
	r.mu.Unlock()
	a.Shutdown(timeout)
}

// cut takes the agent's network path away. Over QUIC a short blackhole
// alone does not end the connection (it rides it out with its own
// retransmissions), so both ends also drop the tunnel and the agent has to
// re-dial through the dead path, as after a real outage.
func (r *resumeRig) cut() {
	r.proxy.Cut()
	if r.transport == "quic" {
		r.mu.Lock()
		t := r.tunnel
		r.mu.Unlock()
		if t != nil {
			t.Close()
		}
		E.gw.Hub.Disconnect(r.name)
	}
}

func (r *resumeRig) conninfo() string { return E.conninfo(r.connection, E.aliceToken) }

// psqlBackground starts psql with args and returns its stdout and a wait
// function returning stderr and the exit error.
func psqlBackground(t *testing.T, args ...string) (io.Reader, func() (string, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	cmd := exec.CommandContext(ctx, E.psql, args...)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=20", "PSQLRC=/dev/null")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return out, func() (string, error) {
		err := cmd.Wait()
		cancel()
		return stderr.String(), err
	}
}

// waitQuery waits until a backend runs a statement containing marker (a
// plain identifier).
func waitQuery(t *testing.T, marker string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n, err := E.pg.Query(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE strpos(query, '"+marker+"') > 0 AND pid <> pg_backend_pid()")
		if err == nil && n == "1" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s backends running a statement with %q (err %v), want 1", n, marker, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var transports = []string{"grpc", "quic"}

// TestSessionSurvivesTunnelCut: psql's pg_sleep(20) and a large COPY both
// complete through a 10 s cut of the agent's network path, and the next
// query on the same psql connection works.
func TestSessionSurvivesTunnelCut(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			r := newResumeRig(t, tr)
			t.Run("Sleep", func(t *testing.T) {
				marker := "slept_" + tr
				out, wait := psqlBackground(t, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", "select pg_sleep(20) is null as "+marker, "-c", "select 'next query'", r.conninfo())
				waitQuery(t, marker)
				r.cut()
				time.Sleep(10 * time.Second)
				r.proxy.Restore()
				b, _ := io.ReadAll(out)
				stderr, err := wait()
				if err != nil || string(b) != "f\nnext query\n" { // pg_sleep returns void, which is not null
					t.Fatalf("psql: %v\nstdout %q\nstderr %s", err, b, stderr)
				}
			})
			t.Run("Copy", func(t *testing.T) {
				const rows = 1_500_000
				copySQL := fmt.Sprintf(`\copy (select g, md5(g::text) from generate_series(1,%d) g) to stdout`, rows)
				want, _, err := runTool(t, nil, E.psql, "-X", "-c", copySQL, E.directConninfo())
				if err != nil {
					t.Fatal(err)
				}
				want += "after copy\n"
				out, wait := psqlBackground(t, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", copySQL, "-c", "select 'after copy'", r.conninfo())
				h := sha256.New()
				br := bufio.NewReaderSize(out, 64<<10)
				var n int64
				cutDone := make(chan struct{})
				var once sync.Once
				for {
					b, err := br.ReadSlice('\n')
					h.Write(b)
					n += int64(len(b))
					if n > int64(len(want))/3 {
						once.Do(func() {
							r.cut()
							go func() {
								defer close(cutDone)
								time.Sleep(10 * time.Second)
								r.proxy.Restore()
							}()
						})
					}
					if errors.Is(err, bufio.ErrBufferFull) {
						continue
					}
					if err != nil {
						break
					}
				}
				stderr, err := wait()
				<-cutDone
				ws := sha256.Sum256([]byte(want))
				if err != nil || n != int64(len(want)) || hex.EncodeToString(h.Sum(nil)) != hex.EncodeToString(ws[:]) {
					t.Fatalf("psql: %v; got %d bytes, want %d, checksums differ or equal: %x vs %x\nstderr %s", err, n, len(want), h.Sum(nil), ws, stderr)
				}
			})
		})
	}
}

// TestAgentRestartEndsSessionsCleanly: an agent that restarts lost its
// upstream connections; its sessions end with a native error that says so
// and an audit outcome of agent_lost.
func TestAgentRestartEndsSessionsCleanly(t *testing.T) {
	r := newResumeRig(t, "grpc")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, r.conninfo())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
	r.cut()
	r.mu.Lock()
	stop := r.stop
	r.mu.Unlock()
	stop() // the old agent process is gone, and its upstream connections with it
	r.start()
	r.proxy.Restore()
	// The gateway tells the idle client as soon as the new agent answers.
	err = c.WaitForNotification(ctx)
	var e *pgconn.PgError
	if !errors.As(err, &e) || e.Code != "08006" || !strings.Contains(e.Message, "no such session") || !strings.Contains(e.Message, "restarted") {
		t.Fatalf("got %v, want FATAL 08006 saying the agent restarted", err)
	}
	waitSessionOutcome(t, r.connection, "agent_lost")
}

// waitSessionOutcome waits for connection's latest session record to have
// outcome (records are written in batches).
func waitSessionOutcome(t *testing.T, connection, outcome string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		var list []struct{ Connection, Outcome, Error string }
		json.Unmarshal(E.must("GET", "/api/v1/sessions?limit=200", nil), &list)
		for _, s := range list {
			if s.Connection == connection {
				last = s.Outcome + ": " + s.Error
				if s.Outcome == outcome {
					return
				}
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("session on %s: outcome %q, want %q", connection, last, outcome)
}

// TestAgentDrain: SIGTERM on an agent (Shutdown) lets short sessions finish,
// refuses new ones, and ends the rest after the drain timeout with 57P01.
func TestAgentDrain(t *testing.T) {
	r := newResumeRig(t, "grpc")
	short, waitShort := psqlBackground(t, "-X", "-At", "-c", "select pg_sleep(3) is null as drain_short", r.conninfo())
	long, waitLong := psqlBackground(t, "-X", "-At", "-c", "select pg_sleep(60) is null as drain_long", r.conninfo())
	waitQuery(t, "drain_short")
	waitQuery(t, "drain_long")
	shut := r.shutdown(4 * time.Second)
	// A new session is refused while draining.
	if _, stderr, err := runTool(t, nil, E.psql, "-X", "-At", "-c", "select 1", r.conninfo()); err == nil || !strings.Contains(stderr, "shutting down") {
		t.Fatalf("new session during drain: %v %s", err, stderr)
	}
	b, _ := io.ReadAll(short)
	if stderr, err := waitShort(); err != nil || string(b) != "f\n" {
		t.Fatalf("short session: %v %q %s", err, b, stderr)
	}
	io.ReadAll(long)
	stderr, err := waitLong()
	if err == nil || !strings.Contains(stderr, "is shutting down") {
		t.Fatalf("long session: %v %s", err, stderr)
	}
	<-shut
}

// shutdown drains the rig's agent as SIGTERM does and then stops it.
func (r *resumeRig) shutdown(timeout time.Duration) <-chan struct{} {
	r.mu.Lock()
	stop := r.stop
	r.stop = nil
	r.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.drain(timeout)
		stop()
	}()
	return done
}

// TestSoakTunnelCuts runs pgbench -c 8 through an agent whose tunnel is cut
// every SLUICE_SOAK_CUT_EVERY (default 15 s) for SLUICE_SOAK (default 45 s;
// `make soak` runs 5 minutes with a cut every 30 s): no transaction may fail.
func TestSoakTunnelCuts(t *testing.T) {
	total := envDurationT("SLUICE_SOAK", 45*time.Second)
	every := envDurationT("SLUICE_SOAK_CUT_EVERY", 15*time.Second)
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			r := newResumeRig(t, tr)
			if _, stderr, err := runTool(t, nil, E.pgbench, "-i", "-s", "1", "-q", E.directConninfo()); err != nil {
				t.Fatalf("pgbench -i: %v %s", err, stderr)
			}
			var cuts atomic.Int32
			stopCuts := make(chan struct{})
			cutter := make(chan struct{})
			go func() {
				defer close(cutter)
				for {
					select {
					case <-stopCuts:
						return
					case <-time.After(every):
					}
					r.cut()
					cuts.Add(1)
					time.Sleep(2 * time.Second)
					r.proxy.Restore()
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), total+3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, E.pgbench, "-c", "8", "-j", "2", "-T", strconv.Itoa(int(total.Seconds())), "-n", "-b", "tpcb-like", r.conninfo())
			cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=20")
			var outb, errb strings.Builder
			cmd.Stdout, cmd.Stderr = &outb, &errb
			err := cmd.Run()
			stdout, stderr := outb.String(), errb.String()
			close(stopCuts)
			<-cutter
			processed := matchInt(stdout, `number of transactions actually processed: (\d+)`)
			failed := matchInt(stdout, `number of failed transactions: (\d+)`)
			t.Logf("soak over %s: %d tunnel cuts, %d transactions, %d failed", tr, cuts.Load(), processed, failed)
			if err != nil || processed <= 0 || failed != 0 || strings.Contains(stderr, "aborted") {
				t.Fatalf("pgbench: %v\n%s\n%s", err, stdout, stderr)
			}
			if cuts.Load() == 0 {
				t.Fatal("the tunnel was never cut")
			}
		})
	}
}

func matchInt(s, re string) int {
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func envDurationT(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

// TestGatewayDrain: SIGTERM on the gateway (Shutdown) refuses new clients,
// lets a short session finish and ends a long one after the drain timeout
// with 57P01.
func TestGatewayDrain(t *testing.T) {
	dir := t.TempDir()
	cfg := server.DefaultGatewayConfig()
	cfg.DataDir = dir
	cfg.APIAddr, cfg.TunnelAddr, cfg.PGAddr, cfg.MySQLAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", ""
	cfg.Logger = testLogger()
	g, err := server.StartGateway(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	admin, err := g.AdminToken()
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path string, body any) []byte {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, "http://"+g.APIAddr+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, out)
		}
		return out
	}
	var ag struct{ DSN string }
	json.Unmarshal(call("POST", "/api/v1/agents", map[string]any{"name": "drain-agent"}), &ag)
	call("PUT", "/api/v1/connections/pg-drain", map[string]any{"agent": "drain-agent", "type": "postgres", "target": E.pg.URL("app", "app-secret", "app")})
	a, err := server.NewAgent(server.AgentConfig{DSN: ag.DSN, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	actx, stopAgent := context.WithCancel(context.Background())
	agentDone := make(chan struct{})
	go func() { defer close(agentDone); a.Run(actx) }()
	defer func() { stopAgent(); <-agentDone }()
	for deadline := time.Now().Add(15 * time.Second); !g.Hub.Online("drain-agent"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("agent did not come online")
		}
	}
	host, port := splitHostPort(g.PGAddr)
	conninfo := fmt.Sprintf("host=%s port=%s user=admin dbname=pg-drain password=%s sslmode=require", host, port, admin)

	short, waitShort := psqlBackground(t, "-X", "-At", "-c", "select pg_sleep(3) is null as gwdrain_short", conninfo)
	long, waitLong := psqlBackground(t, "-X", "-At", "-c", "select pg_sleep(60) is null as gwdrain_long", conninfo)
	waitQuery(t, "gwdrain_short")
	waitQuery(t, "gwdrain_long")
	shut := make(chan struct{})
	go func() { defer close(shut); g.Shutdown(5 * time.Second) }()
	time.Sleep(300 * time.Millisecond)
	if _, stderr, err := runTool(t, nil, E.psql, "-X", "-At", "-c", "select 1", conninfo); err == nil {
		t.Fatalf("a new session was accepted while draining: %s", stderr)
	}
	b, _ := io.ReadAll(short)
	if stderr, err := waitShort(); err != nil || string(b) != "f\n" {
		t.Fatalf("short session: %v %q %s", err, b, stderr)
	}
	io.ReadAll(long)
	stderr, err := waitLong()
	if err == nil || !strings.Contains(stderr, "57P01") && !strings.Contains(stderr, "gateway is shutting down") {
		t.Fatalf("long session: %v %s", err, stderr)
	}
	<-shut
}
