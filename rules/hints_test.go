package rules

import (
	"strings"
	"testing"
	"testing/fstest"
)

func loadErr(t *testing.T, src string) string {
	t.Helper()
	_, err := LoadFS(fstest.MapFS{"p.yaml": {Data: []byte(src)}}, Config{Policies: []string{"p.yaml"}}, nil)
	if err == nil {
		t.Fatalf("loaded:\n%s", src)
	}
	return err.Error()
}

// TestLoadHints: load errors a newcomer meets say where and what to do,
// without a stack trace.
func TestLoadHints(t *testing.T) {
	for _, c := range []struct{ name, src, want, not string }{
		{"regexp built at load", "rules:\n  - name: r\n    when: 'Subject matches (\"(un\" + \"closed\")'\n    action: reject\n",
			"p.yaml:3:12: rule r: when: error parsing regexp: missing closing ): `(unclosed`", "goroutine"},
		{"unquoted when with a colon", "rules:\n  - name: r\n    when: Subject: x\n    action: reject\n",
			"p.yaml:3:5: mapping values are not allowed in this context (quote the expression: when: 'Subject: x'", ""},
		{"unquoted when starting with [", "rules:\n  - name: r\n    when: [\"a\"] == Tags\n",
			"(quote the expression: when: '[\"a\"] == Tags'", ""},
		{"in on a string", "rules:\n  - name: r\n    when: '\"invoice\" in Subject'\n",
			`write Subject contains "text"`, ""},
		{"template of parts", "rules:\n  - name: r\n    when: 'true'\n    headers:\n      add: {X-A: '{{ Attachments }}'}\n",
			"p.yaml:5:21: rule r: headers: add: X-A: {{ Attachments }} is a []Part: a template gives a string, a number, true/false or a list of strings", ""},
		{"template of a part", "rules:\n  - name: r\n    when: 'true'\n    subject_prefix: '{{ Parts[0] }} '\n",
			"{{ Parts[0] }} is a Part", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := loadErr(t, c.src)
			if !strings.Contains(got, c.want) || c.not != "" && strings.Contains(got, c.not) {
				t.Errorf("error:\n%s\nwant %q", got, c.want)
			}
		})
	}
	// Templates of the types that read well load.
	for _, tpl := range []string{"{{ Score }}", "{{ len(Attachments) }}", "{{ Tags }}", "{{ Subject }}", "{{ Client.TLS }}",
		"{{ join(map(Attachments, .Filename), \", \") }}", "{{ Header(\"X\") }}"} {
		src := "rules:\n  - name: r\n    when: 'true'\n    headers:\n      add: {X-A: '" + tpl + "'}\n"
		if _, err := LoadFS(fstest.MapFS{"p.yaml": {Data: []byte(src)}}, Config{Policies: []string{"p.yaml"}}, nil); err != nil {
			t.Errorf("%s: %v", tpl, err)
		}
	}
}
