// Package milter is mailgate's milter front-end (protocol 6, for Postfix's
// and Sendmail's smtpd_milters): the same policies and the same
// transaction object (rules.Conn, rules.Tx) as the proxy, driven from the
// milter callbacks, with the verdict's edits sent as milter modification
// actions (docs/DESIGN.md "Milter mode").
package milter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	gomilter "github.com/d--j/go-milter"

	"mailgate/config"
	"mailgate/facts"
	"mailgate/internal/bounded"
	"mailgate/rules"
	"mailgate/spool"
)

// Options are what the caller provides beside the config.Config.
type Options struct {
	Logger *slog.Logger
	// LoadPolicies compiles the policies a config names (nil set: none,
	// `policies: []`).
	LoadPolicies func(cfg *config.Config) (*rules.Set, error)
	// Work bounds policy evaluations and parses with timeouts.policy and
	// timeouts.inspect; serve shares the proxy's. nil: a Runner of the
	// server's own.
	Work *bounded.Runner
	// Budget bounds the message bytes all sessions hold in memory; serve
	// shares the proxy's. nil: one sized by limits.spool_memory_total.
	Budget *spool.Budget
}

// live is what a reload replaces at once; a milter connection keeps the
// one it started with.
type live struct {
	cfg     *config.Config
	set     *rules.Set  // nil: no policies
	lookups lookupSetup // the DNS lookups and DKIM re-signing (lookups.go)
}

// Server serves the milter protocol on the configured milter_listen
// addresses.
type Server struct {
	rt     atomic.Pointer[live]
	opts   Options
	log    *slog.Logger
	work   *bounded.Runner
	budget *spool.Budget
	ms     *gomilter.Server
	seq    atomic.Uint64

	mu        sync.Mutex
	listeners []net.Listener
	sockets   []string // unix socket paths to remove at the end
	panics    atomic.Int64

	// resolver is the one DNS resolver of the lookups, made with the
	// first configuration that needs it (lookups.go).
	resolverMu sync.Mutex
	resolver   *facts.Resolver

	// observe, when set (tests), is told each transaction's verdict and
	// rules as endTx logs them.
	observe func(verdict string, rules []string)
}

// The actions mailgate may take at the end of a message, and the stages it
// does not need from the MTA.
const (
	wantActions = gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptChangeBody |
		gomilter.OptAddRcpt | gomilter.OptRemoveRcpt | gomilter.OptQuarantine
	// The header, end-of-header and body events need no reply (one
	// round trip per message instead of one per field and chunk), and
	// the values come with their leading space, so the message the
	// parser sees is the one the client sent. Each is used only when the
	// MTA offers it (negotiate).
	wantProtocol = gomilter.OptNoUnknown | gomilter.OptNoData | gomilter.OptNoHeaderReply |
		gomilter.OptNoEOHReply | gomilter.OptNoBodyReply | gomilter.OptHeaderLeadingSpace
)

// NewServer loads cfg's policies and prepares the milter server.
func NewServer(cfg *config.Config, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, log: opts.Logger, work: opts.Work, budget: opts.Budget}
	if s.work == nil {
		s.work = bounded.New(0)
		s.work.OnPanic = func(v any, stack []byte) {
			s.panics.Add(1)
			s.log.Error("panic in abandoned policy evaluation or parse", "panic", fmt.Sprint(v), "stack", string(stack))
		}
	}
	if s.budget == nil {
		s.budget = spool.NewBudget(cfg.Limits.SpoolTotal)
	}
	rt, err := s.build(cfg)
	if err != nil {
		return nil, err
	}
	s.rt.Store(rt)
	s.logPolicies(rt)
	s.ms = gomilter.NewServer(
		gomilter.WithDynamicMilter(func(version uint32, action gomilter.OptAction, protocol gomilter.OptProtocol, maxData gomilter.DataSize) gomilter.Milter {
			return s.newSession(protocol)
		}),
		gomilter.WithActions(wantActions),
		// The MTA's next event comes within its own SMTP timeouts; a
		// connection silent for twice mailgate's is dead.
		gomilter.WithReadTimeout(2*max(cfg.Timeouts.Command, cfg.Timeouts.DataIdle)),
		gomilter.WithProtocols(wantProtocol),
		gomilter.WithNegotiationCallback(s.negotiate),
		gomilter.WithMacroRequest(gomilter.StageConnect, []string{gomilter.MacroClientAddr, gomilter.MacroClientName,
			gomilter.MacroDaemonAddr, gomilter.MacroDaemonPort, gomilter.MacroTlsVersion}),
		gomilter.WithMacroRequest(gomilter.StageHelo, []string{gomilter.MacroTlsVersion}),
		gomilter.WithMacroRequest(gomilter.StageMail, []string{gomilter.MacroAuthAuthen, gomilter.MacroTlsVersion, gomilter.MacroQueueId}),
		gomilter.WithMacroRequest(gomilter.StageRcpt, []string{gomilter.MacroQueueId}),
		gomilter.WithMacroRequest(gomilter.StageEOH, []string{gomilter.MacroQueueId}),
		gomilter.WithMacroRequest(gomilter.StageEOM, []string{gomilter.MacroQueueId}),
	)
	return s, nil
}

// negotiate takes the protocol version and the wanted actions and
// protocol options the MTA offers (go-milter's default refuses an MTA
// that lacks any). An MTA without an action mailgate needs still works:
// a verdict that needs it then tempfails (apply). A stage the policies
// have no rule for cannot refuse: the MTA is told not to wait for a reply
// to it (SMFIP_NR_*), one round trip less per stage and message.
func (s *Server) negotiate(mtaVersion, milterVersion uint32, mtaActions, milterActions gomilter.OptAction, mtaProtocol, milterProtocol gomilter.OptProtocol, offered gomilter.DataSize) (uint32, gomilter.OptAction, gomilter.OptProtocol, gomilter.DataSize, error) {
	v := min(mtaVersion, milterVersion)
	if v < 2 {
		return 0, 0, 0, 0, fmt.Errorf("milter: MTA protocol version %d", mtaVersion)
	}
	proto := milterProtocol | noReplies(s.rt.Load().set)
	return v, milterActions & mtaActions, proto & mtaProtocol, offered, nil
}

// noReplies are the no-reply options for the stages set has no rule at.
func noReplies(set *rules.Set) gomilter.OptProtocol {
	var p gomilter.OptProtocol
	for st, opt := range map[rules.Stage]gomilter.OptProtocol{
		rules.StageConnect: gomilter.OptNoConnReply, rules.StageHelo: gomilter.OptNoHeloReply,
		rules.StageMail: gomilter.OptNoMailReply, rules.StageRcpt: gomilter.OptNoRcptReply,
	} {
		if set == nil || !set.HasStage(st) {
			p |= opt
		}
	}
	return p
}

func (s *Server) build(cfg *config.Config) (*live, error) {
	rt := &live{cfg: cfg}
	if s.opts.LoadPolicies != nil {
		set, err := s.opts.LoadPolicies(cfg)
		if err != nil {
			return nil, err
		}
		rt.set = set
	}
	var err error
	if rt.lookups, err = s.buildLookups(cfg, rt.set); err != nil {
		return nil, err
	}
	return rt, nil
}

// Reload swaps in a new configuration (policies included); on error the
// running one stays. Listen addresses keep their first values.
func (s *Server) Reload(cfg *config.Config) error {
	rt, err := s.build(cfg)
	if err != nil {
		s.log.Error("milter: reload failed, keeping the running configuration", "err", err)
		return err
	}
	s.rt.Store(rt)
	s.log.Info("milter: configuration reloaded", "file", cfg.File)
	s.logPolicies(rt)
	return nil
}

// logPolicies says which rules a (re)loaded configuration runs; none is a
// warning (`policies: []`): every message then passes unchecked.
func (s *Server) logPolicies(rt *live) {
	if rt.set == nil {
		s.log.Warn("milter: no policies: every message passes unchecked (policies: [] in the config)", "config", rt.cfg.File)
		return
	}
	s.log.Info("milter: policies loaded", "config", rt.cfg.File, "rules", strings.Join(rt.set.RuleNames(), ","))
}

// milterListen binds the milter listeners without TCP keep-alives: the
// MTA opens a connection per SMTP session, and every wait on it has a
// deadline already (the negotiation's second, then twice mailgate's
// command and data timeouts), so the four setsockopt calls Go makes per
// accepted connection to turn them on bought nothing.
var milterListen = net.ListenConfig{KeepAlive: -1}

// Listen binds every milter_listen address: host:port (TCP) or
// unix:/path (a stale socket file at path is replaced; the socket is made
// 0666, the directory deciding who reaches it).
func (s *Server) Listen() error {
	for _, a := range s.rt.Load().cfg.MilterListen {
		network, addr := "tcp", a
		if p, ok := strings.CutPrefix(a, "unix:"); ok {
			network, addr = "unix", p
			if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
				os.Remove(p)
			}
		}
		l, err := milterListen.Listen(context.Background(), network, addr)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("milter_listen %s: %w", a, err)
		}
		if network == "unix" {
			// The MTA runs as another user (postfix) and must be able to
			// write to the socket; who may reach it is up to the
			// directory's permissions (README, set-up 3).
			if err := os.Chmod(addr, 0o666); err != nil {
				l.Close()
				s.closeListeners()
				return fmt.Errorf("milter_listen %s: %w", a, err)
			}
		}
		s.mu.Lock()
		s.listeners = append(s.listeners, l)
		if network == "unix" {
			s.sockets = append(s.sockets, addr)
		}
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

// Serve serves every bound listener until Shutdown or Close.
func (s *Server) Serve() error {
	s.mu.Lock()
	ls := append([]net.Listener(nil), s.listeners...)
	s.mu.Unlock()
	errc := make(chan error, len(ls))
	for _, l := range ls {
		go func() { errc <- s.ServeListener(l) }()
	}
	var first error
	for range ls {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// ServeListener serves the milter protocol on l (tests pass their own).
func (s *Server) ServeListener(l net.Listener) error {
	err := s.ms.Serve(ackListener{l})
	if errors.Is(err, gomilter.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Listener wraps l the way ServeListener does: each accepted connection
// gets quick ACKs, buffered reads and writes held until its next read
// (quickack_linux.go, conn.go). Exported for bench/milter's null milter,
// which must handle its connections exactly as mailgate does.
func Listener(l net.Listener) net.Listener { return ackListener{l} }

// ackListener hands out connections with quick ACKs (quickack_linux.go).
type ackListener struct{ net.Listener }

func (l ackListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return withQuickAck(c), nil
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		l.Close()
	}
	s.listeners = nil
}

// Shutdown stops accepting and waits, until ctx ends, for the MTA's milter
// connections to end (the MTA closes them at the end of its SMTP
// sessions); then the rest are closed: the MTA answers their clients by
// its milter_default_action (tempfail).
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.ms.Shutdown(ctx)
	if err != nil {
		s.ms.Close()
	}
	s.removeSockets()
	if errors.Is(err, gomilter.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops at once.
func (s *Server) Close() error {
	err := s.ms.Close()
	s.closeListeners()
	s.removeSockets()
	return err
}

func (s *Server) removeSockets() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.sockets {
		os.Remove(p)
	}
	s.sockets = nil
}

// Panics is the number of panics recovered in milter callbacks (tests
// assert 0).
func (s *Server) Panics() int64 { return s.panics.Load() }
