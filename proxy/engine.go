package proxy

import (
	"io"

	"mailgate/mimeparse"
	"mailgate/rules"
)

// Engine is the compiled policy set the proxy applies; RulesEngine adapts a
// *rules.Set. Small on purpose, so tests can provide their own.
type Engine interface {
	NewEvaluator() Evaluator
	RuleNames() []string
	// Rewrite streams raw to w with the verdict's edits applied.
	Rewrite(w io.Writer, raw io.Reader, msg *mimeparse.Message, ed *rules.Edits) (int64, error)
}

// Evaluator evaluates one stage; one per session, not goroutine-safe.
type Evaluator interface {
	Eval(stage rules.Stage, f *rules.Facts) rules.Verdict
}
