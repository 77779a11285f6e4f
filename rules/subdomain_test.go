package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"mailgate/mimeparse"
)

// TestSubdomain: subdomain() matches a domain and the domains below it,
// against one domain or a list; `in` stays exact.
func TestSubdomain(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "internal.txt")
	os.WriteFile(list, []byte("corp.example.org\n"), 0o600)
	src := `rules:
  - name: exact
    stage: mail
    when: 'Envelope.FromDomain in Lists.internal'
  - name: below-list
    stage: mail
    when: 'subdomain(Envelope.FromDomain, Lists.internal)'
  - name: below-one
    stage: mail
    when: 'subdomain(Envelope.FromDomain, "corp.example.org")'
`
	set, err := LoadFS(fstest.MapFS{"p.yaml": {Data: []byte(src)}}, Config{Policies: []string{"p.yaml"}, Lists: map[string]string{"internal": list}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for from, want := range map[string]string{
		"a@corp.example.org":      "exact,below-list,below-one",
		"a@sub.corp.example.org":  "below-list,below-one",
		"a@SUB.Corp.Example.ORG":  "below-list,below-one",
		"a@evilcorp.example.org":  "",
		"a@corp.example.org.evil": "",
		"a@example.org":           "",
	} {
		sim := Simulate(set.NewEvaluator(), SimInput{Client: Client{IP: DefaultClientIP, HELO: DefaultHelo}, From: from,
			Rcpts: []string{DefaultRcpt}, Msg: &mimeparse.Message{}})
		if got := strings.Join(sim.Tx.Rules(), ","); got != want {
			t.Errorf("%s: rules %q, want %q", from, got, want)
		}
	}
}
