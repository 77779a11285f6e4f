package proxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mailgate/config"
)

// TestPolicyLoaderRefusesLookupFacts: until the session runs the lookups,
// serve refuses a policy that reads their facts instead of running it
// with empty values (which would pass what it means to refuse).
func TestPolicyLoaderRefusesLookupFacts(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.yaml"), []byte("rules:\n  - name: d\n    when: 'Auth.DMARC == \"fail\"'\n    action: reject\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "q.yaml"), []byte("rules:\n  - name: s\n    when: 'Subject == \"x\"'\n    action: reject\n"), 0o644)
	load := PolicyLoader(nil)
	for _, tc := range []struct {
		pol  string
		want string
	}{
		{"p.yaml", "serve does not compute them yet"},
		{"q.yaml", ""},
	} {
		c, err := config.Parse(filepath.Join(dir, "m.yaml"), []byte("upstream: smtp://127.0.0.1:25\npolicies: ["+tc.pol+"]\nauth_checks: {dmarc: true}\n"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = load(c)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v", tc.pol, err)
		}
	}
}
