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
	"mailgate/proxy"
	"mailgate/redisstate"
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
	redisstate.LogTo(log)
	srv, err := proxy.NewServer(cfg, proxy.Options{Logger: log, LoadEngine: proxy.PolicyLoader(mailgate.Tree)})
	if err != nil {
		fmt.Fprintf(stderr, "mailgate serve: %v\n", err)
		return 1
	}
	if err := srv.Listen(); err != nil {
		fmt.Fprintf(stderr, "mailgate serve: %v\n", err)
		return 1
	}
	if cfg.MetricsListen != "" {
		a, err := srv.ListenMetrics(cfg.MetricsListen)
		if err != nil {
			srv.Close()
			fmt.Fprintf(stderr, "mailgate serve: %v\n", err)
			return 1
		}
		log.Info("metrics listening", "addr", a.String())
	}
	for _, a := range srv.Addrs() {
		fmt.Fprintf(stdout, "mailgate: listening on %s, upstream %s\n", a, cfg.Upstream)
		log.Info("listening", "addr", a.String(), "upstream", cfg.Upstream, "config", cfg.File)
	}

	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	for {
		select {
		case err := <-done:
			if err != nil {
				fmt.Fprintf(stderr, "mailgate serve: %v\n", err)
				return 1
			}
			return 0
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				c, err := load()
				if err == nil {
					err = srv.Reload(c)
				} else {
					log.Error("reload failed, keeping the running configuration", "err", err)
				}
				continue
			}
			log.Info("shutting down", "signal", sig.String(), "drain", cfg.Timeouts.Shutdown.String())
			ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeouts.Shutdown)
			err := srv.Shutdown(ctx)
			cancel()
			<-done
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				fmt.Fprintf(stderr, "mailgate serve: %v\n", err)
				return 1
			}
			return 0
		}
	}
}
