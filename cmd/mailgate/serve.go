package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mailgate/config"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"mailgate"
	"mailgate/internal/bounded"
	"mailgate/milter"
	"mailgate/proxy"
	"mailgate/rules"
)

func runServe(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("serve", "[-c mailgate.yaml] [--listen ADDR] [--upstream URL] [-p POLICY ...]", stderr)
	cfgPath := fs.String("c", "", "config file (`mailgate.yaml`); without it the embedded defaults apply")
	listen := fs.String("listen", "", "listen `address` (overrides the config's listen:)")
	upstream := fs.String("upstream", "", "upstream `URL`: smtp://host:port or maildir:/path (overrides upstream:)")
	var pols stringList
	fs.Var(&pols, "p", "policy `file` (repeatable; overrides the config's policies:)")
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
	log := proxy.NewLogger(stderr, cfg.LogFormat, cfg.LogLevel)
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
	if len(cfg.Listen) > 0 {
		srv, err := proxy.NewServer(cfg, proxy.Options{Logger: log, LoadEngine: proxy.PolicyLoader(mailgate.Tree), Work: work})
		if err != nil {
			fmt.Fprintf(stderr, "mailgate serve: %v\n", err)
			return 1
		}
		if err := srv.Listen(); err != nil {
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
					log.Error("reload failed, keeping the running configuration", "err", err)
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
