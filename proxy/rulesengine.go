package proxy

import (
	"io"
	"io/fs"
	"mailgate/config"

	"mailgate/mimeparse"
	"mailgate/rules"
)

// rulesEngine adapts a compiled *rules.Set to Engine.
type rulesEngine struct{ set *rules.Set }

var _ Engine = rulesEngine{}

func (e rulesEngine) NewEvaluator() Evaluator { return e.set.NewEvaluator() }
func (e rulesEngine) RuleNames() []string     { return e.set.RuleNames() }
func (e rulesEngine) Rewrite(w io.Writer, raw io.Reader, msg *mimeparse.Message, ed *rules.Edits) (int64, error) {
	return rules.Rewrite(w, raw, msg, ed)
}

// PolicyLoader returns an Options.LoadEngine that compiles the policies a
// config names (LoadPolicies); with `policies: []` it returns no engine.
// One rules.State (rate and greylist caches) is shared across reloads.
func PolicyLoader(defaults fs.FS) func(*config.Config) (Engine, error) {
	st := rules.NewState(100000, nil)
	return func(c *config.Config) (Engine, error) {
		if c.RunsNoPolicy() || (len(c.Policies) == 0 && defaults == nil) {
			return nil, nil
		}
		set, err := config.LoadPolicies(c, defaults, st)
		if err != nil {
			return nil, err
		}
		return rulesEngine{set}, nil
	}
}
