package rules

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// TestLoadErrors checks each load error's exact file:line:col and message.
func TestLoadErrors(t *testing.T) {
	lists := map[string]string{"internal_domains": "example.com\n"}
	cases := []struct {
		name string
		src  string
		want []string
	}{
		{"misspelt field with did-you-mean",
			"rules:\n  - name: a\n    when: 'any(Attachments, .Extension == \"exe\")'\n    action: reject\n",
			[]string{"p.yaml:3:30: rule a: when: type mimeparse.Part has no field Extension (did you mean Ext?)"}},
		{"misspelt env name",
			"rules:\n  - name: a\n    when: 'Subjct contains \"x\"'\n",
			[]string{"p.yaml:3:12: rule a: when: unknown name Subjct (did you mean Subject?)"}},
		{"misspelt name in a literal block",
			"rules:\n  - name: a\n    when: |\n      Client.IP == \"1\" &&\n        Envelop.From == \"x\"\n",
			[]string{"p.yaml:5:9: rule a: when: unknown name Envelop (did you mean Envelope?)"}},
		{"misspelt name in a plain scalar",
			"rules:\n  - name: a\n    when: Attachment != nil\n",
			[]string{"p.yaml:3:11: rule a: when: unknown name Attachment (did you mean Attachments?)"}},
		{"misspelt client field",
			"rules:\n  - name: a\n    stage: connect\n    when: 'Client.Ip == \"1\"'\n",
			[]string{"p.yaml:4:19: rule a: when: type rules.Client has no field Ip (did you mean IP?)"}},
		{"misspelt envelope field",
			"rules:\n  - name: a\n    stage: mail\n    when: 'Envelope.Form == \"\"'\n",
			[]string{"p.yaml:4:21: rule a: when: type rules.Envelope has no field Form (did you mean From?)"}},
		{"misspelt archive field",
			"rules:\n  - name: a\n    when: 'any(Attachments, any(.Archive, .Executabel))'\n",
			[]string{"p.yaml:3:44: rule a: when: type mimeparse.ArchiveEntry has no field Executabel (did you mean Executable?)"}},
		{"non-bool when",
			"rules:\n  - name: a\n    when: 'Subject'\n",
			[]string{"p.yaml:3:12: rule a: when: must be true or false: expected bool, but got string"}},
		{"wrong argument type",
			"rules:\n  - name: a\n    when: 'Header(1) == \"x\"'\n",
			[]string{"p.yaml:3:19: rule a: when: cannot use int as argument (type string) to call Header"}},
		{"reject with a 4xx reply",
			"rules:\n  - name: a\n    action: reject\n    reply: \"450 4.7.1 no\"\n",
			[]string{"p.yaml:4:13: rule a: reply: reject needs a 5xx reply, not 450"}},
		{"tempfail with a 5xx reply",
			"rules:\n  - name: a\n    action: tempfail\n    reply: '550 5.7.1 no'\n",
			[]string{"p.yaml:4:13: rule a: reply: tempfail needs a 4xx reply, not 550"}},
		{"reply without enhanced code",
			"rules:\n  - name: a\n    action: reject\n    reply: 550 go away\n",
			[]string{`p.yaml:4:12: rule a: reply: "go": an enhanced status code such as 5.7.1 is required (RFC 3463)`}},
		{"enhanced class differs from the code",
			"rules:\n  - name: a\n    action: reject\n    reply: 550 4.7.1 go away\n",
			[]string{"p.yaml:4:12: rule a: reply: the enhanced code 4.7.1 does not match the reply code 550 (class 5)"}},
		{"reply on a non-terminal rule",
			"rules:\n  - name: a\n    score: 1\n    reply: 550 5.7.1 go away\n",
			[]string{"p.yaml:4:12: rule a: reply: only a terminal action (accept, reject, tempfail, discard, quarantine, greylist) has a reply"}},
		{"unknown key",
			"rules:\n  - name: a\n    acton: reject\n",
			[]string{"p.yaml:3:5: unknown key acton in a rule (did you mean action?)"}},
		{"unknown top-level key",
			"rule:\n  - name: a\n",
			[]string{"p.yaml:1:1: unknown key rule in a policy (rules:, tests:) (did you mean rules?)"}},
		{"unknown key in headers",
			"rules:\n  - name: a\n    headers: {ad: {X-A: b}}\n",
			[]string{"p.yaml:3:15: unknown key ad in headers (add:, set:, remove:) (did you mean add?)"}},
		{"body fact at rcpt stage",
			"rules:\n  - name: a\n    stage: rcpt\n    when: 'Rcpt == \"x\" && len(Attachments) > 0'\n",
			[]string{"p.yaml:4:31: rule a: when: Attachments is a body fact, only known at stage data (this rule runs at stage rcpt)"}},
		{"header fact at mail stage",
			"rules:\n  - name: a\n    stage: mail\n    when: 'HasHeader(\"X-A\")'\n",
			[]string{"p.yaml:4:12: rule a: when: HasHeader reads the message header, only known at stage data (this rule runs at stage mail)"}},
		{"Rcpt at data stage",
			"rules:\n  - name: a\n    when: Rcpt == \"x\"\n",
			[]string{"p.yaml:3:11: rule a: when: Rcpt is the recipient being decided, only set at stage rcpt (this rule runs at stage data); use Envelope.Rcpts"}},
		{"unknown list",
			"rules:\n  - name: a\n    when: 'Envelope.FromDomain in Lists.internal_domain'\n",
			[]string{"p.yaml:3:41: rule a: when: list internal_domain is not configured (config lists:) (did you mean internal_domains?)"}},
		{"bad constant network",
			"rules:\n  - name: a\n    stage: connect\n    when: 'cidr(Client.IP, \"10.0.0.0/33\")'\n",
			[]string{`p.yaml:4:28: rule a: when: cidr: "10.0.0.0/33" is not a network such as 10.0.0.0/8`}},
		{"bad rate window",
			"rules:\n  - name: a\n    stage: connect\n    when: 'rate(Client.IP, \"1x\") > 3'\n",
			[]string{`p.yaml:4:28: rule a: when: rate: window "1x" is not a duration such as 1m or 1h`}},
		{"template error",
			"rules:\n  - name: a\n    headers: {add: {X-A: 'v {{ Subjet }}'}}\n",
			[]string{"p.yaml:3:32: rule a: headers: add: X-A: unknown name Subjet (did you mean Subject?)"}},
		{"unclosed template",
			"rules:\n  - name: a\n    subject_prefix: '[{{ Score ]'\n",
			[]string{"p.yaml:3:23: rule a: subject_prefix: {{ without }}"}},
		{"control character in a header value",
			"rules:\n  - name: a\n    headers: {add: {X-A: \"x\\0y\"}}\n",
			[]string{"p.yaml:3:26: rule a: headers: add: X-A: a header value is one line of at most 900 bytes, without control characters"}},
		{"strip not a list",
			"rules:\n  - name: a\n    strip: 'Subject'\n",
			[]string{"p.yaml:3:13: rule a: strip: must yield a list of parts (e.g. filter(Attachments, .Macros)): expected slice, but got string"}},
		{"strip before data",
			"rules:\n  - name: a\n    stage: rcpt\n    strip: 'Parts'\n",
			[]string{"p.yaml:4:12: rule a: strip: parts can only be stripped at stage data, not rcpt"}},
		{"syntax error in expression",
			"rules:\n  - name: a\n    when: 'Client.Port == 1 ||| true'\n",
			[]string{`p.yaml:3:31: rule a: when: unexpected token Operator("|")`}},
		{"unknown stage",
			"rules:\n  - name: a\n    stage: dat\n",
			[]string{`p.yaml:3:12: rule a: stage: "dat" is not one of connect, helo, mail, rcpt, data (did you mean data?)`}},
		{"unknown action",
			"rules:\n  - name: a\n    action: rejct\n",
			[]string{`p.yaml:3:13: rule a: action: "rejct" is not one of accept, reject, tempfail, discard, quarantine, continue, greylist (did you mean reject?)`}},
		{"unknown mode",
			"rules:\n  - name: a\n    mode: monitr\n",
			[]string{`p.yaml:3:11: rule a: mode: "monitr" is not one of enforce, monitor (did you mean monitor?)`}},
		{"score not a number",
			"rules:\n  - name: a\n    score: '1'\n",
			[]string{`p.yaml:3:12: rule a: score: "1" is not a number`}},
		{"tags not a list",
			"rules:\n  - name: a\n    tags: {a: b}\n",
			[]string{"p.yaml:3:11: expected a list of strings, found a mapping"}},
		{"when not a string",
			"rules:\n  - name: a\n    when: [a]\n",
			[]string{"p.yaml:3:11: rule a: when: expected a string"}},
		{"rules not a list",
			"rules: x\n",
			[]string{"p.yaml:1:8: expected a list of rules, found a string"}},
		{"duplicate rule name",
			"rules:\n  - name: a\n    score: 1\n  - name: a\n    score: 2\n",
			[]string{"p.yaml:4:11: rule name a is already used at p.yaml:2"}},
		{"missing name",
			"rules:\n  - score: 1\n",
			[]string{"p.yaml:2:12: rule without a name: every rule needs a unique name:"}},
		{"bad rule name",
			"rules:\n  - name: 'a b'\n",
			[]string{`p.yaml:2:11: rule name "a b": use letters, digits, '.', '_' and '-'`}},
		{"greylist at connect",
			"rules:\n  - name: a\n    stage: connect\n    action: greylist\n",
			[]string{"p.yaml:4:13: rule a: action: greylist needs the recipients: use stage rcpt or data, not connect"}},
		{"greylist block without greylist action",
			"rules:\n  - name: a\n    greylist: {delay: 5m}\n",
			[]string{"p.yaml:3:23: rule a: greylist: only for action: greylist"}},
		{"bad greylist delay",
			"rules:\n  - name: a\n    stage: rcpt\n    action: greylist\n    greylist: {delay: soon}\n",
			[]string{`p.yaml:5:23: rule a: greylist: delay: "soon" is not a duration such as 5m`}},
		{"bad header name",
			"rules:\n  - name: a\n    headers: {remove: ['X A']}\n",
			[]string{`p.yaml:3:24: rule a: headers: remove: "X A" is not a header field name`}},
		{"headers before data",
			"rules:\n  - name: a\n    stage: mail\n    headers: {add: {X-A: b}}\n",
			[]string{"p.yaml:2:11: rule a: headers: can only be edited at stage data, not mail"}},
		{"bad recipient",
			"rules:\n  - name: a\n    recipients: {add: [nobody]}\n",
			[]string{`p.yaml:3:24: rule a: recipients: add: "nobody" is not an address`}},
		{"yaml syntax error",
			"rules:\n - name: a\n  when: x\n",
			[]string{"p.yaml:3:3: did not find expected '-' indicator"}},
		{"second document",
			"rules: []\n---\nrules: []\n",
			[]string{"p.yaml:2:1: a policy file holds one YAML document; found a second one"}},
		{"two problems in one file",
			"rules:\n  - name: a\n    when: Subjet == \"\"\n  - name: b\n    action: reject\n    reply: 450 4.1.1 x\n",
			[]string{
				"p.yaml:3:11: rule a: when: unknown name Subjet (did you mean Subject?)",
				"p.yaml:6:12: rule b: reply: reject needs a 5xx reply, not 450",
			}},
		{"test expectation",
			"rules: []\ntests:\n  - expect: {verdict: rejected}\n",
			[]string{`p.yaml:3:23: tests: expect: verdict: "rejected" is not one of accept, reject, tempfail, discard, quarantine (did you mean reject?)`}},
		{"test without expect",
			"rules: []\ntests:\n  - name: t\n",
			[]string{"p.yaml:3:11: tests: a test needs expect: (verdict, rules, stripped, headers, score, tags)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadSrc(t, tc.src, lists, nil)
			if err == nil {
				t.Fatalf("loaded without error, want %q", tc.want)
			}
			got := problems(err)
			tcompare(t, "problems", got, tc.want)
			// Every problem line leads the error text, snippets follow.
			if !strings.HasPrefix(err.Error(), tc.want[0]) {
				t.Errorf("Error() = %q, want it to start with %q", err.Error(), tc.want[0])
			}
		})
	}
}

func TestLoadSnippet(t *testing.T) {
	_, err := loadSrc(t, "rules:\n  - name: a\n    when: 'Subjct == \"x\"'\n", nil, nil)
	want := "p.yaml:3:12: rule a: when: unknown name Subjct (did you mean Subject?)\n" +
		"    |     when: 'Subjct == \"x\"'\n" +
		"    |            ^"
	tcompare(t, "Error()", err.Error(), want)
}

func TestLoadOrderAndNames(t *testing.T) {
	fsys := fstest.MapFS{
		"a.yaml": {Data: []byte("rules:\n  - name: one\n    score: 1\n  - name: two\n    stage: connect\n    action: accept\n")},
		"b.yaml": {Data: []byte("rules:\n  - name: three\n    score: 2\n")},
		"c.yaml": {Data: []byte("rules:\n  - name: one\n    score: 2\n")},
	}
	s, err := LoadFS(fsys, Config{Policies: []string{"a.yaml", "b.yaml"}}, nil)
	tcheck(t, err, "load")
	tcompare(t, "names", s.RuleNames(), []string{"one", "two", "three"})
	v := s.NewEvaluator().Eval(StageData, testFacts())
	tcompare(t, "rules", v.Rules, []string{"one", "three"})
	tcompare(t, "score", v.Score, 3.0)

	_, err = LoadFS(fsys, Config{Policies: []string{"a.yaml", "c.yaml"}}, nil)
	tcompare(t, "duplicate across files", problems(err), []string{"c.yaml:2:11: rule name one is already used at a.yaml:2"})

	_, err = LoadFS(fsys, Config{Policies: []string{"missing.yaml"}}, nil)
	tcompare(t, "missing file", problems(err), []string{"missing.yaml:1:1: reading policy: file does not exist"})

	_, err = LoadFS(fsys, Config{Policies: []string{"a.yaml"}, RuleError: "ignore"}, nil)
	tcompare(t, "bad rule_error", problems(err), []string{`config:1:1: rule_error: "ignore" is not one of tempfail, continue`})
}

func TestLoadFromDisk(t *testing.T) {
	dir := t.TempDir()
	tcheck(t, os.WriteFile(filepath.Join(dir, "p.yaml"), []byte("rules:\n  - name: x\n    when: 'Nope'\n"), 0o644), "write")
	_, err := Load(Config{Policies: []string{"p.yaml"}, BaseDir: dir}, nil)
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("want *LoadError, got %v", err)
	}
	tcompare(t, "file", le.Problems[0].File, filepath.Join(dir, "p.yaml"))
	tcompare(t, "pos", [2]int{le.Problems[0].Line, le.Problems[0].Col}, [2]int{3, 12})
}

func TestLists(t *testing.T) {
	lists := map[string]string{
		"domains": "# internal\nExample.COM.\n\n  example.org   # trailing comment\n",
		"nets":    "10.0.0.0/8\n192.0.2.7\n2001:db8::/32\n::ffff:198.51.100.0/120\n",
		"hashes":  strings.Repeat("A", 64) + "\n",
		"people":  "Boss@Example.com\n",
	}
	src := `rules:
  - name: dom
    when: 'Envelope.FromDomain in Lists.domains && "example.org" in Lists.domains && !("example.net" in Lists.domains)'
  - name: net
    when: 'cidr(Client.IP, Lists.nets) && cidr("10.1.2.3", Lists.nets) && cidr("2001:db8::1", Lists.nets) && cidr("198.51.100.9", Lists.nets) && !cidr("192.0.2.8", Lists.nets)'
  - name: exact-ip
    when: 'Client.IP in Lists.nets'
  - name: hash
    when: 'any(Attachments, .SHA256 in Lists.hashes)'
  - name: people
    when: 'lower("boss@example.com") in Lists.people'
  - name: const-net
    when: 'cidr(Client.IP, "192.0.2.0/24") && !cidr(Client.IP, "192.0.3.0/24") && cidr("::ffff:192.0.2.7", "192.0.2.7") && !cidr("junk", "10.0.0.0/8")'
`
	s := mustLoad(t, src, lists, nil)
	f := testFacts()
	f.Msg.Parts[4].SHA256 = strings.Repeat("a", 64)
	v := s.NewEvaluator().Eval(StageData, f)
	tcompare(t, "rules", v.Rules, []string{"dom", "net", "exact-ip", "hash", "people", "const-net"})
	tcompare(t, "errors", v.Errors, []error(nil))

	_, err := loadSrc(t, "rules: []\n", map[string]string{"bad": "ok.example\n\n 10.0.0.0/33\nfoo bar\n"}, nil)
	got := problems(err)
	if len(got) != 2 || !strings.HasSuffix(got[0], "bad.txt:3:2: list bad: bad network \"10.0.0.0/33\": netip.ParsePrefix(\"10.0.0.0/33\"): prefix length out of range") ||
		!strings.HasSuffix(got[1], `bad.txt:4:1: list bad: one entry a line (found "foo bar")`) {
		t.Errorf("list problems: %q", got)
	}
}

func TestLoadEmptyPolicies(t *testing.T) {
	for _, src := range []string{"", "# only a comment\n", "rules: []\n", "rules:\n"} {
		s, err := loadSrc(t, src, nil, nil)
		tcheck(t, err, "loading "+src)
		tcompare(t, "names of "+src, len(s.RuleNames()), 0)
		tcompare(t, "verdict of "+src, s.NewEvaluator().Eval(StageData, testFacts()), Verdict{Action: ActionContinue})
	}
}
