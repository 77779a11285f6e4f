package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"mailgate/policies"
	"mailgate/rules"
)

func runLint(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("lint", "[-c FILE | -p POLICY ... [-l NAME=FILE ...]]", stderr)
	var cfgFile string
	var pols stringList
	lists := listFlag{}
	fs.StringVar(&cfgFile, "c", "", "config `file`: lint its policies:, lists: and rule_error:")
	fs.Var(&pols, "p", "policy `file` (repeatable; evaluated in the order given)")
	fs.Var(lists, "l", "list for the policies given with -p, as `NAME=FILE` (repeatable)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 || (cfgFile != "" && (len(pols) > 0 || len(lists) > 0)) {
		fs.Usage()
		return 2
	}
	set, desc, err := loadRuleSet(cfgFile, pols, lists)
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "mailgate lint: %v\n", err)
			return 2
		}
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "ok: %s: %d rules\n", desc, len(set.RuleNames()))
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

// loadRuleSet loads the policies named by -c (the rules part of the config
// file, read by rules.ConfigFromYAML so cmd needs no full config parse
// here) or -p; with neither, the embedded default pack. desc names what was
// loaded, for messages.
func loadRuleSet(cfgFile string, pols []string, lists map[string]string) (*rules.Set, string, error) {
	switch {
	case cfgFile != "":
		cfg, err := rules.ConfigFromYAML(cfgFile)
		if err != nil {
			return nil, "", err
		}
		if len(cfg.Policies) == 0 {
			set, err := loadDefaultPack(cfg)
			return set, cfgFile + " (embedded default pack)", err
		}
		set, err := rules.Load(cfg, nil)
		return set, cfgFile, err
	case len(pols) > 0:
		set, err := rules.Load(rules.Config{Policies: pols, Lists: lists}, nil)
		return set, fmt.Sprint(len(pols), " policy file(s)"), err
	}
	set, err := loadDefaultPack(rules.Config{Lists: lists})
	return set, "embedded default pack", err
}

// loadDefaultPack loads the embedded policies/default.yaml, with the lists
// and rule_error of cfg.
func loadDefaultPack(cfg rules.Config) (*rules.Set, error) {
	cfg.Policies = []string{policies.Default}
	return rules.LoadFS(policies.FS, cfg, nil)
}
