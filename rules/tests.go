package rules

import (
	"bytes"
	"fmt"
	"io/fs"
	"math"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"mailgate/mimeparse"
)

// TestResult is the outcome of one `tests:` entry of a policy file.
type TestResult struct {
	File     string
	Line     int
	Name     string
	Pass     bool
	Problems []string
}

var verdictNames = []string{"accept", "reject", "tempfail", "discard", "quarantine"}

// checkTests validates the tests: entries of a file at load time.
func (c *compiler) checkTests(tests []testYAML) {
	for i := range tests {
		t := &tests[i]
		c.str("", "tests: name", t.Name)
		if v, ok := c.str("", "tests: message", t.Message); ok && v == "" {
			c.atScalar(t.Message, "tests: message: empty file name")
		}
		if env := t.Envelope; env != nil {
			c.str("", "tests: envelope: from", env.From)
			c.str("", "tests: envelope: helo", env.Helo)
			for _, r := range env.Rcpt {
				c.str("", "tests: envelope: rcpt", r)
			}
			if v, ok := c.str("", "tests: envelope: client_ip", env.ClientIP); ok {
				if _, err := netip.ParseAddr(v); err != nil {
					c.atScalar(env.ClientIP, "tests: envelope: client_ip: %q is not an IP address", v)
				}
			}
		}
		if fy := t.Facts; fy != nil {
			c.checkFacts(fy)
		}
		if fy := t.Facts; fy != nil {
			if vy := fy.Virus; vy != nil {
				if v, ok := c.str("", "tests: facts: virus: found", vy.Found); ok && v != "true" && v != "false" {
					c.atScalar(vy.Found, "tests: facts: virus: found: %q is not true or false", v)
				}
				for _, n := range vy.Names {
					c.str("", "tests: facts: virus: names", n)
				}
				c.str("", "tests: facts: virus: error", vy.Error)
				if vy.Found.Value == "true" && len(vy.Names) == 0 {
					c.atScalar(vy.Found, "tests: facts: virus: found: true needs names: (the signatures clamd reported)")
				}
			}
			for _, d := range fy.Defects {
				c.str("", "tests: facts: defects", d)
			}
		}
		x := t.Expect
		if x == nil {
			l, col := testPos(t)
			c.at(l, col, "tests: a test needs expect: (verdict, rules, stripped, headers, score, tags)")
			continue
		}
		if v, ok := c.str("", "tests: expect: verdict", x.Verdict); ok && !contains(verdictNames, v) {
			c.atScalar(x.Verdict, "tests: expect: verdict: %q is not one of %s%s", v, strings.Join(verdictNames, ", "), DidYouMean(v, verdictNames))
		}
		if v, ok := c.str("", "tests: expect: score", x.Score); ok {
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				c.atScalar(x.Score, "tests: expect: score: %q is not a number", v)
			}
		}
		if _, bad := x.Headers.pairs(); bad != nil {
			c.at(bad.Line, bad.Column, "tests: expect: headers: expected a mapping of header name to value")
		}
		for _, l := range [][]scalar{x.Rules, x.Stripped, x.Tags} {
			for _, s := range l {
				c.str("", "tests: expect", s)
			}
		}
	}
}

func testPos(t *testYAML) (int, int) {
	for _, s := range []scalar{t.Name, t.Message} {
		if s.Set {
			return s.Line, s.Column
		}
	}
	if t.Expect != nil && t.Expect.Verdict.Set {
		return t.Expect.Verdict.Line, t.Expect.Verdict.Column
	}
	return 1, 1
}

// RunTests runs every test of every policy file of the set, each against
// that file's own rules (with the set's lists and configuration), so that
// a pack's tests pass whatever other packs a configuration loads beside
// it; a configuration's tests of the combined behaviour run against the
// whole set (RunSetTests). Each test gets a fresh State and its message is
// parsed with mimeparse.Parse.
func (s *Set) RunTests() []TestResult {
	var out []TestResult
	for _, pf := range s.files {
		own := s.only(pf)
		for i := range pf.tests {
			out = append(out, own.runTest(pf, &pf.tests[i], i))
		}
	}
	return out
}

// configTestsYAML is the part of a configuration file rules reads: its
// own tests of the combined behaviour.
type configTestsYAML struct {
	Tests []testYAML `yaml:"tests"`
}

// RunConfigTests runs the tests: of a configuration file (mailgate.yaml,
// data as read from file) against the whole set: what the packs do
// together, as serve runs them. Their messages resolve from the file's
// directory. A malformed test is a *LoadError with the file's positions.
func (s *Set) RunConfigTests(file string, data []byte) ([]TestResult, error) {
	return s.configTests(file, data, true)
}

// CheckConfigTests checks a configuration file's tests: as RunConfigTests
// would load them, without running them (`mailgate lint -c`).
func (s *Set) CheckConfigTests(file string, data []byte) error {
	_, err := s.configTests(file, data, false)
	return err
}

func (s *Set) configTests(file string, data []byte, run bool) ([]TestResult, error) {
	var cy configTestsYAML
	if err := yaml.Unmarshal(data, &cy); err != nil {
		le := &LoadError{}
		le.Problems = append(le.Problems, yamlProblem(file, data, err))
		return nil, le
	}
	if len(cy.Tests) == 0 {
		return nil, nil
	}
	le := &LoadError{}
	c := newCompiler(s, le)
	c.file, c.src = file, data
	c.checkTests(cy.Tests)
	if len(le.Problems) > 0 {
		return nil, le
	}
	if !run {
		return nil, nil
	}
	pf := &policyFile{name: file, tests: cy.Tests}
	whole := *s
	whole.fsys = nil // the configuration is a file on disk
	var out []TestResult
	for i := range cy.Tests {
		out = append(out, whole.runTest(pf, &cy.Tests[i], i))
	}
	return out, nil
}

// only is the set restricted to one file's rules: same lists, same
// configuration, same compiled programs.
func (s *Set) only(pf *policyFile) *Set {
	sub := *s
	sub.files = []*policyFile{pf}
	for st := range s.byStage {
		sub.byStage[st] = nil
		for _, r := range s.byStage[st] {
			if r.file == pf.name {
				sub.byStage[st] = append(sub.byStage[st], r)
			}
		}
	}
	return &sub
}

func (s *Set) readTestFile(pf *policyFile, name string) ([]byte, error) {
	if s.fsys != nil && !filepath.IsAbs(name) {
		return fs.ReadFile(s.fsys, path.Clean(path.Join(path.Dir(pf.name), name)))
	}
	if !filepath.IsAbs(name) {
		name = filepath.Join(filepath.Dir(pf.name), name)
	}
	return os.ReadFile(name)
}

// testRun is the outcome of simulating one transaction.
type testRun struct {
	verdict Action
	rules   []string
	tags    []string
	score   float64
	edits   Edits
	subject string
}

func (s *Set) runTest(pf *policyFile, t *testYAML, idx int) TestResult {
	line, _ := testPos(t)
	res := TestResult{File: pf.name, Line: line, Name: t.Name.Value}
	if res.Name == "" {
		res.Name = t.Message.Value
	}
	if res.Name == "" {
		res.Name = fmt.Sprintf("test %d", idx+1)
	}
	msg := &mimeparse.Message{}
	if t.Message.Value != "" {
		data, err := s.readTestFile(pf, t.Message.Value)
		if err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("reading message: %v", err))
			return res
		}
		msg, err = mimeparse.Parse(bytes.NewReader(data), mimeparse.DefaultLimits())
		if err != nil || msg == nil {
			res.Problems = append(res.Problems, fmt.Sprintf("parsing message: %v", err))
			return res
		}
	}
	// What the test does not give comes from the default envelope
	// (envelope.go), as in `mailgate check`.
	defFrom, rcpts := DefaultEnvelope(msg)
	f := Facts{
		Client:   Client{IP: DefaultClientIP, Port: 25, HELO: DefaultHelo, Listener: "127.0.0.1:25"},
		Envelope: Envelope{From: defFrom, Size: int(msg.Size)},
	}
	if fy := t.Facts; fy != nil && fy.Client != nil {
		f.Client.Pregreet = fy.Client.Pregreet.Value == "true"
	}
	// Every lookup a test does not give is none, as check --offline.
	static := &StaticFacts{}
	if fy := t.Facts; fy != nil {
		static = staticFacts(fy)
		static.Defects = values(fy.Defects)
		if vy := fy.Virus; vy != nil {
			static.Virus = Virus{Found: vy.Found.Value == "true", Names: values(vy.Names), Error: vy.Error.Value}
		}
	}
	if env := t.Envelope; env != nil {
		if env.From.Set {
			f.Envelope.From = env.From.Value
		}
		if env.ClientIP.Set {
			f.Client.IP = env.ClientIP.Value
		}
		if env.Helo.Set {
			f.Client.HELO = env.Helo.Value
		}
		if len(env.Rcpt) > 0 {
			rcpts = rcpts[:0]
			for _, r := range env.Rcpt {
				rcpts = append(rcpts, r.Value)
			}
		}
	}
	run := s.simulate(s.newEvaluator(NewState(1024, nil)), &f, rcpts, msg, static)
	res.Problems = compareExpect(t.Expect, run)
	res.Pass = len(res.Problems) == 0
	return res
}

// simulate runs a transaction through the same Conn and Tx that serve
// drives (transaction.go), with an upstream that accepts every command.
func (s *Set) simulate(e *Evaluator, f *Facts, rcpts []string, msg *mimeparse.Message, enrich Enricher) testRun {
	res := Simulate(e, SimInput{Client: f.Client, From: f.Envelope.From, Rcpts: rcpts, Msg: msg, Size: f.Envelope.Size, Enrich: enrich})
	t := res.Tx
	return testRun{
		verdict: res.Decision.Action,
		rules:   t.Rules(),
		tags:    t.Tags(),
		score:   t.Score(),
		edits:   *t.Edits(),
		subject: msg.Header("Subject"),
	}
}

// compareExpect lists every difference between a test's expectation and
// what happened.
func compareExpect(x *expectYAML, run testRun) []string {
	var p []string
	if x == nil {
		return []string{"no expect:"}
	}
	if x.Verdict.Set && x.Verdict.Value != string(run.verdict) {
		p = append(p, fmt.Sprintf("verdict: want %s, got %s", x.Verdict.Value, run.verdict))
	}
	if x.Rules != nil {
		if d := setDiff(values(x.Rules), run.rules); d != "" {
			p = append(p, "rules: "+d)
		}
	}
	if x.Stripped != nil {
		var got []string
		for _, st := range run.edits.Strip {
			got = append(got, st.Path)
		}
		want := values(x.Stripped)
		// An expected entry may name the part by path or by file name.
		var norm []string
		for _, w := range want {
			n := w
			for _, st := range run.edits.Strip {
				if st.Filename == w || st.Path == w {
					n = st.Path
				}
			}
			norm = append(norm, n)
		}
		if d := setDiff(norm, got); d != "" {
			p = append(p, "stripped: "+d)
		}
	}
	pairs, _ := x.Headers.pairs()
	for _, kv := range pairs {
		name, want := kv[0].Value, kv[1].Value
		if strings.EqualFold(name, "Subject") && run.edits.SubjectPrefix != "" {
			if got := run.edits.SubjectPrefix + run.subject; got != want {
				p = append(p, fmt.Sprintf("headers: Subject: want %q, got %q", want, got))
			}
			continue
		}
		if !headerMatches(run.edits.Headers, name, want) {
			p = append(p, fmt.Sprintf("headers: %s: want %q, got %s", name, want, describeHeader(run.edits.Headers, name)))
		}
	}
	if x.Score.Set {
		want, _ := strconv.ParseFloat(x.Score.Value, 64)
		if math.Abs(want-run.score) > 1e-9 {
			p = append(p, fmt.Sprintf("score: want %g, got %g", want, run.score))
		}
	}
	if x.Tags != nil {
		if d := setDiff(values(x.Tags), run.tags); d != "" {
			p = append(p, "tags: "+d)
		}
	}
	return p
}

// headerMatches: the last add/set edit of name carries want; an empty want
// matches a remove of name.
func headerMatches(hs []HeaderEdit, name, want string) bool {
	found := false
	for _, h := range hs {
		if !strings.EqualFold(h.Name, name) {
			continue
		}
		switch h.Op {
		case "remove":
			found = want == ""
		default:
			found = h.Value == want
		}
	}
	return found
}

func describeHeader(hs []HeaderEdit, name string) string {
	var got []string
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			if h.Op == "remove" {
				got = append(got, "removed")
			} else {
				got = append(got, fmt.Sprintf("%s %q", h.Op, h.Value))
			}
		}
	}
	if len(got) == 0 {
		return "no edit"
	}
	return strings.Join(got, ", ")
}

func values(ss []scalar) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		out = append(out, s.Value)
	}
	return out
}

// setDiff describes how two sets differ ("" when equal).
func setDiff(want, got []string) string {
	var missing, extra []string
	for _, w := range want {
		if !contains(got, w) {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if !contains(want, g) {
			extra = append(extra, g)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return ""
	}
	sort.Strings(missing)
	sort.Strings(extra)
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, "missing "+strings.Join(missing, ", "))
	}
	if len(extra) > 0 {
		parts = append(parts, "unexpected "+strings.Join(extra, ", "))
	}
	return strings.Join(parts, "; ")
}
