package rules

import (
	"io/fs"
	"net/netip"
	"time"

	"github.com/expr-lang/expr/vm"

	"mailgate/mimeparse"
)

// Set is a loaded, compiled policy set: immutable and safe for concurrent
// use. Evaluate it through an Evaluator (one per goroutine).
type Set struct {
	cfg      Config
	st       Store
	fsys     fs.FS // policies were read from here (nil: the OS)
	files    []*policyFile
	byStage  [StageData + 1][]*rule
	names    []string
	lists    map[string]map[string]struct{}
	prefixes map[uintptr][]netip.Prefix
	uses     map[string]bool // top-level env names used by any expression
	usesProp map[string]bool // member names read by any expression (.Archive, .Macros)
	// anyProp: an expression reads a member by a computed name (p[k],
	// get(p, k)) or shows whole values (toJSON, string): every member
	// counts as read.
	anyProp           bool
	ruleErrorContinue bool
}

type policyFile struct {
	name  string // as read (path or fs path)
	rules []*rule
	tests []testYAML
}

// rule is one compiled rule.
type rule struct {
	name     string
	file     string
	line     int
	stage    Stage
	monitor  bool
	readsAcc bool // reads Score or Tags: needs the Env re-boxed after a change

	when  *vm.Program // nil: always
	strip *vm.Program // nil: none

	action   Action // ActionContinue when not terminal
	greylist time.Duration
	isGrey   bool
	reply    Reply // zero: the default for the action

	headers       []headerOp
	subjectPrefix *template
	rcptAdd       []string
	rcptRemove    []string
	score         float64
	tags          []string
}

type headerOp struct {
	op    string // add, set, remove
	name  string
	value *template // nil for remove
}

// template is a header value with {{ expr }} holes, compiled at load.
type template struct {
	lit   []string      // len(lit) == len(progs)+1
	progs []*vm.Program // one per hole
}

// RuleNames returns every rule's name, in evaluation order (file by file).
func (s *Set) RuleNames() []string {
	out := make([]string, len(s.names))
	copy(out, s.names)
	return out
}

// Uses reports whether any expression of the set reads the top-level
// environment name (e.g. "Text", "Attachments"), so callers can skip
// computing facts no rule looks at.
func (s *Set) Uses(name string) bool { return s.uses[name] }

// UsesProperty reports whether any expression reads a member named name
// (".Archive", ".Macros", ".SHA256" without the dot), on any type: an
// over-approximation, safe for turning off an inspector no rule looks at
// (docs/DEVELOPING.md §3.7), as long as Defects is not used either.
func (s *Set) UsesProperty(name string) bool { return s.anyProp || s.usesProp[name] }

// TrimLimits turns off what the parse computes for rules alone when no
// rule reads it: the parts' hashes (Limits.NoHash, without SHA256) and
// Message.Text (TextBytes 0, without Text). serve parses with them;
// check and the policy tests keep the full parse, whose output shows both.
func (s *Set) TrimLimits(l mimeparse.Limits) mimeparse.Limits {
	if !s.UsesProperty("SHA256") {
		l.NoHash = true
	}
	if !s.uses["Text"] && !s.uses["$env"] {
		l.TextBytes = 0
	}
	return l
}

// HasStage reports whether any rule runs at stage.
func (s *Set) HasStage(st Stage) bool { return int(st) < len(s.byStage) && len(s.byStage[st]) > 0 }
