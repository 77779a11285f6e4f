// Package proxy is mailgate's SMTP side: the server that takes client
// sessions, the DATA reader and spool, the upstream client (SMTP or the
// embedded Maildir), and the application of policy verdicts before the
// client is answered (a before-queue filter).
package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mailgate/clamd"
	"mailgate/config"
	"mailgate/facts"
	"mailgate/internal/bounded"
	"mailgate/redisstate"
	"mailgate/spool"
	"mailgate/upstream"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// liveConfig is everything a reload replaces at once; a session keeps the one
// it started with.
type liveConfig struct {
	cfg      *config.Config
	engine   Engine // nil: no policies
	lookups  lookupSetup
	upstream upstream.Upstream
	tls      *tls.Config
	// clamd scans messages when the engine reads Virus (nil: no clamd:
	// section; config.LoadPolicies then refuses a set that reads Virus).
	clamd *clamd.Client
	// noXclientWarn logs, once per configuration, that xclient is on but
	// the upstream does not offer XCLIENT.
	noXclientWarn sync.Once
}

// Options are what the caller provides beside the config.Config.
type Options struct {
	Logger *slog.Logger
	// LoadEngine compiles the policies a config names (nil engine: none).
	LoadEngine func(cfg *config.Config) (Engine, error)
	// Work bounds policy evaluations and parses (shared with the other
	// front-ends of the process); nil: a Runner of the server's own.
	Work   *bounded.Runner
	Dialer upstream.Dialer // upstream dialer; nil: net.Dialer
	// Upstream replaces the config's upstream (tests, benchmarks).
	Upstream upstream.Upstream
	// LogLevel is the level of Logger; a reload sets it to log.level.
	// nil: a changed log.level is logged as needing a restart.
	LogLevel *slog.LevelVar
}

// Server accepts client sessions on the configured addresses.
type Server struct {
	rt         atomic.Pointer[liveConfig]
	opts       Options
	log        *slog.Logger
	metrics    *metrics
	active     atomic.Int64
	panicCount atomic.Int64
	first      *config.Config // the config the server started with: its listeners, log format
	seq        atomic.Uint64
	idPrefix   string

	mu          sync.Mutex
	listeners   []net.Listener
	sessions    map[*Session]struct{}
	wg          sync.WaitGroup
	stopping    atomic.Bool
	ctx         context.Context // cancelled when shutdown begins
	cancel      context.CancelFunc
	metricsHS   *http.Server
	metricsAddr string // metrics_listen as bound

	// spoolBudget bounds the message bytes all sessions hold in memory;
	// sized from the first config (limits.spool_memory_total), like listen.
	spoolBudget *spool.Budget

	// work runs policy evaluations and parses with timeouts.policy and
	// timeouts.inspect; past them they are abandoned, and while too many
	// still run new messages are tempfailed (internal/bounded).
	work *bounded.Runner

	// resolver is the one DNS resolver of the lookups, made with the
	// first configuration that needs it (lookups.go).
	resolverMu sync.Mutex
	resolver   *facts.Resolver

	refusedConns  atomic.Int64 // connections refused since the last log line
	refusedLogged atomic.Int64 // when that line was written (unix ns)
}

// NewServer validates cfg, loads its policies and builds the upstream.
func NewServer(cfg *config.Config, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var rnd [3]byte
	rand.Read(rnd[:])
	s := &Server{opts: opts, log: opts.Logger, metrics: newMetrics(), sessions: map[*Session]struct{}{},
		idPrefix: hex.EncodeToString(rnd[:])}
	s.work = opts.Work
	if s.work == nil {
		s.work = bounded.New(0)
		s.work.OnPanic = func(v any, stack []byte) {
			s.metrics.panics.Inc()
			s.panicCount.Add(1)
			s.log.Error("panic in abandoned policy evaluation or parse", "panic", fmt.Sprint(v), "stack", string(stack))
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	rt, err := s.build(cfg)
	if err != nil {
		return nil, err
	}
	s.rt.Store(rt)
	s.first = cfg
	s.spoolBudget = spool.NewBudget(cfg.Limits.SpoolTotal)
	s.metrics.reloadSuccess(true, time.Now())
	s.logPolicies(rt)
	return s, nil
}

// logPolicies says which rules a (re)loaded configuration runs; running
// none is a warning, at start and at every reload, since every message
// then passes unchecked (`policies: []`, docs/DESIGN.md "Configuration").
func (s *Server) logPolicies(rt *liveConfig) {
	if rt.engine == nil {
		s.log.Warn("no policies: every message is relayed unchecked (policies: [] in the config)", "config", rt.cfg.File)
		return
	}
	s.log.Info("policies loaded", "config", rt.cfg.File, "rules", strings.Join(rt.engine.RuleNames(), ","))
	s.checkServices(rt)
}

// checkServices says at start and at each reload whether clamd and Redis
// answer. Neither being down stops serve: the rules that read them
// tempfail until they are back (docs/DESIGN.md "Wave 2 contract").
func (s *Server) checkServices(rt *liveConfig) {
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
	defer cancel()
	if rt.clamd != nil && engineUses(rt.engine, "Virus") {
		if err := rt.clamd.Ping(ctx); err != nil {
			s.log.Warn("clamd does not answer: messages are tempfailed until it does", "clamd", rt.cfg.Clamd.Address, "err", err)
		} else {
			s.log.Info("virus scanning with clamd", "clamd", rt.cfg.Clamd.Address, "max_size", rt.cfg.Clamd.MaxSize)
		}
	}
	if rt.cfg.State != nil {
		rs, err := redisstate.New(rt.cfg.State.Redis)
		if err == nil {
			err = rs.Ping(ctx)
			rs.Close()
		}
		if err != nil {
			s.log.Warn("state.redis does not answer: rules reading rate() or greylisting tempfail until it does", "err", err)
		} else {
			s.log.Info("rate() and greylisting in Redis, shared with every mailgate naming it")
		}
	}
}

func (s *Server) build(cfg *config.Config) (*liveConfig, error) {
	rt := &liveConfig{cfg: cfg}
	var err error
	if rt.upstream = s.opts.Upstream; rt.upstream == nil {
		if rt.upstream, err = upstream.New(cfg, s.opts.Dialer); err != nil {
			return nil, err
		}
	}
	if rt.tls, err = config.ServerTLS(cfg.TLSCert, cfg.TLSKey); err != nil {
		return nil, err
	}
	if cfg.Clamd != nil {
		if rt.clamd, err = clamd.New(cfg.Clamd.Address, cfg.Clamd.Timeout, cfg.Clamd.MaxSize); err != nil {
			return nil, err
		}
	}
	if s.opts.LoadEngine != nil {
		if rt.engine, err = s.opts.LoadEngine(cfg); err != nil {
			return nil, err
		}
	}
	if rt.lookups, err = s.buildLookups(cfg, rt.engine); err != nil {
		return nil, err
	}
	return rt, nil
}

// Reload builds the new config's liveConfig (policies included) and swaps it
// in atomically; on error the running one stays (docs/DEVELOPING.md rule 18).
// log.level is applied (with Options.LogLevel); listen, metrics_listen and
// log.format keep their first values, and a change to them is logged as
// needing a restart.
func (s *Server) Reload(cfg *config.Config) error {
	rt, err := s.build(cfg)
	if err != nil {
		s.ReloadFailed(err)
		return err
	}
	s.rt.Store(rt)
	s.metrics.reloads.WithLabelValues("ok").Inc()
	s.metrics.reloadSuccess(true, time.Now())
	s.log.Info("configuration reloaded", "file", cfg.File)
	s.applyRestartOnly(cfg)
	s.logPolicies(rt)
	return nil
}

// ReloadFailed counts and logs a reload that failed before a config could
// be built (a syntax error in the file): the running configuration stays.
func (s *Server) ReloadFailed(err error) {
	s.metrics.reloads.WithLabelValues("failed").Inc()
	s.metrics.reloadSuccess(false, time.Time{})
	s.log.Error("reload failed, keeping the running configuration", "err", err)
}

// applyRestartOnly compares the keys a reload cannot apply with the values
// the server started with, and applies log.level.
func (s *Server) applyRestartOnly(cfg *config.Config) {
	first := s.first
	if lv := s.opts.LogLevel; lv != nil {
		if want := ParseLevel(cfg.LogLevel); lv.Level() != want {
			lv.Set(want)
			s.log.Info("log level changed", "level", cfg.LogLevel)
		}
	} else if cfg.LogLevel != first.LogLevel {
		s.log.Warn("log.level changed: restart mailgate to apply it", "running", first.LogLevel, "new", cfg.LogLevel)
	}
	if cfg.LogFormat != first.LogFormat {
		s.log.Warn("log.format changed: restart mailgate to apply it", "running", first.LogFormat, "new", cfg.LogFormat)
	}
	if !slices.Equal(cfg.Listen, first.Listen) {
		s.log.Warn("listen changed: restart mailgate to apply it", "running", first.Listen, "new", cfg.Listen)
	}
	s.mu.Lock()
	running := s.metricsAddr
	s.mu.Unlock()
	if cfg.MetricsListen != running {
		s.log.Warn("metrics_listen changed: restart mailgate to apply it", "running", running, "new", cfg.MetricsListen)
	}
}

// Listen binds every configured address.
func (s *Server) Listen() error {
	for _, a := range s.rt.Load().cfg.Listen {
		l, err := net.Listen("tcp", a)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("listen %s: %w", a, err)
		}
		s.mu.Lock()
		s.listeners = append(s.listeners, l)
		s.mu.Unlock()
	}
	return nil
}

// Addrs are the bound addresses.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []net.Addr
	for _, l := range s.listeners {
		out = append(out, l.Addr())
	}
	return out
}

// Serve accepts on every bound listener until Shutdown or Close.
func (s *Server) Serve() error {
	s.mu.Lock()
	ls := append([]net.Listener(nil), s.listeners...)
	s.mu.Unlock()
	errc := make(chan error, len(ls))
	for _, l := range ls {
		go func() { errc <- s.serveListener(l) }()
	}
	var first error
	for range ls {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// ServeListener accepts sessions on l (tests pass their own).
func (s *Server) ServeListener(l net.Listener) error {
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	return s.serveListener(l)
}

func (s *Server) serveListener(l net.Listener) error {
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.stopping.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed, retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		s.handle(c)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// logRefusedConn logs a connection refused past limits.connections, at
// most once a second with the count since the last line, so a flood cannot
// flood the log as well.
func (s *Server) logRefusedConn(remote string, limit int) {
	n := s.refusedConns.Add(1)
	now := time.Now().UnixNano()
	last := s.refusedLogged.Load()
	if now-last < int64(time.Second) || !s.refusedLogged.CompareAndSwap(last, now) {
		return
	}
	s.refusedConns.Add(-n)
	s.log.Warn("too many connections, refused", "client", remote, "limit", limit, "refused", n)
}

func (s *Server) handle(c net.Conn) {
	rt := s.rt.Load()
	if lim := rt.cfg.Limits.Connections; lim > 0 && s.active.Load() >= int64(lim) {
		s.metrics.connections.WithLabelValues("refused").Inc()
		s.logRefusedConn(c.RemoteAddr().String(), lim)
		go func() {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write(formatReply(nil, replyTooManyConns))
			c.Close()
		}()
		return
	}
	s.metrics.connections.WithLabelValues("accepted").Inc()
	s.active.Add(1)
	s.metrics.sessionsActive.Inc()
	id := fmt.Sprintf("%s%06d", s.idPrefix, s.seq.Add(1))
	sess := newSession(s, rt, c, id)
	s.mu.Lock()
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer func() {
			s.mu.Lock()
			delete(s.sessions, sess)
			s.mu.Unlock()
			s.active.Add(-1)
			s.metrics.sessionsActive.Dec()
			s.wg.Done()
		}()
		sess.serve(s.ctx)
	}()
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		l.Close()
	}
	s.listeners = nil
}

// Shutdown stops accepting, lets sessions finish their transaction, and
// answers idle ones 421; when ctx ends, the rest are cut off with 421.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopping.Store(true)
	s.closeListeners()
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.kick(false)
		select {
		case <-done:
			s.closeMetrics()
			return nil
		case <-ctx.Done():
			s.kick(true)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
			}
			s.closeMetrics()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close stops at once: listeners and sessions closed.
func (s *Server) Close() error {
	s.stopping.Store(true)
	s.closeListeners()
	s.cancel()
	s.kick(true)
	s.wg.Wait()
	s.closeMetrics()
	return nil
}

// kick wakes sessions waiting for a command (all sessions when force) by
// expiring their read deadline; they then answer 421 and end.
func (s *Server) kick(force bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.sessions {
		if force || sess.idle.Load() {
			sess.raw.SetReadDeadline(time.Now())
		}
	}
}

// ListenMetrics serves Prometheus metrics on addr (path /metrics) and the
// Go profiler under /debug/pprof/ (the metrics address is an operator's
// loopback port; profiles are how a slow gateway is diagnosed in place).
func (s *Server) ListenMetrics(addr string) (net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics_listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.metricsHS = hs
	s.metricsAddr = addr
	s.mu.Unlock()
	go hs.Serve(l)
	return l.Addr(), nil
}

func (s *Server) closeMetrics() {
	s.mu.Lock()
	hs := s.metricsHS
	s.mu.Unlock()
	if hs != nil {
		hs.Close()
	}
}

// Panics is the number of panics recovered in sessions (tests assert 0).
func (s *Server) Panics() int64 { return s.panicCount.Load() }

// Abandoned is the number of abandoned evaluations and parses still
// running (tests).
func (s *Server) Abandoned() int64 { return s.work.Abandoned() }
