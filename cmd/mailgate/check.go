package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mailgate/clamd"
	"mailgate/config"
	"mailgate/facts"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"mailgate"
	"mailgate/mimeparse"
	"mailgate/rules"
)

// checkOptions are the flags of `mailgate check`.
type checkOptions struct {
	config   string
	policies stringList
	lists    listFlag
	from     string
	fromSet  bool
	rcpts    stringList
	clientIP string
	helo     string
	json     bool
	out      string
	explain  bool
	offline  bool
	dns      string
	dnsbl    listFlag
	limits   mimeparse.Limits // the parser's: -c's limits.*, else the defaults
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	o := checkOptions{limits: mimeparse.DefaultLimits()}
	fs := newFlags("check", "[-c FILE | -p POLICY ... [-l NAME=FILE ...]] [--from A] [--rcpt B ...] [--client-ip IP] [--helo H]\n"+
		"                 [--json] [--out DIR] [--explain] [--offline | --dns SERVERS [--dnsbl NAME=ZONE ...]] PATH...", stderr)
	fs.StringVar(&o.config, "c", "", "config `file` (mailgate.yaml), read as serve reads it: its policies, lists, rule_error, limits and lookup sections")
	fs.Var(&o.policies, "p", "policy `file` (repeatable, evaluated in order; default: the embedded default pack)")
	o.lists = listFlag{}
	fs.Var(o.lists, "l", "list for the policies given with -p, as `NAME=FILE` (repeatable)")
	fs.Func("from", "envelope sender `address` (default: Return-Path, else the From address, else "+rules.DefaultFrom+")", func(v string) error {
		o.from, o.fromSet = v, true
		return nil
	})
	fs.Var(&o.rcpts, "rcpt", "envelope recipient `address` (repeatable; default: Delivered-To, else X-Original-To, else To and Cc, else "+rules.DefaultRcpt+")")
	fs.StringVar(&o.clientIP, "client-ip", rules.DefaultClientIP, "client `IP` address")
	fs.StringVar(&o.helo, "helo", rules.DefaultHelo, "client HELO `name`")
	fs.BoolVar(&o.json, "json", false, "print one JSON object per message (hit table on stderr)")
	fs.StringVar(&o.out, "out", "", "write each message, rewritten when accepted with edits, under `dir`")
	fs.BoolVar(&o.explain, "explain", false, "show every rule's result and why")
	fs.BoolVar(&o.offline, "offline", false, "no DNS lookups: every lookup fact is none (the default without --dns or a config's dns:, auth_checks: or dnsbl:)")
	fs.StringVar(&o.dns, "dns", "", "look the facts up through these DNS `servers` (comma-separated host[:port]; with -c, instead of the config's)")
	o.dnsbl = listFlag{}
	fs.Var(o.dnsbl, "dnsbl", "blocklist for -p, as `NAME=ZONE` (repeatable; with -c the config's dnsbl: applies)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "mailgate check: no PATH given (.eml files, directories, mbox files, Maildirs)")
		fs.Usage()
		return 2
	}
	if o.config != "" && (len(o.policies) > 0 || len(o.lists) > 0) {
		fmt.Fprintln(stderr, "mailgate check: -c excludes -p and -l (the config names policies and lists)")
		return 2
	}
	clock := &chkClock{base: time.Now()}
	set, src, cfg, av, err := loadCheckSet(&o, rules.NewState(0, clock.now))
	if err != nil {
		fmt.Fprintf(stderr, "mailgate check: %v\n", err)
		return 1
	}
	lookups, err := chkLookups(&o, cfg, set)
	if err != nil {
		fmt.Fprintf(stderr, "mailgate check: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	var authservID string
	var signer *facts.Signer
	if cfg != nil && lookups != nil && cfg.AuthChecks.On() {
		authservID = cfg.AuthChecks.AuthservID
	}
	if cfg != nil && cfg.DKIMSign != nil {
		if signer, err = facts.LoadSigner(cfg.DKIMSign.Domain, cfg.DKIMSign.Selector, cfg.DKIMSign.Key); err != nil {
			fmt.Fprintf(stderr, "mailgate check: dkim_sign.key: %v\n", err)
			return 1
		}
	}
	if av == nil && set.Uses("Virus") {
		fmt.Fprintln(stderr, "mailgate check: warning: a policy reads Virus, but nothing scans (no -c with a clamd: section): every message looks clean to it")
	}
	c := &checker{
		clock: clock, opts: o, set: set, ev: set.NewEvaluator(), src: src, av: av, lookups: lookups, authservID: authservID, signer: signer,
		stdout: stdout, stderr: stderr,
		hits: map[string]int{}, monitorHits: map[string]int{}, verdicts: map[string]int{},
		progress: chkIsTerminal(stderr), lastProgress: time.Now(),
	}
	code := 0
	for _, p := range fs.Args() {
		chkWalkInputs(p, c.message, func(err error) {
			c.clearProgress()
			fmt.Fprintf(stderr, "mailgate check: %v\n", err)
			code = 1
		}, &c.skipped)
	}
	if c.failed {
		code = 1
	}
	c.clearProgress()
	table := stdout
	if o.json {
		table = stderr
	}
	c.writeTable(table)
	c.skipped.write(table)
	if len(c.notWritten) > 0 {
		fmt.Fprintf(table, "not written to %s (refused, not sent upstream): %s\n", o.out, strings.Join(c.notWritten, ", "))
	}
	return code
}

// loadCheckSet loads the policies named by -c or -p, or the embedded
// default pack, and returns the rules' sources for --explain, the config
// (nil without -c) for the lookups, and the config's clamd (nil without
// -c or without clamd:), which scans each message as serve would when the
// set reads Virus. rate() and greylisting stay in check's own State even
// when the config names a Redis: a back-test judges each message alone
// and must not touch production's counts.
func loadCheckSet(o *checkOptions, st *rules.State) (*rules.Set, chkRuleSources, *config.Config, *clamd.Client, error) {
	switch {
	case o.config != "":
		// Read as serve reads it, and the same policy set (lint.go loadRuleSet).
		cfg, err := config.Load(o.config)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		set, err := config.LoadPolicies(cfg, mailgate.Tree, st)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		var av *clamd.Client
		if cfg.Clamd != nil {
			if av, err = clamd.New(cfg.Clamd.Address, cfg.Clamd.Timeout, cfg.Clamd.MaxSize); err != nil {
				return nil, nil, nil, nil, err
			}
		}
		o.limits = cfg.MimeLimits()
		rc, fsys := cfg.RulesConfig(mailgate.Tree)
		return set, chkReadRuleSources(fsys, rc.Policies), cfg, av, nil
	case len(o.policies) > 0:
		set, err := rules.Load(rules.Config{Policies: o.policies, Lists: o.lists, Facts: rules.FactSources{All: true}}, st)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		return set, chkReadRuleSources(nil, o.policies), nil, nil, nil
	}
	cfg := rules.Config{Policies: []string{mailgate.DefaultPack}, Lists: o.lists, Facts: rules.FactSources{All: true}}
	set, err := rules.LoadFS(mailgate.Tree, cfg, st)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return set, chkReadRuleSources(mailgate.Tree, cfg.Policies), nil, nil, nil
}

// chkClock is the clock of rate() and greylisting during a back-test. A
// mailbox's messages arrived over weeks, not in the milliseconds check
// takes, so each message must be judged as if it arrived alone: rate()
// counts 1 and a greylist rule defers the first attempt. Sharing one State
// with the real clock would trip per-client rate limits after a few dozen
// messages. The clock therefore moves 25 hours back per message: every
// earlier hit lies in the "future", outside any window, and no greylist
// delay ever passes.
type chkClock struct {
	base time.Time
	n    int64
}

func (c *chkClock) now() time.Time { return c.base.Add(-time.Duration(c.n) * 25 * time.Hour) }
func (c *chkClock) next()          { c.n++ }

// checker evaluates messages one by one and keeps the totals.
type checker struct {
	clock *chkClock
	opts  checkOptions
	set   *rules.Set
	ev    *rules.Evaluator
	av    *clamd.Client // -c with clamd: (nil: Virus stays empty)
	src   chkRuleSources
	// lookups computes the DNS facts (nil: offline, every lookup none).
	lookups *facts.Checker
	// authservID: -c's auth_checks is on, and --out writes the
	// Authentication-Results field serve adds; signer: -c's dkim_sign.
	authservID string
	signer     *facts.Signer
	stdout     io.Writer
	stderr     io.Writer

	n, files     int
	failed       bool
	skipped      chkSkipped
	notWritten   []string       // --out: messages refused, so not written
	hits         map[string]int // rule → messages it matched
	monitorHits  map[string]int
	verdicts     map[string]int
	progress     bool
	shown        bool // a progress line is on the terminal
	lastProgress time.Time
}

// chkResult is the outcome of one message through every stage.
type chkResult struct {
	verdict rules.Action
	reply   rules.Reply
	rules   []string
	monitor []string
	score   float64
	tags    []string
	edits   rules.Edits
	errors  []error
	stages  []chkStageResult // for --explain
	// authResults are the Authentication-Results edits serve would add
	// (remove ours, add one), for --out; nil without auth_checks.
	authResults []rules.HeaderEdit
}

type chkStageResult struct {
	stage rules.Stage
	rcpt  string
	v     rules.Verdict
}

// message handles one input message; name is what reports show, rel its
// path under --out.
func (c *checker) message(in chkInput) {
	raw, err := in.read()
	if err != nil {
		fmt.Fprintf(c.stderr, "mailgate check: %v\n", err)
		c.failed = true
		return
	}
	// Parse fails only on a read error, and bytes.Reader has none; its
	// anomalies are defects in msg.
	msg, err := mimeparse.Parse(bytes.NewReader(raw), c.opts.limits)
	if msg == nil {
		fmt.Fprintf(c.stderr, "mailgate check: %s: parsing: %v\n", in.name, err)
		c.failed = true
		return
	}
	shown := in.name
	if in.inBox {
		// A message of an mbox or a Maildir is named by its position or
		// file and its Message-ID (--json: in message_id).
		if id := strings.TrimSpace(msg.Header("Message-ID")); id != "" {
			shown += " " + chkOneLine(id)
		}
	}
	c.clock.next()
	res := c.evaluate(msg, raw)
	c.n++
	c.verdicts[string(res.verdict)]++
	for _, r := range res.rules {
		c.hits[r]++
	}
	for _, r := range res.monitor {
		c.monitorHits[r]++
	}
	for _, e := range res.errors {
		fmt.Fprintf(c.stderr, "mailgate check: %s: %v\n", in.name, e)
	}
	c.clearProgress()
	switch {
	case c.opts.json:
		// --explain goes inside the object, so that the output stays one
		// JSON object per line.
		explain := ""
		if c.opts.explain {
			var b strings.Builder
			c.writeExplain(&b, msg, &res)
			explain = b.String()
		}
		chkWriteJSON(c.stdout, in.name, msg, &res, explain)
	default:
		chkWriteLine(c.stdout, shown, &res)
		if c.opts.explain {
			c.writeExplain(c.stdout, msg, &res)
		}
	}
	if c.opts.out != "" && res.verdict != rules.ActionAccept {
		// Only what would be sent upstream is written.
		c.notWritten = append(c.notWritten, shown+" ("+string(res.verdict)+")")
	} else if c.opts.out != "" {
		if err := c.writeOut(in.rel, raw, msg, &res); err != nil {
			fmt.Fprintf(c.stderr, "mailgate check: %s: %v\n", in.name, err)
			c.failed = true
		}
	}
	c.showProgress()
}

// evaluate runs the message through rules.Simulate: the Conn and Tx that
// serve drives, with an upstream that accepts every command.
func (c *checker) evaluate(msg *mimeparse.Message, raw []byte) chkResult {
	client := rules.Client{IP: c.opts.clientIP, Port: 25, HELO: c.opts.helo}
	// What the flags do not give comes from the message (rules.DefaultEnvelope),
	// as in policy tests.
	from, rcpts := rules.DefaultEnvelope(msg)
	if c.opts.fromSet {
		from = c.opts.from
	}
	if len(c.opts.rcpts) > 0 {
		rcpts = c.opts.rcpts
	}
	in := rules.SimInput{Client: client, From: from, Rcpts: rcpts, Msg: msg, Size: len(raw)}
	var enrich rules.Enrichers
	var lookups *facts.Lookups
	if c.lookups != nil {
		lookups = c.lookups.New(context.Background())
		if mc := lookups.Message(); mc != nil {
			mc.Write(chkCRLF(raw)) // DKIM and ARC hash the bytes as SMTP carries them
		}
		enrich = append(enrich, lookups)
	} else {
		enrich = append(enrich, &rules.StaticFacts{}) // offline: every lookup none
	}
	if c.av != nil {
		enrich = append(enrich, &clamd.Enricher{Client: c.av, Wanted: c.set.Uses("Virus"), Open: func() (io.Reader, int64, error) {
			return bytes.NewReader(raw), int64(len(raw)), nil
		}})
	}
	in.Enrich = enrich
	sim := rules.Simulate(c.ev, in)
	t := sim.Tx
	res := chkResult{
		verdict: sim.Decision.Action,
		reply:   sim.Decision.Reply,
		rules:   t.Rules(),
		monitor: t.Monitor(),
		score:   t.Score(),
		tags:    t.Tags(),
		edits:   *t.Edits(),
		errors:  t.Errors(),
	}
	for _, sr := range t.Trace() {
		res.stages = append(res.stages, chkStageResult{sr.Stage, sr.Rcpt, sr.Verdict})
	}
	if lookups != nil && c.authservID != "" && res.verdict == rules.ActionAccept {
		ip, _ := netip.ParseAddr(client.IP)
		v := lookups.AuthenticationResultsField(c.authservID, ip, client.HELO, from)
		res.authResults = facts.AuthResultsEdits(c.authservID, v)
	}
	return res
}

// writeOut writes an accepted message under --out as it would go
// upstream: rewritten when there are edits, byte for byte otherwise.
func (c *checker) writeOut(rel string, raw []byte, msg *mimeparse.Message, res *chkResult) error {
	dst := filepath.Join(c.opts.out, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	// As serve relays it: the rules' edits and the Authentication-Results
	// field spliced in, then re-signed when dkim_sign applies (proxy/lookups.go).
	all := res.edits
	all.Headers = append(append([]rules.HeaderEdit(nil), res.edits.Headers...), res.authResults...)
	var out bytes.Buffer
	if !all.Empty() {
		_, err = rules.Rewrite(&out, bytes.NewReader(raw), msg, &all)
	} else {
		out.Write(raw)
	}
	if err == nil && c.signer != nil {
		var sig string
		sig, err = c.signer.SignDelivered(bytes.NewReader(out.Bytes()), facts.HeaderFromDomain(msg.Header("From")), &res.edits)
		if err == nil && sig != "" {
			_, err = f.Write([]byte(sig))
		}
	}
	if err == nil {
		_, err = f.Write(out.Bytes())
	}
	return errors.Join(err, f.Close())
}

func chkAppendNew(list []string, items ...string) []string {
	for _, s := range items {
		found := false
		for _, x := range list {
			if x == s {
				found = true
				break
			}
		}
		if !found {
			list = append(list, s)
		}
	}
	return list
}

// chkIsTerminal reports whether w is a character device (a terminal).
func chkIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// showProgress rewrites one status line on the terminal, at most ten times
// a second.
func (c *checker) showProgress() {
	if !c.progress || time.Since(c.lastProgress) < 100*time.Millisecond {
		return
	}
	c.lastProgress = time.Now()
	c.shown = true
	fmt.Fprintf(c.stderr, "\rchecked %d messages ...", c.n)
}

func (c *checker) clearProgress() {
	if c.shown {
		fmt.Fprint(c.stderr, "\r\033[K")
		c.shown = false
	}
}
