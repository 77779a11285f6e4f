package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"mailgate"
	"mailgate/config"
	"mailgate/internal/bounded"
	"mailgate/milter"
	"mailgate/proxy"
	"mailgate/redisstate"
	"mailgate/rules"
	"mailgate/upstream"
)

func runServe(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("serve", "[-c mailgate.yaml] [--listen ADDR] [--upstream URL] [-p POLICY ...] [-l NAME=FILE ...]", stderr)
	cfgPath := fs.String("c", "", "config file (`mailgate.yaml`); without it the embedded defaults apply")
	listen := fs.String("listen", "", "listen `address` (overrides the config's listen:)")
	upstream := fs.String("upstream", "", "upstream `URL`: smtp://host:port or maildir:/path (overrides upstream:)")
	var pols stringList
	fs.Var(&pols, "p", "policy `file` (repeatable; overrides the config's policies:)")
	lists := listFlag{}
	fs.Var(lists, "l", "list as `NAME=FILE` (repeatable; adds to or replaces the config's lists:)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mailgate serve: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	load := func() (*config.Config, error) {
		var cfg *config.Config
		if *cfgPath == "" {
			cfg = config.Default()
		} else {
			c, err := config.Load(*cfgPath)
			if err == nil {
				err = c.CheckFiles() // as lint -c does, with the same message
			}
			if err != nil {
				return nil, err
			}
			cfg = c
		}
		if *listen != "" {
			cfg.Listen = []string{*listen}
		}
		if *upstream != "" {
			if err := config.CheckUpstream(*upstream); err != nil {
				return nil, fmt.Errorf("--upstream: %w", err)
			}
			cfg.Upstream = *upstream
		}
		if len(lists) > 0 {
			merged := map[string]string{}
			for k, v := range cfg.Lists {
				merged[k] = v
			}
			for k, v := range lists {
				a, err := filepath.Abs(v)
				if err != nil {
					return nil, err
				}
				merged[k] = a
			}
			cfg.Lists = merged
		}
		if len(pols) > 0 {
			cfg.Policies = nil
			for _, p := range pols {
				a, err := filepath.Abs(p)
				if err != nil {
					return nil, err
				}
				cfg.Policies = append(cfg.Policies, a)
			}
		}
		return cfg, nil
	}
	cfg, err := load()
	if err != nil {
		fmt.Fprintf(stderr, "mailgate serve: %v\n", err)
		return 1
	}
	// Signals are caught from here on, before anything listens.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	level := new(slog.LevelVar)
	level.Set(proxy.ParseLevel(cfg.LogLevel))
	log := proxy.NewLoggerLevel(stderr, cfg.LogFormat, level)
	redisstate.LogTo(log)
	// One runner bounds the evaluations and parses of both front-ends
	// (internal/bounded).
	work := bounded.New(0)
	work.OnPanic = func(v any, stack []byte) {
		log.Error("panic in abandoned policy evaluation or parse", "panic", fmt.Sprint(v), "stack", string(stack))
	}
	var fronts []frontEnd
	defer func() {
		for _, f := range fronts {
			f.Close()
		}
	}()
	var srv *proxy.Server // the SMTP front-end, nil when milter-only
	if len(cfg.Listen) > 0 {
		var err error
		srv, err = proxy.NewServer(cfg, proxy.Options{Logger: log, LogLevel: level, LoadEngine: proxy.PolicyLoader(mailgate.Tree), Work: work})
		if err != nil {
			fmt.Fprintf(stderr, "mailgate serve: %v\n", err)
			return 1
		}
		// Before listening, so the warning comes first and a test's
		// upstream sees this connection before any client's.
		checkUpstream(cfg, log)
		if err := srv.Listen(); err != nil {
			srv.Close()
			fmt.Fprintf(stderr, "mailgate serve: %v\n", err)
			return 1
		}
		fronts = append(fronts, srv)
		if cfg.MetricsListen != "" {
			a, err := srv.ListenMetrics(cfg.MetricsListen)
			if err != nil {
				fmt.Fprintf(stderr, "mailgate serve: %v\n", err)
				return 1
			}
			log.Info("metrics listening", "addr", a.String())
		}
		for _, a := range srv.Addrs() {
			fmt.Fprintf(stdout, "mailgate: listening on %s, upstream %s\n", a, cfg.Upstream)
			log.Info("listening", "addr", a.String(), "upstream", cfg.Upstream, "config", cfg.File)
		}
	}
	if len(cfg.MilterListen) > 0 {
		ms, err := milter.NewServer(cfg, milter.Options{Logger: log, LoadPolicies: milterPolicies(), Work: work})
		if err != nil {
			fmt.Fprintf(stderr, "mailgate serve: %v\n", err)
			return 1
		}
		if err := ms.Listen(); err != nil {
			fmt.Fprintf(stderr, "mailgate serve: %v\n", err)
			return 1
		}
		fronts = append(fronts, ms)
		for _, a := range ms.Addrs() {
			fmt.Fprintf(stdout, "mailgate: milter listening on %s\n", a)
			log.Info("milter listening", "addr", a.String(), "config", cfg.File)
		}
	}

	done := make(chan error, len(fronts))
	for _, f := range fronts {
		go func() { done <- f.Serve() }()
	}
	running := len(fronts)
	for {
		select {
		case err := <-done:
			running--
			if err != nil {
				fmt.Fprintf(stderr, "mailgate serve: %v\n", err)
				return 1
			}
			if running == 0 {
				return 0
			}
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				c, err := load()
				if err != nil {
					if srv != nil {
						srv.ReloadFailed(err) // logged and counted
					} else {
						log.Error("reload failed, keeping the running configuration", "err", err)
					}
					continue
				}
				for _, f := range fronts {
					f.Reload(c)
				}
				continue
			}
			log.Info("shutting down", "signal", sig.String(), "drain", cfg.Timeouts.Shutdown.String())
			ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeouts.Shutdown)
			errs := make(chan error, len(fronts))
			for _, f := range fronts {
				go func() { errs <- f.Shutdown(ctx) }()
			}
			var serr error
			for range fronts {
				if err := <-errs; err != nil && serr == nil {
					serr = err
				}
			}
			cancel()
			for ; running > 0; running-- {
				<-done
			}
			fronts = nil
			if serr != nil && !errors.Is(serr, context.DeadlineExceeded) {
				fmt.Fprintf(stderr, "mailgate serve: %v\n", serr)
				return 1
			}
			return 0
		}
	}
}

// frontEnd is what serve runs: the SMTP proxy and the milter.
type frontEnd interface {
	Serve() error
	Reload(*config.Config) error
	Shutdown(context.Context) error
	Close() error
}

// milterPolicies compiles the policies a config names for the milter
// (with `policies: []`, none).
func milterPolicies() func(*config.Config) (*rules.Set, error) {
	st := rules.NewState(100000, nil)
	return func(c *config.Config) (*rules.Set, error) {
		if c.RunsNoPolicy() {
			return nil, nil
		}
		return config.LoadPolicies(c, mailgate.Tree, st)
	}
}

// checkUpstream connects to an SMTP upstream once at start (a TCP
// connection, closed at once: no SMTP dialogue, nothing an upstream's
// restrictions could hold against mailgate), or makes the Maildir, so that
// an upstream that cannot be reached is a warning in the log now rather
// than a surprise at the first message (which gets 4xx until it can be).
// It waits at most timeouts.upstream_connect, and at most 5s.
func checkUpstream(cfg *config.Config, log *slog.Logger) {
	d := min(cfg.Timeouts.UpstreamConnect, 5*time.Second)
	var err error
	switch {
	case strings.HasPrefix(cfg.Upstream, "smtp://"):
		addr := strings.TrimSuffix(strings.TrimPrefix(cfg.Upstream, "smtp://"), "/")
		var c net.Conn
		if c, err = net.DialTimeout("tcp", addr, d); err == nil {
			c.Close()
		}
	default:
		var up upstream.Upstream
		if up, err = upstream.New(cfg, nil); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			var c upstream.Conn
			if c, err = up.Open(ctx, upstream.Client{}); err == nil {
				c.Close()
			}
		}
	}
	if err != nil {
		log.Warn("upstream cannot be reached: messages will get 4xx until it can", "upstream", cfg.Upstream, "err", err)
		return
	}
	log.Debug("upstream reachable", "upstream", cfg.Upstream)
}
