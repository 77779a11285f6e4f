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

// RunsNoPolicy reports whether c runs no policy at all: `policies: []`
// in the file (absent `policies:` means the embedded default pack).
func (c *Config) RunsNoPolicy() bool { return len(c.Policies) == 0 && c.EmbeddedPolicy == "" }

// RulesConfig is the policy set c names, as rules.Load takes it, and the
// file system its policies are read from: defaults for the embedded pack,
// nil for files on disk. Paths in c are already resolved (ParseConfig), so
// BaseDir stays empty: joining the config's directory a second time would
// read sub/sub/local.yaml for `-c sub/mailgate.yaml`.
func (c *Config) RulesConfig(defaults fs.FS) (rules.Config, fs.FS) {
	rc := rules.Config{Policies: c.Policies, Lists: c.Lists, RuleError: c.RuleError}
	if len(c.Policies) == 0 && c.EmbeddedPolicy != "" && defaults != nil {
		rc.Policies = []string{c.EmbeddedPolicy}
		return rc, defaults
	}
	return rc, nil
}

// LoadPolicies compiles the policy set c names; every command that takes
// a config file (serve, check -c, lint -c, test -c) loads it through here,
// so all of them run the same rules. With `policies: []` the set is empty.
func LoadPolicies(c *Config, defaults fs.FS, st *rules.State) (*rules.Set, error) {
	rc, fsys := c.RulesConfig(defaults)
	if fsys != nil {
		return rules.LoadFS(fsys, rc, st)
	}
	return rules.Load(rc, st)
}

// PolicyLoader returns an Options.LoadEngine that compiles the policies a
// config names (LoadPolicies); with `policies: []` it returns no engine.
// One rules.State (rate and greylist caches) is shared across reloads.
func PolicyLoader(defaults fs.FS) func(*Config) (Engine, error) {
	st := rules.NewState(100000, nil)
	return func(c *Config) (Engine, error) {
		if c.RunsNoPolicy() || (len(c.Policies) == 0 && defaults == nil) {
			return nil, nil
		}
		set, err := LoadPolicies(c, defaults, st)
		if err != nil {
			return nil, err
		}
		return rulesEngine{set}, nil
	}
}
