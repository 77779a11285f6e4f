package proxy

import (
	"io"
	"io/fs"
	"sync"

	"mailgate/config"
	"mailgate/mimeparse"
	"mailgate/redisstate"
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

// Uses reports whether a rule reads the top-level fact (rules.Set.Uses):
// the session scans with clamd only when the set reads Virus.
func (e rulesEngine) Uses(name string) bool { return e.set.Uses(name) }

// TrimLimits leaves out of the parse what no rule reads
// (rules.Set.TrimLimits).
func (e rulesEngine) TrimLimits(l mimeparse.Limits) mimeparse.Limits { return e.set.TrimLimits(l) }

// limitTrimmer is implemented by engines that know which parse results
// their rules read (rulesEngine); any other engine gets the full parse.
type limitTrimmer interface {
	TrimLimits(mimeparse.Limits) mimeparse.Limits
}

// factUser is implemented by engines that know which facts their rules
// read (rulesEngine); an engine that does not is taken to read none.
type factUser interface{ Uses(name string) bool }

// engineUses reports whether eng's rules read the fact name.
func engineUses(eng Engine, name string) bool {
	fu, ok := eng.(factUser)
	return ok && fu.Uses(name)
}

// PolicyLoader returns an Options.LoadEngine that compiles the policies a
// config names (LoadPolicies); with `policies: []` it returns no engine.
// rate() and greylisting keep their state across reloads: one rules.State
// (the in-process LRU) or, with `state: {redis: URL}`, one
// redisstate.Store per URL, shared by every mailgate naming that Redis.
func PolicyLoader(defaults fs.FS) func(*config.Config) (Engine, error) {
	st := rules.NewState(100000, nil)
	var mu sync.Mutex
	stores := map[string]*redisstate.Store{}
	return func(c *config.Config) (Engine, error) {
		if c.RunsNoPolicy() || (len(c.Policies) == 0 && defaults == nil) {
			return nil, nil
		}
		var store rules.Store = st
		if c.State != nil {
			mu.Lock()
			rs, ok := stores[c.State.Redis]
			if !ok {
				var err error
				if rs, err = redisstate.New(c.State.Redis); err != nil {
					mu.Unlock()
					return nil, err
				}
				stores[c.State.Redis] = rs
			}
			mu.Unlock()
			store = rs
		}
		set, err := config.LoadPolicies(c, defaults, store)
		if err != nil {
			return nil, err
		}
		return rulesEngine{set}, nil
	}
}
