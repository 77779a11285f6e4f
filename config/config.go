// Package config reads mailgate.yaml once for every command: serve,
// check -c, lint -c and test -c parse the same keys, types, ranges and
// paths here, and load the same policy set (docs/DESIGN.md
// "Configuration").
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"mailgate/clamd"
	"mailgate/facts"
	"mailgate/redisstate"
)

// Config is mailgate's configuration: mailgate.yaml (docs/DESIGN.md
// "Configuration") with defaults applied and paths resolved.
type Config struct {
	Listen            []string
	MilterListen      []string // milter front-end addresses: host:port or unix:/path (docs/DESIGN.md "Milter mode")
	Hostname          string
	Upstream          string // smtp://host:port or maildir:/path
	XForward          bool   // send XFORWARD before each MAIL when offered and no XCLIENT was sent
	XClient           bool   // send XCLIENT when offered (default); false: never. On but not offered: warned and counted
	TrustedForwarders []netip.Prefix
	Auth              string // "off" or "relay"
	TLSCert, TLSKey   string
	Limits            Limits
	Timeouts          Timeouts
	BareNewline       string // "reject" or "normalize"
	RuleError         string // "tempfail" or "continue"
	SpoolDir          string
	QuarantineDir     string
	Policies          []string          // policy files, resolved; empty with EmbeddedPolicy set: the embedded default
	EmbeddedPolicy    string            // name of the embedded policy file to use when Policies is empty ("": none)
	Lists             map[string]string // list name → file
	LogFormat         string            // "json" or "text"
	LogLevel          string            // "debug", "info", "warn", "error"
	MetricsListen     string
	DNS               DNS               // dns: the resolver of every lookup (lookups.go)
	AuthChecks        AuthChecks        // auth_checks: SPF, DKIM, DMARC, ARC
	DNSBL             map[string]string // dnsbl: NAME → zone
	DKIMSign          *DKIMSign         // dkim_sign: nil when absent
	Clamd             *Clamd            // nil: no virus scanning (a policy reading Virus is refused)
	State             *State            // nil: rate() and greylisting in the in-process LRU
	File              string            // the config file read, "" for the embedded defaults
	Data              []byte            // the file's bytes (its tests: are read from them)
	Dir               string            // relative paths resolve from here
}

// Limits bound sessions and messages (DESIGN invariant 3).
type Limits struct {
	MessageSize    int64
	Recipients     int
	Connections    int
	LineLength     int64
	MimeDepth      int
	MimeParts      int
	HeaderBytes    int64
	ArchiveDepth   int
	ArchiveEntries int
	SpoolMemory    int64 // per message
	SpoolTotal     int64 // all sessions' in-memory spools together
	InspectSpill   int64
	Errors         int // protocol errors before the session is closed with 421
	// DecompressedBytes is one budget per message for every inspector's
	// decompression together (limit-decompressed-bytes).
	DecompressedBytes int64
	// ArchiveDict is the largest dictionary or model a decoder may allocate
	// (limit-archive-dict), checked from the coder properties before opening it.
	ArchiveDict int64
}

// Clamd is the `clamd:` section: where clamd listens, how long a scan may
// take, and the largest message sent (clamd's StreamMaxLength; a larger
// one gets the defect limit-virus-scan-size instead of a scan).
type Clamd struct {
	Address string // tcp://host:port or unix:/path
	Timeout time.Duration
	MaxSize int64
}

// State is the `state:` section: rate() and greylisting kept in Redis,
// shared by every mailgate that names the same Redis.
type State struct {
	Redis string // redis://host:port/db (go-redis URL)
}

// Defaults of the clamd section (docs/DESIGN.md "Wave 2 contract").
const (
	DefaultClamdTimeout = 60 * time.Second
	DefaultClamdMaxSize = 25 << 20
)

// Timeouts bound every wait.
type Timeouts struct {
	Command         time.Duration // each wait for a client command
	DataIdle        time.Duration // each wait for DATA bytes
	DataTotal       time.Duration // the whole DATA phase
	UpstreamConnect time.Duration
	Upstream        time.Duration // each wait for an upstream reply
	Shutdown        time.Duration // how long SIGTERM waits for sessions to finish
	Policy          time.Duration // safety net for one message's policy evaluation: past it, 451
	Inspect         time.Duration // safety net for one message's parse and inspection: past it, 451
	GreetDelay      time.Duration // pause before the banner so that pregreeting clients show themselves; 0: none
}

// Defaults, defined once (docs/DEVELOPING.md rule 18).
const (
	DefaultListen         = "127.0.0.1:2525"
	DefaultUpstream       = "maildir:./mailgate-mail/"
	DefaultEmbeddedPolicy = "policies/default.yaml" // in mailgate.Tree
)

// DefaultConfig returns the embedded defaults used without a config file.
func Default() *Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return &Config{
		Listen:   []string{DefaultListen},
		Hostname: host,
		Upstream: DefaultUpstream,
		XForward: true,
		XClient:  true,
		// No forwarder is trusted by default: when mailgate listens
		// publicly, every local process and every loopback-bound relay
		// would otherwise be able to pose as any client (README set-up 2
		// lists Postfix's address explicitly).
		TrustedForwarders: nil,
		Auth:              "off",
		Limits: Limits{
			MessageSize: 50 << 20, Recipients: 100, Connections: 1000, LineLength: 64 << 10,
			MimeDepth: 20, MimeParts: 1000, HeaderBytes: 1 << 20, ArchiveDepth: 3,
			ArchiveEntries: 1000, SpoolMemory: 1 << 20, SpoolTotal: 64 << 20, InspectSpill: 64 << 20, Errors: 20,
			DecompressedBytes: 256 << 20, ArchiveDict: 64 << 20,
		},
		Timeouts: Timeouts{
			Command: 5 * time.Minute, DataIdle: 5 * time.Minute, DataTotal: 30 * time.Minute,
			UpstreamConnect: 30 * time.Second, Upstream: 10 * time.Minute, Shutdown: 30 * time.Second,
			Policy: 10 * time.Second, Inspect: 60 * time.Second,
		},
		BareNewline:    "reject",
		RuleError:      "tempfail",
		SpoolDir:       "",
		QuarantineDir:  "mailgate-quarantine",
		DNS:            DNS{Timeout: DefaultDNSTimeout, CacheSize: DefaultDNSCacheSize, CacheBytes: DefaultDNSCacheBytes},
		EmbeddedPolicy: DefaultEmbeddedPolicy,
		LogFormat:      "text",
		LogLevel:       "info",
	}
}

// Error is a configuration problem list, one "file:line:col: message"
// per line.
type Error struct{ Problems []string }

func (e *Error) Error() string { return strings.Join(e.Problems, "\n") }

// fileConfig mirrors mailgate.yaml; KnownFields(true) rejects unknown keys.
type fileConfig struct {
	Listen            stringList        `yaml:"listen"`
	MilterListen      stringList        `yaml:"milter_listen"`
	Hostname          string            `yaml:"hostname"`
	Upstream          string            `yaml:"upstream"`
	XForward          *bool             `yaml:"xforward"`
	XClient           *bool             `yaml:"xclient"`
	TrustedForwarders []string          `yaml:"trusted_forwarders"`
	Auth              string            `yaml:"auth"`
	TLS               fileTLS           `yaml:"tls"`
	Limits            fileLimits        `yaml:"limits"`
	Timeouts          fileTimeouts      `yaml:"timeouts"`
	BareNewline       string            `yaml:"bare_newline"`
	RuleError         string            `yaml:"rule_error"`
	SpoolDir          string            `yaml:"spool_dir"`
	QuarantineDir     string            `yaml:"quarantine_dir"`
	Policies          *[]string         `yaml:"policies"` // nil: absent, the embedded default pack
	Lists             map[string]string `yaml:"lists"`
	Log               fileLog           `yaml:"log"`
	MetricsListen     string            `yaml:"metrics_listen"`
	DNS               *fileDNS          `yaml:"dns"`
	AuthChecks        *fileAuthChecks   `yaml:"auth_checks"`
	DNSBL             map[string]string `yaml:"dnsbl"`
	DKIMSign          *fileDKIMSign     `yaml:"dkim_sign"`
	Clamd             *fileClamd        `yaml:"clamd"`
	State             *fileState        `yaml:"state"`
	// Tests of the combined behaviour of the packs the file loads; read
	// by rules.Set.RunConfigTests (`mailgate test -c`, `lint -c`).
	Tests yaml.Node `yaml:"tests"`
}

type fileClamd struct {
	Address string    `yaml:"address"`
	Timeout *duration `yaml:"timeout"`
	MaxSize *size     `yaml:"max_size"`
}

type fileState struct {
	Redis string `yaml:"redis"`
}

type fileTLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

type fileLog struct {
	Format string `yaml:"format"`
	Level  string `yaml:"level"`
}

type fileLimits struct {
	MessageSize    *size `yaml:"message_size"`
	Recipients     *int  `yaml:"recipients"`
	Connections    *int  `yaml:"connections"`
	LineLength     *size `yaml:"line_length"`
	MimeDepth      *int  `yaml:"mime_depth"`
	MimeParts      *int  `yaml:"mime_parts"`
	HeaderBytes    *size `yaml:"header_bytes"`
	ArchiveDepth   *int  `yaml:"archive_depth"`
	ArchiveEntries *int  `yaml:"archive_entries"`
	SpoolMemory    *size `yaml:"spool_memory"`
	SpoolTotal     *size `yaml:"spool_memory_total"`
	InspectSpill   *size `yaml:"inspect_spill"`
	Errors         *int  `yaml:"errors"`
	Decompressed   *size `yaml:"decompressed_bytes"`
	ArchiveDict    *size `yaml:"archive_dict"`
}

type fileTimeouts struct {
	Command         *duration     `yaml:"command"`
	DataIdle        *duration     `yaml:"data_idle"`
	DataTotal       *duration     `yaml:"data_total"`
	UpstreamConnect *duration     `yaml:"upstream_connect"`
	Upstream        *duration     `yaml:"upstream"`
	Shutdown        *duration     `yaml:"shutdown"`
	Policy          *duration     `yaml:"policy"`
	Inspect         *duration     `yaml:"inspect"`
	GreetDelay      *zeroDuration `yaml:"greet_delay"`
}

// stringList accepts one string or a list of strings.
type stringList []string

func (s *stringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = stringList{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(stringList, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return nodeError(c, "expected a string")
			}
			out = append(out, c.Value)
		}
		*s = out
		return nil
	}
	return nodeError(n, "expected a string or a list of strings")
}

// size is a byte count written as 1048576, 64KiB, 50MiB, 1GiB, 10MB or 100KB.
type size int64

var sizeRE = regexp.MustCompile(`^([0-9]+)\s*([KMGT]i?B|B)?$`)

func (s *size) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseSize(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		return nodeError(n, "bad size %q (want a number of bytes, optionally with B, KiB, MiB, GiB, KB, MB or GB)", n.Value)
	}
	*s = size(v)
	return nil
}

// parseSize parses a size like "50MiB".
func parseSize(v string) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(v))
	if m == nil {
		return 0, errors.New("bad size")
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, err
	}
	mult := map[string]int64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[m[2]]
	if n > (1<<62)/mult {
		return 0, errors.New("size too large")
	}
	return n * mult, nil
}

// duration is a Go duration ("5m", "30s", "1h30m").
type duration time.Duration

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil || v <= 0 {
		return nodeError(n, "bad duration %q (want e.g. 30s, 5m, 1h)", n.Value)
	}
	*d = duration(v)
	return nil
}

// zeroDuration is a duration that may be 0 ("0s": off), as greet_delay.
type zeroDuration struct{ d time.Duration }

func (d *zeroDuration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil || v < 0 {
		return nodeError(n, "bad duration %q (want e.g. 0s, 2s, 30s)", n.Value)
	}
	d.d = v
	return nil
}

// nodeError is a positioned error for a leaf value; it travels through
// yaml.v3 as a TypeError so that every problem is collected.
func nodeError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: col %d: %s", n.Line, n.Column, fmt.Sprintf(format, args...))}}
}

// Load reads and validates a config file. Relative paths resolve from
// the file's directory. Errors are a *Error.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Problems: []string{fmt.Sprintf("%s: %v", path, err)}}
	}
	return Parse(path, data)
}

var listNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (?:col (\d+): )?(.*)$`)

// Parse is Load on data already read.
func Parse(path string, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &Error{Problems: positioned(path, &root, err)}
	}
	// Keys and shapes first, in the file's words; the decoder's own
	// messages ("field x not found in type config.fileLimits") stay a
	// second net.
	if probs := checkKeys(path, &root, reflect.TypeOf(fileConfig{})); len(probs) > 0 {
		return nil, &Error{Problems: probs}
	}
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return nil, &Error{Problems: positioned(path, &root, err)}
	}
	c := Default()
	c.File, c.Data = path, data
	c.Dir = filepath.Dir(path)
	var probs []string
	bad := func(keys []string, format string, args ...any) {
		line, col := findKey(&root, keys)
		probs = append(probs, fmt.Sprintf("%s:%d:%d: %s", path, line, col, fmt.Sprintf(format, args...)))
	}
	if fc.Listen != nil { // `listen: []` is no SMTP listener (milter-only)
		c.Listen = fc.Listen
		for _, a := range fc.Listen {
			if !validListenAddr(a) {
				bad([]string{"listen"}, "listen: %q: want host:port (port 0-65535)", a)
			}
		}
	}
	c.MilterListen = fc.MilterListen
	for _, a := range fc.MilterListen {
		if !ValidMilterAddr(a) {
			bad([]string{"milter_listen"}, "milter_listen: %q: want host:port (port 0-65535) or unix:/path", a)
		}
	}
	if len(c.Listen) == 0 && len(c.MilterListen) == 0 {
		bad([]string{"listen"}, "listen: empty and no milter_listen: nothing to serve")
	}
	if fc.Hostname != "" {
		c.Hostname = fc.Hostname
		if !validHostname(fc.Hostname) {
			bad([]string{"hostname"}, "hostname: %q is not a domain name or an address literal ([192.0.2.1], [IPv6:2001:db8::1])", fc.Hostname)
		}
	}
	if fc.Upstream == "" {
		if len(c.Listen) > 0 { // milter-only: the MTA delivers, no upstream
			bad(nil, "upstream: required in a config file (smtp://host:port or maildir:/path)")
		}
	} else {
		c.Upstream = fc.Upstream
		if err := checkUpstreamURL(fc.Upstream); err != nil {
			bad([]string{"upstream"}, "upstream: %v", err)
		}
	}
	if fc.XForward != nil {
		c.XForward = *fc.XForward
	}
	if fc.XClient != nil {
		c.XClient = *fc.XClient
	}
	if fc.TrustedForwarders != nil {
		c.TrustedForwarders = nil
		for _, s := range fc.TrustedForwarders {
			p, err := parsePrefix(s)
			if err != nil {
				bad([]string{"trusted_forwarders"}, "trusted_forwarders: bad network %q", s)
				continue
			}
			c.TrustedForwarders = append(c.TrustedForwarders, p)
		}
	}
	enum := func(key, val string, dst *string, valid ...string) {
		if val == "" {
			return
		}
		for _, v := range valid {
			if val == v {
				*dst = val
				return
			}
		}
		bad(strings.Split(key, "."), "%s: %q is not one of %s", key, val, strings.Join(valid, ", "))
	}
	enum("auth", fc.Auth, &c.Auth, "off", "relay")
	enum("bare_newline", fc.BareNewline, &c.BareNewline, "reject", "normalize")
	enum("rule_error", fc.RuleError, &c.RuleError, "tempfail", "continue")
	enum("log.format", fc.Log.Format, &c.LogFormat, "json", "text")
	enum("log.level", fc.Log.Level, &c.LogLevel, "debug", "info", "warn", "error")
	c.TLSCert, c.TLSKey = c.abs(fc.TLS.Cert), c.abs(fc.TLS.Key)
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad([]string{"tls"}, "tls: needs both cert and key")
	}
	if c.Auth == "relay" && c.TLSCert == "" {
		bad([]string{"auth"}, "auth: relay needs tls (AUTH is only offered after STARTTLS)")
	}
	applyLimits(&c.Limits, &fc.Limits, func(key string, v int64) {
		bad([]string{"limits", key}, "limits.%s: %d must be greater than 0", key, v)
	})
	applyTimeouts(&c.Timeouts, &fc.Timeouts)
	if fc.SpoolDir != "" {
		c.SpoolDir = c.abs(fc.SpoolDir)
	}
	// A quarantine_dir the file gives is relative to the file; the
	// default stays relative to the working directory, as without a file,
	// so that contrib/mailgate.service (WorkingDirectory= its
	// StateDirectory=) keeps held mail out of the read-only /etc.
	if fc.QuarantineDir != "" {
		c.QuarantineDir = c.abs(fc.QuarantineDir)
	}
	// policies: absent keeps the embedded default pack (DefaultConfig's
	// EmbeddedPolicy); only an explicit empty list runs without policies
	// (docs/DESIGN.md "Configuration"). Paths are resolved here, once:
	// the loaders take them as they are.
	if fc.Policies != nil {
		c.EmbeddedPolicy = ""
		for _, p := range *fc.Policies {
			if p == "" {
				bad([]string{"policies"}, "policies: empty file name")
				continue
			}
			c.Policies = append(c.Policies, c.abs(p))
		}
	}
	if len(fc.Lists) > 0 {
		c.Lists = map[string]string{}
		for _, k := range slices.Sorted(maps.Keys(fc.Lists)) {
			v := fc.Lists[k]
			if !listNameRE.MatchString(k) {
				bad([]string{"lists", k}, "lists: %q is not a valid list name (letters, digits and _, not starting with a digit)", k)
				continue
			}
			if v == "" {
				bad([]string{"lists", k}, "lists: %s: expected a file name", k)
				continue
			}
			c.Lists[k] = c.abs(v)
		}
	}
	c.MetricsListen = fc.MetricsListen
	if c.MetricsListen != "" && !validListenAddr(c.MetricsListen) {
		bad([]string{"metrics_listen"}, "metrics_listen: %q: want host:port (port 0-65535)", c.MetricsListen)
	}
	c.applyLookups(&fc, bad)
	if fc.Clamd != nil {
		c.Clamd = &Clamd{Address: fc.Clamd.Address, Timeout: DefaultClamdTimeout, MaxSize: DefaultClamdMaxSize}
		if fc.Clamd.Timeout != nil {
			c.Clamd.Timeout = time.Duration(*fc.Clamd.Timeout)
		}
		if fc.Clamd.MaxSize != nil {
			c.Clamd.MaxSize = int64(*fc.Clamd.MaxSize)
			if c.Clamd.MaxSize <= 0 {
				bad([]string{"clamd", "max_size"}, "clamd.max_size: %d must be greater than 0", c.Clamd.MaxSize)
			}
		}
		if c.Clamd.Address == "" {
			bad([]string{"clamd"}, "clamd.address: required (tcp://127.0.0.1:3310 or unix:/run/clamav/clamd.ctl)")
		} else if _, _, err := clamd.ParseAddress(c.Clamd.Address); err != nil {
			bad([]string{"clamd", "address"}, "clamd.address: %v", err)
		}
	}
	if fc.State != nil {
		c.State = &State{Redis: fc.State.Redis}
		if c.State.Redis == "" {
			bad([]string{"state"}, "state.redis: required (redis://127.0.0.1:6379/0); without state:, rate() and greylisting stay in this process")
		} else if err := redisstate.CheckURL(c.State.Redis); err != nil {
			bad([]string{"state", "redis"}, "state.redis: %v", err)
		}
	}
	if strings.HasPrefix(c.Upstream, "maildir:") {
		c.Upstream = "maildir:" + c.abs(strings.TrimPrefix(c.Upstream, "maildir:"))
	}
	if len(probs) > 0 {
		return nil, &Error{Problems: probs}
	}
	return c, nil
}

// applyLimits sets the limits the file gives. Every limit must be > 0:
// zero or a negative number would switch a bound off (a mime_depth of -1
// once disabled the depth check), so such a value is reported through bad
// instead.
func applyLimits(l *Limits, f *fileLimits, bad func(key string, v int64)) {
	setI := func(key string, dst *int, v *int) {
		if v == nil {
			return
		}
		if *v <= 0 {
			bad(key, int64(*v))
			return
		}
		*dst = *v
	}
	setS := func(key string, dst *int64, v *size) {
		if v == nil {
			return
		}
		if *v <= 0 {
			bad(key, int64(*v))
			return
		}
		*dst = int64(*v)
	}
	setS("message_size", &l.MessageSize, f.MessageSize)
	setI("recipients", &l.Recipients, f.Recipients)
	setI("connections", &l.Connections, f.Connections)
	setS("line_length", &l.LineLength, f.LineLength)
	setI("mime_depth", &l.MimeDepth, f.MimeDepth)
	setI("mime_parts", &l.MimeParts, f.MimeParts)
	setS("header_bytes", &l.HeaderBytes, f.HeaderBytes)
	setI("archive_depth", &l.ArchiveDepth, f.ArchiveDepth)
	setI("archive_entries", &l.ArchiveEntries, f.ArchiveEntries)
	setS("spool_memory", &l.SpoolMemory, f.SpoolMemory)
	setS("spool_memory_total", &l.SpoolTotal, f.SpoolTotal)
	setS("inspect_spill", &l.InspectSpill, f.InspectSpill)
	setI("errors", &l.Errors, f.Errors)
	setS("decompressed_bytes", &l.DecompressedBytes, f.Decompressed)
	setS("archive_dict", &l.ArchiveDict, f.ArchiveDict)
}

// ValidMilterAddr accepts a milter_listen address: host:port, or
// unix:/path for a unix socket.
func ValidMilterAddr(a string) bool {
	if p, ok := strings.CutPrefix(a, "unix:"); ok {
		return p != "" && !strings.ContainsRune(p, 0)
	}
	return validListenAddr(a)
}

// validListenAddr accepts host:port with a numeric port, as net.Listen
// takes it.
func validListenAddr(a string) bool {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 0 && n <= 65535
}

// CheckFiles reads what serve reads at start besides the policies (the TLS
// certificate and key), so that `lint -c` refuses what serve would refuse.
func (c *Config) CheckFiles() error {
	if _, err := ServerTLS(c.TLSCert, c.TLSKey); err != nil {
		return &Error{Problems: []string{fmt.Sprintf("%s: %v", c.File, err)}}
	}
	if c.DKIMSign != nil {
		if _, err := facts.LoadSigner(c.DKIMSign.Domain, c.DKIMSign.Selector, c.DKIMSign.Key); err != nil {
			return &Error{Problems: []string{fmt.Sprintf("%s: dkim_sign.key: %v", c.File, err)}}
		}
	}
	return nil
}

// validHostname accepts a domain name (RFC 5321 Domain: dot-separated
// labels of letters, digits and hyphens, no hyphen at either end) or an
// address literal ([192.0.2.1], [IPv6:2001:db8::1]): the forms that may
// stand in the greeting and in EHLO.
func validHostname(h string) bool {
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		lit := h[1 : len(h)-1]
		if v6, ok := strings.CutPrefix(lit, "IPv6:"); ok {
			a, err := netip.ParseAddr(v6)
			return err == nil && a.Is6() && a.Zone() == ""
		}
		a, err := netip.ParseAddr(lit)
		return err == nil && a.Is4()
	}
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func applyTimeouts(t *Timeouts, f *fileTimeouts) {
	set := func(dst *time.Duration, v *duration) {
		if v != nil {
			*dst = time.Duration(*v)
		}
	}
	set(&t.Command, f.Command)
	set(&t.DataIdle, f.DataIdle)
	set(&t.DataTotal, f.DataTotal)
	set(&t.UpstreamConnect, f.UpstreamConnect)
	set(&t.Upstream, f.Upstream)
	set(&t.Shutdown, f.Shutdown)
	set(&t.Policy, f.Policy)
	set(&t.Inspect, f.Inspect)
	if f.GreetDelay != nil {
		t.GreetDelay = time.Duration(f.GreetDelay.d)
	}
}

// abs resolves a relative path from the config file's directory.
func (c *Config) abs(p string) string {
	if p == "" || filepath.IsAbs(p) || c.Dir == "" {
		return p
	}
	return filepath.Join(c.Dir, p)
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// checkUpstreamURL accepts smtp://host:port and maildir:/path.
func checkUpstreamURL(u string) error {
	switch {
	case strings.HasPrefix(u, "smtp://"):
		hp := strings.TrimSuffix(strings.TrimPrefix(u, "smtp://"), "/")
		if _, port, err := net.SplitHostPort(hp); err != nil || port == "" {
			return fmt.Errorf("%q: want smtp://host:port", u)
		}
		return nil
	case strings.HasPrefix(u, "maildir:"):
		if strings.TrimPrefix(u, "maildir:") == "" {
			return fmt.Errorf("%q: want maildir:/path", u)
		}
		return nil
	}
	return fmt.Errorf("%q: want smtp://host:port or maildir:/path", u)
}

// positioned turns a yaml.v3 error into "file:line:col: message" lines.
func positioned(path string, root *yaml.Node, err error) []string {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		sm := lineRE.FindStringSubmatch(m)
		if sm == nil {
			out = append(out, fmt.Sprintf("%s:1:1: %s", path, strings.TrimPrefix(m, "yaml: ")))
			continue
		}
		line, _ := strconv.Atoi(sm[1])
		col := 1
		if sm[2] != "" {
			col, _ = strconv.Atoi(sm[2])
		} else if f := fieldRE.FindStringSubmatch(sm[3]); f != nil {
			col = keyColumn(root, line, f[1])
		} else {
			col = firstColumn(root, line)
		}
		out = append(out, fmt.Sprintf("%s:%d:%d: %s", path, line, col, sm[3]))
	}
	return out
}

var fieldRE = regexp.MustCompile(`^field (\S+) not found`)

// keyColumn finds the column of mapping key name on line, 1 if none.
func keyColumn(n *yaml.Node, line int, name string) int {
	if n == nil {
		return 1
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; k.Line == line && k.Value == name {
				return k.Column
			}
		}
	}
	for _, c := range n.Content {
		if col := keyColumn(c, line, name); col != 1 {
			return col
		}
	}
	return 1
}

// firstColumn finds the column of the last scalar on line (a value rather
// than its key), 1 if none.
func firstColumn(n *yaml.Node, line int) int {
	col := 1
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && n.Line == line && n.Column > col {
			col = n.Column
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return col
}

// findKey returns the position of the value at the key path (the document
// start for an empty path).
func findKey(root *yaml.Node, keys []string) (int, int) {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line, col := 1, 1
	if n.Line > 0 {
		line, col = n.Line, n.Column
	}
	for _, k := range keys {
		if n.Kind != yaml.MappingNode {
			break
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				n = n.Content[i+1]
				line, col = n.Line, n.Column
				found = true
				break
			}
		}
		if !found {
			break
		}
	}
	return line, col
}

// CheckUpstream validates an upstream URL (for --upstream).
func CheckUpstream(u string) error { return checkUpstreamURL(u) }
