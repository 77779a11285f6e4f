package proxy

import (
	"io"
	"io/fs"

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
// config names, or with none named the embedded policy from defaults. One
// rules.State (rate and greylist caches) is shared across reloads.
func PolicyLoader(defaults fs.FS) func(*Config) (Engine, error) {
	st := rules.NewState(100000, nil)
	return func(c *Config) (Engine, error) {
		rc := rules.Config{Policies: c.Policies, Lists: c.Lists, RuleError: c.RuleError, BaseDir: c.Dir, Bounds: Bounds(c)}
		if len(c.Policies) == 0 {
			if c.EmbeddedPolicy == "" || defaults == nil {
				return nil, nil
			}
			rc.Policies = []string{c.EmbeddedPolicy}
			rc.BaseDir = ""
			set, err := rules.LoadFS(defaults, rc, st)
			if err != nil {
				return nil, err
			}
			return rulesEngine{set}, nil
		}
		set, err := rules.Load(rc, st)
		if err != nil {
			return nil, err
		}
		return rulesEngine{set}, nil
	}
}

// Bounds are the fact sizes a config's limits allow, for the policies'
// cost estimate (docs/policy.md "Cost of a rule").
func Bounds(c *Config) rules.Bounds {
	l := c.Limits
	return rules.Bounds{
		MimeParts: int64(l.MimeParts), ArchiveEntries: int64(l.ArchiveEntries), HeaderBytes: l.HeaderBytes,
		MessageSize: l.MessageSize, Recipients: int64(l.Recipients),
	}
}
