package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"mailgate/config"
	"mailgate/mimeparse"
	"mailgate/proxy"
	"mailgate/quarantine"
	"mailgate/upstream"
)

const quarantineSynopsis = "list|show|release|delete|expire [-c FILE] [flags] [HASH]\n\n" +
	"  list [--json]                  the held messages, oldest first, with their full hash\n" +
	"  show HASH                      event records and the parsed message\n" +
	"  release [--rcpt ADDR ...] HASH re-send upstream with the original envelope\n" +
	"  delete HASH                    remove the message and its records\n" +
	"  expire --older-than 30d        delete messages whose newest event is older\n\n" +
	"HASH is the full SHA-256 or a unique prefix of at least 8 hex digits."

func runQuarantine(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("quarantine", quarantineSynopsis, stderr)
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if code, ok := parseFlags(fs, args); !ok {
			return code
		}
		fmt.Fprintln(stderr, "mailgate quarantine: no subcommand (list, show, release, delete, expire)")
		fs.Usage()
		return 2
	}
	sub := args[0]
	cfgPath := fs.String("c", "", "config `file` (mailgate.yaml): its quarantine_dir and upstream (default: the embedded defaults)")
	asJSON := fs.Bool("json", false, "list: one JSON object per message")
	olderThan := fs.String("older-than", "", "expire: `age` such as 30d, 12h")
	var rcpts stringList
	fs.Var(&rcpts, "rcpt", "release: only this recipient `address` of the event (repeatable)")
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	var cfg *config.Config
	if *cfgPath == "" {
		cfg = config.Default()
	} else {
		c, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintf(stderr, "mailgate quarantine: %v\n", err)
			return 1
		}
		cfg = c
	}
	dir := cfg.QuarantineDir
	needHash := func() (*quarantine.Message, int) {
		if fs.NArg() != 1 {
			fmt.Fprintf(stderr, "mailgate quarantine %s: want exactly one HASH\n", sub)
			return nil, 2
		}
		m, err := quarantine.Find(dir, fs.Arg(0))
		if err != nil {
			fmt.Fprintf(stderr, "mailgate quarantine %s: %v\n", sub, err)
			return nil, 1
		}
		return m, 0
	}
	switch sub {
	case "list":
		msgs, err := quarantine.List(dir)
		if err != nil {
			fmt.Fprintf(stderr, "mailgate quarantine list: %v\n", err)
			if msgs == nil {
				return 1
			}
		}
		qWriteList(stdout, dir, msgs, *asJSON)
		if err != nil {
			return 1
		}
		return 0
	case "show":
		m, code := needHash()
		if m == nil {
			return code
		}
		return qShow(stdout, stderr, dir, m)
	case "release":
		m, code := needHash()
		if m == nil {
			return code
		}
		return qRelease(stdout, stderr, cfg, m, rcpts)
	case "delete":
		m, code := needHash()
		if m == nil {
			return code
		}
		if err := quarantine.Delete(dir, m); err != nil {
			fmt.Fprintf(stderr, "mailgate quarantine delete: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "deleted %s\n", m.SHA256)
		return 0
	case "expire":
		if *olderThan == "" || fs.NArg() != 0 {
			fmt.Fprintln(stderr, "mailgate quarantine expire: want --older-than AGE (e.g. 30d) and no HASH")
			return 2
		}
		age, err := parseAge(*olderThan)
		if err != nil {
			fmt.Fprintf(stderr, "mailgate quarantine expire: --older-than: %v\n", err)
			return 2
		}
		gone, err := quarantine.Expire(dir, age, time.Now())
		for _, m := range gone {
			fmt.Fprintf(stdout, "deleted %s\n", m.SHA256)
		}
		fmt.Fprintf(stdout, "expired %s older than %s\n", plural(len(gone), "message"), *olderThan)
		if err != nil {
			fmt.Fprintf(stderr, "mailgate quarantine expire: %v\n", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "mailgate quarantine: unknown subcommand %q (list, show, release, delete, expire)\n", sub)
	return 2
}

// parseAge reads a duration as time.ParseDuration does, plus days ("30d").
func parseAge(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not an age (30d, 12h, 90m)", s)
		}
		return time.Duration(n * 24 * float64(time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not an age (30d, 12h, 90m)", s)
	}
	return d, nil
}

// qSubject reads the Subject of a held message ("" when unreadable).
func qSubject(dir, sum string) string {
	f, err := os.Open(quarantine.Path(dir, sum))
	if err != nil {
		return ""
	}
	defer f.Close()
	msg, _ := mimeparse.Parse(io.LimitReader(f, 1<<20), mimeparse.DefaultLimits())
	if msg == nil {
		return ""
	}
	for _, fld := range msg.Fields {
		if strings.EqualFold(fld.Name, "Subject") {
			return fld.Value
		}
	}
	return ""
}

type qListJSON struct {
	Time     time.Time            `json:"time"`
	From     string               `json:"from"`
	Rcpts    []string             `json:"rcpts"`
	Subject  string               `json:"subject"`
	Rules    []string             `json:"rules"`
	Size     int64                `json:"size"`
	SHA256   string               `json:"sha256"`
	Events   int                  `json:"events"`
	Releases []quarantine.Release `json:"releases,omitempty"`
}

func qWriteList(w io.Writer, dir string, msgs []*quarantine.Message, asJSON bool) {
	var tw *tabwriter.Writer
	if !asJSON {
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tSENDER\tRECIPIENTS\tSUBJECT\tRULES\tSIZE\tSHA256")
	}
	enc := json.NewEncoder(w)
	for _, m := range msgs {
		row := qListJSON{SHA256: m.SHA256, Size: m.Size, Subject: qSubject(dir, m.SHA256), Events: len(m.Events), Releases: m.Releases}
		if ev := m.Last(); ev != nil {
			row.Time, row.From, row.Rcpts, row.Rules = ev.Time, ev.From, ev.Rcpts, ev.Rules
			if len(row.Rules) == 0 && ev.Rule != "" {
				row.Rules = []string{ev.Rule}
			}
		}
		if asJSON {
			enc.Encode(row)
			continue
		}
		subj := strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return ' '
			}
			return r
		}, row.Subject)
		if len(subj) > 40 {
			subj = subj[:37] + "..."
		}
		from := row.From
		if from == "" {
			from = "<>"
		}
		when := "-"
		if !row.Time.IsZero() {
			when = row.Time.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", when, from, strings.Join(row.Rcpts, ","), subj,
			strings.Join(row.Rules, ","), row.Size, row.SHA256)
	}
	if tw != nil {
		tw.Flush()
		abs, err := filepath.Abs(dir)
		if err != nil {
			abs = dir
		}
		fmt.Fprintf(w, "%s held in %s\n", plural(len(msgs), "message"), abs)
	}
}

func qShow(stdout, stderr io.Writer, dir string, m *quarantine.Message) int {
	fmt.Fprintf(stdout, "sha256 %s\nfile %s\n", m.SHA256, quarantine.Path(dir, m.SHA256))
	for _, ev := range m.Events {
		js, _ := json.MarshalIndent(ev, "", "  ")
		fmt.Fprintf(stdout, "event %s\n", js)
	}
	for _, rel := range m.Releases {
		js, _ := json.MarshalIndent(rel, "", "  ")
		fmt.Fprintf(stdout, "release %s\n", js)
	}
	f, err := os.Open(quarantine.Path(dir, m.SHA256))
	if err != nil {
		fmt.Fprintf(stderr, "mailgate quarantine show: %v\n", err)
		return 1
	}
	defer f.Close()
	msg, err := mimeparse.Parse(f, mimeparse.DefaultLimits())
	if msg == nil {
		fmt.Fprintf(stderr, "mailgate quarantine show: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout)
	printTree(stdout, msg)
	return 0
}

func qRelease(stdout, stderr io.Writer, cfg *config.Config, m *quarantine.Message, rcpts []string) int {
	log := proxy.NewLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	up, err := upstream.New(cfg, nil)
	if err != nil {
		fmt.Fprintf(stderr, "mailgate quarantine release: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeouts.UpstreamConnect+cfg.Timeouts.Upstream)
	defer cancel()
	rp, sent, err := quarantine.Send(ctx, cfg.QuarantineDir, m, up, rcpts)
	if len(sent) > 0 {
		rel := quarantine.NewRelease(m, sent, cfg.Upstream, rp, time.Now())
		if rerr := quarantine.RecordRelease(cfg.QuarantineDir, rel); rerr != nil {
			fmt.Fprintf(stderr, "mailgate quarantine release: the message went upstream, but recording it failed: %v\n", rerr)
			return 1
		}
		log.Info("quarantine release", "sha256", m.SHA256, "from", rel.From, "rcpts", sent, "upstream", cfg.Upstream, "reply", rp.String())
		fmt.Fprintf(stdout, "released %s to %s: %s\n", m.SHA256, strings.Join(sent, ","), rp.String())
	}
	if err != nil {
		log.Error("quarantine release failed", "sha256", m.SHA256, "upstream", cfg.Upstream, "err", err)
		fmt.Fprintf(stderr, "mailgate quarantine release: %v\n", err)
		return 1
	}
	return 0
}

// plural writes "1 message", "2 messages".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
