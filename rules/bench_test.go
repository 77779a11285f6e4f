package rules

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"mailgate/mimeparse"
)

// benchPolicy is 50 data-stage rules, a realistic mix of what the shipped
// packs do: attachment predicates, archive walks, header and list lookups,
// regular expressions over the subject and text, scores and tags, header
// edits with templates, a strip. None is terminal, so every rule runs.
func benchPolicy() string {
	var b strings.Builder
	b.WriteString("rules:\n")
	add := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	exts := []string{"exe", "scr", "js", "vbs", "hta", "bat", "cmd", "com", "pif", "jar"}
	for i := 0; i < 10; i++ {
		add("  - name: ext-%d\n    when: 'any(Attachments, .Ext == \"%s\" || .Ext in [\"%s.x\", \"lnk\"])'\n    score: 1\n", i, exts[i], exts[i])
	}
	for i := 0; i < 5; i++ {
		add("  - name: archive-%d\n    when: 'any(Attachments, any(.Archive, .Executable || .Encrypted || .Ext == \"%s\"))'\n    tags: [archive]\n", i, exts[i])
	}
	add("  - name: exec-content\n    when: 'any(Attachments, .Executable)'\n    score: 5\n    tags: [exe]\n")
	add("  - name: double-ext\n    when: 'any(Attachments, .Filename matches \"(?i)\\\\.(pdf|doc|jpg)\\\\.[a-z0-9]+$\")'\n    score: 3\n")
	add("  - name: names-differ\n    when: 'any(Attachments, len(.Names) > 1)'\n    score: 1\n")
	add("  - name: macros\n    strip: 'filter(Attachments, .Macros)'\n    tags: [macro]\n")
	add("  - name: encrypted\n    when: 'any(Attachments, .Encrypted)'\n    score: 1\n")
	add("  - name: defects-ambiguous\n    when: 'any(Defects, # startsWith \"duplicate-\" || # == \"missing-final-boundary\")'\n    score: 2\n")
	add("  - name: limits\n    when: 'any(Defects, # startsWith \"limit-\")'\n    score: 10\n")
	add("  - name: part-defects\n    when: 'any(Parts, len(.Defects) > 0)'\n    score: 1\n")
	add("  - name: external\n    when: 'not (Envelope.FromDomain in Lists.internal_domains)'\n    subject_prefix: '[EXT] '\n    headers: {add: {X-External: 'yes'}, remove: [X-Internal-Route]}\n    score: 1\n    tags: [external]\n")
	add("  - name: from-mismatch\n    when: 'FromDomain != Envelope.FromDomain'\n    score: 1\n")
	add("  - name: no-message-id\n    when: 'MessageID == \"\"'\n    score: 1\n")
	add("  - name: no-date\n    when: '!HasHeader(\"Date\")'\n    score: 0.5\n")
	add("  - name: many-received\n    when: 'len(HeaderAll(\"Received\")) > 20'\n    score: 2\n")
	add("  - name: mailer\n    when: 'Header(\"X-Mailer\") contains \"PHPMailer\"'\n    score: 2\n")
	add("  - name: subject-money\n    when: 'Subject matches \"(?i)(invoice|payment|overdue)\"'\n    score: 1\n    tags: [money]\n")
	add("  - name: subject-shout\n    when: 'Subject == upper(Subject) && len(Subject) > 10'\n    score: 1\n")
	add("  - name: text-urgent\n    when: 'lower(Text) contains \"urgent\"'\n    score: 1\n")
	add("  - name: text-link\n    when: 'Text matches \"https?://[0-9]+\\\\.[0-9]+\\\\.\"'\n    score: 2\n")
	add("  - name: big\n    when: 'Size > 10000000'\n    tags: [big]\n")
	add("  - name: many-rcpts\n    when: 'len(Envelope.Rcpts) > 50'\n    score: 2\n")
	add("  - name: rcpt-domains\n    when: 'any(Envelope.RcptDomains, # in Lists.internal_domains)'\n    tags: [inbound]\n")
	add("  - name: internal-net\n    when: 'cidr(Client.IP, Lists.internal_nets)'\n    score: -5\n")
	add("  - name: not-tls\n    when: '!Client.TLS'\n    score: 0.5\n")
	add("  - name: auth\n    when: 'Client.AuthUser != \"\"'\n    score: -1\n")
	add("  - name: helo-ip\n    when: 'Client.HELO == Client.IP'\n    score: 2\n")
	add("  - name: to-many\n    when: 'len(To) + len(Cc) > 20'\n    score: 1\n")
	add("  - name: html-only\n    when: 'all(filter(Parts, !.IsMultipart), .ContentType == \"text/html\")'\n    score: 1\n")
	add("  - name: classify\n    headers: {set: {X-Classification: '{{ Score > 5 ? \"suspect\" : \"normal\" }}'}}\n")
	add("  - name: score-header\n    headers: {add: {X-Mailgate-Score: '{{ Score }}'}}\n")
	add("  - name: high-score\n    when: 'Score > 8'\n    tags: [spam]\n")
	add("  - name: sha-block\n    when: 'any(Attachments, .SHA256 in Lists.bad_hashes)'\n    score: 20\n")
	add("  - name: detected-mismatch\n    when: 'any(Attachments, .DetectedType == \"application/x-msdownload\" && .Ext != \"exe\")'\n    score: 3\n")
	add("  - name: sender-list\n    when: 'lower(Envelope.From) in Lists.bad_senders'\n    score: 10\n")
	add("  - name: reply-to\n    when: 'HasHeader(\"Reply-To\") && domain(Header(\"Reply-To\")) != FromDomain'\n    score: 1\n")
	add("  - name: inline-name\n    when: 'any(Attachments, .Disposition == \"inline\" && .Filename != \"\")'\n    score: 0.1\n")
	return b.String()
}

func BenchmarkEval(b *testing.B) {
	src := benchPolicy()
	lists := map[string]string{
		"internal_domains": "example.org\nexample.net\n",
		"internal_nets":    "10.0.0.0/8\n192.168.0.0/16\n",
		"bad_hashes":       strings.Repeat("f", 64) + "\n",
		"bad_senders":      "spam@example.biz\n",
	}
	s, err := loadSrc(b, src, lists, nil)
	if err != nil {
		b.Fatal(err)
	}
	if n := len(s.RuleNames()); n != 50 {
		b.Fatalf("%d rules, want 50", n)
	}
	e := s.NewEvaluator()
	f := testFacts()
	v := e.Eval(StageData, f)
	if len(v.Errors) > 0 || len(v.Rules) < 5 {
		b.Fatalf("verdict: %+v", v)
	}
	benchEval(b, func() { e.Eval(StageData, f) })
}

// benchEval runs op b.N times, locked to one OS thread, and reports the
// thread's CPU time per op (cpu-ns/op) beside the wall time.
func benchEval(b *testing.B, op func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.ResetTimer()
	c0 := threadCPU()
	for i := 0; i < b.N; i++ {
		op()
	}
	if c := threadCPU() - c0; c > 0 {
		b.ReportMetric(float64(c.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// benignMessage is a typical clean message: a text/html alternative and a
// PDF attachment.
func benignMessage() *mimeparse.Message {
	m := testMessage()
	m.Parts = append(m.Parts[:4:4], &mimeparse.Part{Path: "2", Depth: 1, ContentType: "application/pdf", Disposition: "attachment",
		Filename: "minutes.pdf", Ext: "pdf", IsAttachment: true, Size: 80000, SHA256: strings.Repeat("d", 64), DetectedType: "application/pdf"})
	m.Defects = nil
	m.Fields = append(m.Fields, mimeparse.Field{Name: "Date", Value: "Fri, 2 Jan 2026 03:04:05 +0000"})
	return m
}

// BenchmarkEvalPacks evaluates every shipped pack (../policies, each as its
// own set, as one would deploy it) at every stage of one transaction with a
// typical clean message.
func BenchmarkEvalPacks(b *testing.B) {
	files, _ := filepath.Glob("../policies/*.yaml")
	if len(files) == 0 {
		b.Skip("no ../policies/*.yaml")
	}
	var sets []*Set
	rulesN := 0
	for _, file := range files {
		cfg := Config{Policies: []string{file}, Lists: map[string]string{"internal_domains": "../policies/lists/internal_domains.txt"}}
		s, err := Load(cfg, NewState(0, nil))
		if err != nil {
			b.Fatal(err)
		}
		sets = append(sets, s)
		rulesN += len(s.RuleNames())
	}
	f := testFacts()
	f.Msg = benignMessage()
	var evs []*Evaluator
	for _, s := range sets {
		evs = append(evs, s.NewEvaluator())
	}
	b.Logf("%d packs, %d rules", len(sets), rulesN)
	benchEval(b, func() {
		for _, e := range evs {
			for st := StageConnect; st <= StageData; st++ {
				f.Rcpt = ""
				if st == StageRcpt {
					f.Rcpt = f.Envelope.Rcpts[0]
				}
				e.Eval(st, f)
			}
		}
	})
}
