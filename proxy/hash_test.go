package proxy

import (
	"os"
	"path/filepath"
	"testing"

	"mailgate/mimeparse"
	"mailgate/rules"
)

// The proxy parses with what the engine trims (rules.Set.TrimLimits):
// a rules set that reads no hash and no text gets neither; an engine that
// cannot tell gets the full parse.
func TestEngineTrimsLimits(t *testing.T) {
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
	full := mimeparse.DefaultLimits()
	for _, tc := range []struct {
		name           string
		eng            Engine
		noHash, noText bool
	}{
		{"reads SHA256", load(`any(Attachments, .SHA256 == "x")`), false, true},
		{"shows whole parts", load(`any(Attachments, toJSON(#) contains "x")`), false, true},
		{"reads Text", load(`Text contains "x"`), true, false},
		{"reads neither", load(`any(Attachments, .Executable)`), true, true},
		{"an engine that cannot tell", &fakeEngine{}, false, false},
	} {
		lim := full
		if tr, ok := tc.eng.(limitTrimmer); ok {
			lim = tr.TrimLimits(lim)
		}
		if lim.NoHash != tc.noHash || (lim.TextBytes == 0) != tc.noText {
			t.Errorf("%s: NoHash %v, TextBytes %d; want NoHash %v, no text %v", tc.name, lim.NoHash, lim.TextBytes, tc.noHash, tc.noText)
		}
	}
}
