package main

import (
	"errors"
	"fmt"
	"io"
	"mailgate/config"
	"strings"

	"mailgate"
	"mailgate/rules"
)

func runLint(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("lint", "[-v] [-c FILE | -p POLICY ... [-l NAME=FILE ...]]", stderr)
	var cfgFile string
	var pols stringList
	var verbose bool
	lists := listFlag{}
	fs.StringVar(&cfgFile, "c", "", "config `file`: lint it as serve reads it, and its policies: with its lists:")
	fs.BoolVar(&verbose, "v", false, "list the rules' names, one a line")
	fs.Var(&pols, "p", "policy `file` (repeatable; evaluated in the order given)")
	fs.Var(lists, "l", "list for the policies given with -p, as `NAME=FILE` (repeatable)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 || (cfgFile != "" && (len(pols) > 0 || len(lists) > 0)) {
		fs.Usage()
		return 2
	}
	set, desc, _, err := loadRuleSet(cfgFile, pols, lists)
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "mailgate lint: %v\n", err)
			return 2
		}
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "ok: %s: %s\n", desc, plural(len(set.RuleNames()), "rule"))
	if verbose {
		for _, n := range set.RuleNames() {
			fmt.Fprintf(stdout, "rule %s\n", n)
		}
	}
	return 0
}

// listFlag is a repeatable NAME=FILE flag naming a list for -p policies.
type listFlag map[string]string

func (l listFlag) String() string { return fmt.Sprint(map[string]string(l)) }

func (l listFlag) Set(v string) error {
	name, file, ok := strings.Cut(v, "=")
	if !ok || name == "" || file == "" {
		return fmt.Errorf("want NAME=FILE, got %q", v)
	}
	l[name] = file
	return nil
}

// usageError is a command-line problem (exit 2), not a policy problem.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// loadRuleSet loads the policies named by -c or -p; with neither, the
// embedded default pack. -c reads the file as serve does (proxy.LoadConfig,
// so lint -c refuses whatever serve refuses) and loads its policy set
// through proxy.LoadPolicies, the loader serve uses: `policies:` absent is
// the embedded default pack, `policies: []` none. desc names what was
// loaded, for messages.
func loadRuleSet(cfgFile string, pols []string, lists map[string]string) (*rules.Set, string, *config.Config, error) {
	switch {
	case cfgFile != "":
		cfg, err := config.Load(cfgFile)
		if err == nil {
			err = cfg.CheckFiles()
		}
		if err != nil {
			return nil, "", nil, err
		}
		set, err := config.LoadPolicies(cfg, mailgate.Tree, nil)
		if err == nil {
			// The file's own tests: of the combined behaviour load too.
			err = set.CheckConfigTests(cfg.File, cfg.Data)
		}
		return set, cfgFile + configPolicyDesc(cfg), cfg, err
	case len(pols) > 0:
		set, err := rules.Load(rules.Config{Policies: pols, Lists: lists, Facts: rules.FactSources{All: true}}, nil)
		return set, plural(len(pols), "policy file"), nil, err
	}
	set, err := loadDefaultPack(rules.Config{Lists: lists, Facts: rules.FactSources{All: true}})
	return set, "embedded default pack", nil, err
}

// configPolicyDesc says, for messages, which policy set a config runs when
// that is not a list of files.
func configPolicyDesc(cfg *config.Config) string {
	switch {
	case cfg.RunsNoPolicy():
		return " (policies: [], no policy)"
	case len(cfg.Policies) == 0:
		return " (embedded default pack)"
	}
	return ""
}

// loadDefaultPack loads the embedded policies/default.yaml, with the lists
// and rule_error of cfg.
func loadDefaultPack(cfg rules.Config) (*rules.Set, error) {
	cfg.Policies = []string{mailgate.DefaultPack}
	return rules.LoadFS(mailgate.Tree, cfg, nil)
}
