package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads, validates and compiles every policy and list. On error it
// returns *LoadError whose Error() is one "file:line:col: message" line per
// problem (plus snippet lines). st may be nil (a private State is made).
func Load(cfg Config, st Store) (*Set, error) {
	return load(nil, cfg, st)
}

// LoadFS is Load for policies read from an fs.FS (the embedded default
// pack). Lists are still read from the file system (Config.BaseDir).
func LoadFS(fsys fs.FS, cfg Config, st Store) (*Set, error) {
	return load(fsys, cfg, st)
}

func load(fsys fs.FS, cfg Config, st Store) (*Set, error) {
	if st == nil {
		st = NewState(0, nil)
	}
	s := &Set{cfg: cfg, st: st, fsys: fsys, uses: map[string]bool{}, usesProp: map[string]bool{}}
	var le LoadError
	switch cfg.RuleError {
	case "", RuleErrorTempfail:
		s.ruleErrorContinue = false
	case RuleErrorContinue:
		s.ruleErrorContinue = true
	default:
		le.add("config", 1, 1, fmt.Sprintf("rule_error: %q is not one of tempfail, continue", cfg.RuleError))
	}
	s.loadLists(&le)
	c := newCompiler(s, &le)
	seen := map[string]string{} // rule name → "file:line" of its first definition
	for _, p := range cfg.Policies {
		name := p
		var data []byte
		var err error
		if fsys != nil {
			data, err = fs.ReadFile(fsys, p)
		} else {
			name = cfg.path(p)
			data, err = os.ReadFile(name)
		}
		if err != nil {
			le.add(name, 1, 1, fmt.Sprintf("reading policy: %v", unwrapPathErr(err)))
			continue
		}
		pf := c.loadFile(name, data, seen)
		if pf != nil {
			s.files = append(s.files, pf)
		}
	}
	if len(le.Problems) > 0 {
		return nil, &le
	}
	for _, pf := range s.files {
		for _, r := range pf.rules {
			s.byStage[r.stage] = append(s.byStage[r.stage], r)
			s.names = append(s.names, r.name)
		}
	}
	return s, nil
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// decodePolicy decodes one policy file strictly. Problems go to le; the
// returned value holds what could be decoded (nil after a syntax error).
func decodePolicy(file string, data []byte, le *LoadError) *policyYAML {
	var pol policyYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(&pol)
	if err == nil {
		// A second document would be silently ignored: refuse it.
		var extra yaml.Node
		if err2 := dec.Decode(&extra); err2 == nil {
			le.add(file, extra.Line, extra.Column, "a policy file holds one YAML document; found a second one")
		}
		return &pol
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		if errors.Is(err, io.EOF) {
			return &pol // an empty file is an empty policy
		}
		le.Problems = append(le.Problems, yamlProblem(file, data, err))
		return nil
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	for _, msg := range te.Errors {
		line, col, text := typeErrorPos(&root, data, msg)
		le.addSnippet(file, line, col, text, data)
	}
	return &pol
}

var (
	teLineRE     = regexp.MustCompile(`^line (\d+): (.*)$`)
	teUnknownRE  = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	teUnmarshRE  = regexp.MustCompile("^cannot unmarshal (\\S+)(?: `(.*)`)? into (\\S+)$")
	yamlTypeKeys = map[string][]string{}
	yamlTypeDesc = map[string]string{}
)

func init() {
	for _, v := range []any{policyYAML{}, ruleYAML{}, headersYAML{}, rcptsYAML{}, greylistYAML{}, testYAML{}, tenvYAML{}, expectYAML{}} {
		t := reflect.TypeOf(v)
		var keys []string
		for i := 0; i < t.NumField(); i++ {
			keys = append(keys, strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0])
		}
		yamlTypeKeys["rules."+t.Name()] = keys
	}
	for k, v := range map[string][2]string{
		"policyYAML":   {"a policy (rules:, tests:)", ""},
		"ruleYAML":     {"a rule", "a list of rules"},
		"headersYAML":  {"headers (add:, set:, remove:)", ""},
		"rcptsYAML":    {"recipients (add:, remove:)", ""},
		"greylistYAML": {"greylist (delay:)", ""},
		"testYAML":     {"a test", "a list of tests"},
		"tenvYAML":     {"a test envelope (from:, rcpt:, client_ip:, helo:)", ""},
		"expectYAML":   {"a test expectation (verdict:, rules:, stripped:, headers:, score:, tags:)", ""},
		"scalar":       {"a string", "a list of strings"},
	} {
		yamlTypeDesc["rules."+k] = v[0]
		yamlTypeDesc["*rules."+k] = v[0]
		yamlTypeDesc["[]rules."+k] = v[1]
	}
}

// typeErrorPos turns one yaml.v3 TypeError line into a position and a
// friendlier message with a suggestion.
func typeErrorPos(root *yaml.Node, data []byte, msg string) (int, int, string) {
	m := teLineRE.FindStringSubmatch(msg)
	if m == nil {
		return 1, 1, msg
	}
	line, _ := strconv.Atoi(m[1])
	text := m[2]
	if u := teUnknownRE.FindStringSubmatch(text); u != nil {
		col := findKey(root, line, u[1])
		desc := yamlTypeDesc[u[2]]
		if desc == "" {
			desc = u[2]
		}
		return line, col, fmt.Sprintf("unknown key %s in %s%s", u[1], desc, DidYouMean(u[1], yamlTypeKeys[u[2]]))
	}
	if u := teUnmarshRE.FindStringSubmatch(text); u != nil {
		kind := yaml.ScalarNode
		switch u[1] {
		case "!!seq":
			kind = yaml.SequenceNode
		case "!!map":
			kind = yaml.MappingNode
		}
		col := findValue(root, line, kind, u[2])
		if col == 0 {
			col = firstNonSpace(data, line)
		}
		desc := yamlTypeDesc[u[3]]
		if desc == "" {
			desc = u[3]
		}
		got := strings.TrimPrefix(u[1], "!!")
		switch got {
		case "seq":
			got = "a list"
		case "map":
			got = "a mapping"
		case "str":
			got = "a string"
		case "int", "float":
			got = "a number"
		case "bool":
			got = "true/false"
		default:
			got = "a " + got + " value"
		}
		return line, col, fmt.Sprintf("expected %s, found %s", desc, got)
	}
	return line, firstNonSpace(data, line), text
}

// findKey returns the 1-based column of a mapping key at line whose value
// is value; 0 when there is none.
func findKey(n *yaml.Node, line int, value string) int {
	if n == nil {
		return 0
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Line == line && k.Value == value {
				return k.Column
			}
		}
	}
	for _, c := range n.Content {
		if col := findKey(c, line, value); col != 0 {
			return col
		}
	}
	return 0
}

// findValue returns the 1-based column of a mapping value or sequence item
// of kind at line (with value, for scalars); 0 when there is none.
func findValue(n *yaml.Node, line int, kind yaml.Kind, value string) int {
	if n == nil {
		return 0
	}
	start := 0
	if n.Kind == yaml.MappingNode {
		start = 1 // values only
	}
	step := 1
	if n.Kind == yaml.MappingNode {
		step = 2
	}
	for i := start; i < len(n.Content); i += step {
		c := n.Content[i]
		if c.Line == line && c.Kind == kind && (kind != yaml.ScalarNode || c.Value == value) {
			return c.Column
		}
	}
	for _, c := range n.Content {
		if col := findValue(c, line, kind, value); col != 0 {
			return col
		}
	}
	return 0
}

// loadLists reads every configured list into a set. Domains, addresses and
// hashes are lower-cased; networks and addresses are parsed into prefixes
// for cidr().
func (s *Set) loadLists(le *LoadError) {
	s.lists = map[string]map[string]struct{}{}
	s.prefixes = map[uintptr][]netip.Prefix{}
	for name, file := range s.cfg.Lists {
		path := s.cfg.path(file)
		if !validListName(name) {
			le.add("config", 1, 1, fmt.Sprintf("lists: %q is not a valid list name", name))
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			le.add(path, 1, 1, fmt.Sprintf("reading list %s: %v", name, unwrapPathErr(err)))
			continue
		}
		set := map[string]struct{}{}
		var nets []netip.Prefix
		for i, line := range strings.Split(string(data), "\n") {
			entry, col := listEntry(line)
			if entry == "" {
				continue
			}
			if strings.ContainsAny(entry, " \t") {
				le.addSnippet(path, i+1, col, fmt.Sprintf("list %s: one entry a line (found %q)", name, entry), data)
				continue
			}
			if p, err := parsePrefix(entry); err == nil {
				nets = append(nets, p)
				set[p.String()] = struct{}{}
				if p.IsSingleIP() {
					set[p.Addr().String()] = struct{}{}
				}
				continue
			} else if strings.Contains(entry, "/") {
				le.addSnippet(path, i+1, col, fmt.Sprintf("list %s: bad network %q: %v", name, entry, err), data)
				continue
			}
			entry = strings.TrimSuffix(strings.ToLower(entry), ".")
			set[entry] = struct{}{}
		}
		s.lists[name] = set
		if len(nets) > 0 {
			s.prefixes[reflect.ValueOf(set).Pointer()] = nets
		}
	}
}

// listEntry returns the entry of one list line and its 1-based column: '#'
// starts a comment at the start of the line or after a blank.
func listEntry(line string) (string, int) {
	line = strings.TrimRight(line, "\r")
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			line = line[:i]
			break
		}
	}
	trimmed := strings.TrimLeft(line, " \t")
	col := len(line) - len(trimmed) + 1
	return strings.TrimRight(trimmed, " \t"), col
}
