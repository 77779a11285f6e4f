package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"mailgate"
	"mailgate/config"
	"mailgate/rules"
)

func runTest(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("test", "[-v] [-c FILE | -p POLICY ... [-l NAME=FILE ...]]", stderr)
	var cfgFile string
	var pols stringList
	var verbose bool
	lists := listFlag{}
	fs.StringVar(&cfgFile, "c", "", "config `file`: test its policies: with its lists:")
	fs.Var(&pols, "p", "policy `file` (repeatable); its tests: run against all the policies given")
	fs.Var(lists, "l", "list for the policies given with -p, as `NAME=FILE` (repeatable)")
	fs.BoolVar(&verbose, "v", false, "list the rules' names and print passing tests too")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 || (cfgFile != "" && (len(pols) > 0 || len(lists) > 0)) {
		fs.Usage()
		return 2
	}
	var set *rules.Set
	var desc string
	var cfg *config.Config
	var err error
	if len(pols) == 0 && cfgFile == "" {
		// The embedded default pack, with the fixtures its tests name
		// (embedded beside it, at their source-tree paths).
		desc = "embedded " + mailgate.DefaultPack
		set, err = rules.LoadFS(mailgate.Tree, rules.Config{Policies: []string{mailgate.DefaultPack}, Facts: rules.FactSources{All: true}}, rules.NewState(1024, nil))
	} else {
		set, desc, cfg, err = loadRuleSet(cfgFile, pols, lists)
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "mailgate test: %v\n", err)
			return 2
		}
		fmt.Fprintln(stderr, err)
		return 1
	}
	if verbose {
		fmt.Fprintf(stdout, "policies: %s: %s\n", desc, plural(len(set.RuleNames()), "rule"))
		for _, n := range set.RuleNames() {
			fmt.Fprintf(stdout, "rule %s\n", n)
		}
	}
	results := set.RunTests()
	if cfg != nil {
		// The configuration's own tests, against every pack it loads.
		more, err := set.RunConfigTests(cfg.File, cfg.Data)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		results = append(results, more...)
	}
	failed := 0
	for _, r := range results {
		if r.Pass {
			if verbose {
				fmt.Fprintf(stdout, "ok    %s:%d: %s\n", r.File, r.Line, r.Name)
			}
			continue
		}
		failed++
		fmt.Fprintf(stdout, "FAIL  %s:%d: %s\n", r.File, r.Line, r.Name)
		for _, p := range r.Problems {
			fmt.Fprintf(stdout, "      %s\n", strings.ReplaceAll(p, "\n", "\n      "))
		}
	}
	fmt.Fprintf(stdout, "%s, %d passed, %d failed\n", plural(len(results), "test"), len(results)-failed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}
