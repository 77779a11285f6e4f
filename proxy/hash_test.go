package proxy

import (
	"os"
	"path/filepath"
	"testing"

	"mailgate/rules"
)

// engineReads decides whether serve hashes the parts (mimeparse
// Limits.NoHash): only a rules set that reads SHA256 nowhere goes without.
func TestEngineReadsSHA256(t *testing.T) {
	load := func(when string) Engine {
		p := filepath.Join(t.TempDir(), "p.yaml")
		if err := os.WriteFile(p, []byte("rules:\n  - name: a\n    when: '"+when+"'\n    action: reject\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		set, err := rules.Load(rules.Config{Policies: []string{p}}, rules.NewState(16, nil))
		if err != nil {
			t.Fatal(err)
		}
		return rulesEngine{set}
	}
	for _, tc := range []struct {
		name string
		eng  Engine
		want bool
	}{
		{"reads SHA256", load(`any(Attachments, .SHA256 == "x")`), true},
		{"shows whole parts", load(`any(Attachments, toJSON(#) contains "x")`), true},
		{"reads no hash", load(`any(Attachments, .Executable)`), false},
		{"an engine that cannot tell", &fakeEngine{}, true},
		{"no engine", nil, false},
	} {
		if got := engineReads(tc.eng, "SHA256"); got != tc.want {
			t.Errorf("%s: engineReads = %v, want %v", tc.name, got, tc.want)
		}
	}
}
