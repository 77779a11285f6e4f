// Command mailgate is a transparent SMTP policy proxy: it relays the SMTP
// dialogue to a real MTA, parses every message's MIME tree in one pass,
// evaluates YAML policies and forwards, rewrites or rejects the message
// before the client hangs up.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

// command is one subcommand: its one-line summary and its entry point, which
// returns the process exit code (0 done, 1 failure, 2 bad usage).
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var summaries = map[string]string{
	"serve":      "run the SMTP proxy (no config file: embedded defaults, Maildir upstream)",
	"check":      "evaluate policies on .eml files, directories, mbox and Maildir",
	"lint":       "load, compile and type-check policies; exit 1 on error",
	"test":       "run the tests written inside policy files",
	"parse":      "print the MIME tree of a message as mailgate sees it",
	"quarantine": "list, show, release, delete and expire held messages",
	"version":    "print mailgate's version and the Go version it was built with",
}

var commands []command

func init() {
	commands = []command{
		{"serve", summaries["serve"], runServe},
		{"check", summaries["check"], runCheck},
		{"lint", summaries["lint"], runLint},
		{"test", summaries["test"], runTest},
		{"parse", summaries["parse"], runParse},
		{"quarantine", summaries["quarantine"], runQuarantine},
		{"version", summaries["version"], runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "mailgate: a transparent SMTP policy proxy\n\nUsage:\n  mailgate <command> [flags] [args]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s  %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'mailgate <command> -h' for a command's flags.\n")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	case "-version", "--version":
		return runVersion(nil, stdout, stderr)
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "mailgate: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// newFlags returns a FlagSet for a subcommand whose -h prints the summary,
// the synopsis and the flags. Parse errors are reported by parseFlags.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("mailgate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "mailgate %s: %s\n\n", name, summaries[name])
		fmt.Fprintf(out, "Usage:\n  mailgate %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; it returns the exit code to stop with (0 after -h,
// 2 on a bad flag) and false, or 0 and true to go on.
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// stringList is a repeatable string flag (-p POLICY -p POLICY ...).
type stringList []string

func (s *stringList) String() string     { return fmt.Sprint([]string(*s)) }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
