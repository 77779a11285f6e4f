package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mailgate/config"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"mailgate"
	"mailgate/proxy"
	"mailgate/redisstate"
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
	srv, err := proxy.NewServer(cfg, proxy.Options{Logger: log, LogLevel: level, LoadEngine: proxy.PolicyLoader(mailgate.Tree)})
	if err != nil {
		fmt.Fprintf(stderr, "mailgate serve: %v\n", err)
		return 1
	}
	// Before listening, so the warning comes first and a test's upstream
	// sees this connection before any client's.
	checkUpstream(cfg, log)
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
					srv.ReloadFailed(err)
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
