package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/retarget-dev/retarget/shared/handlers/usersapi"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed; the reason is on stderr
	exitUsage   = 2 // bad command line; a hint to --help is on stderr
)

// cli is one invocation's environment: where output goes and where settings come from. Tests
// build one with buffers and a map-backed getenv.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	// stderrTTY: stderr is a terminal, so send draws a progress bar there.
	stderrTTY bool
	// newSQS, when set, replaces the SQS client (tests: the repo has no SQS emulator).
	newSQS func() sqsAPI
	// reports, when set, makes the reports instead of report.Audiences over the state table
	// (tests: hand-built reports).
	reports usersapi.ReportFunc
	// target is the pipeline the settings come from when flags and environment are silent
	// (--stack, the dev stack's endpoints file: endpoints.go).
	target target
}

// command is one subcommand, e.g. "dlq replay".
type command struct {
	name    string // "send" or "group sub"
	args    string // positional arguments in the usage line
	summary string // one line, for the command list
	help    string // what it does, printed by --help
	example string // examples, printed by --help
	flags   func(fs *flag.FlagSet) any
	run     func(ctx context.Context, c *cli, opts any, args []string) error
}

// commands is the command table, in the order `retarget --help` lists them.
var commands []*command

func init() {
	commands = []*command{sendCommand, userShowCommand, dlqListCommand, dlqShowCommand, dlqReplayCommand,
		rulesCheckCommand, rulesApplyCommand, audiencesStatusCommand, audiencesCreateCommand, audiencesBackfillCommand, audiencesAuditCommand,
		insightsRunCommand, automationRunCommand, automationListCommand, automationApplyCommand, automationUndoCommand,
		reportCommand, channelsTestCommand, devTokenCommand, doctorCommand, archiveExportCommand,
		archiveReplayCommand}
}

// usageError is a bad command line. run prints it with a pointer to --help and exits 2.
type usageError struct {
	cmd string // "" for the top level
	msg string
}

func (e *usageError) Error() string { return e.msg }

func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// run dispatches args (without the program name) and returns the exit code.
func (c *cli) run(ctx context.Context, args []string) int {
	args, err := c.target.leadingTargetFlags(args)
	if err != nil {
		return c.fail(err)
	}
	if len(args) == 0 {
		c.topUsage(c.stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && args[0] == "help" {
			return c.run(ctx, append(args[1:], "--help"))
		}
		c.topUsage(c.stdout)
		return exitOK
	}
	cmd, rest, err := lookup(args)
	if err != nil {
		return c.fail(err)
	}
	if cmd == nil { // a group asked for help: "retarget dlq --help"
		c.groupUsage(c.stdout, args[0])
		return exitOK
	}
	if err := c.runCommand(ctx, cmd, rest); err != nil {
		var ue *usageError
		if !errors.As(err, &ue) {
			err = &commandError{cmd: cmd.name, err: err}
		}
		return c.fail(err)
	}
	return exitOK
}

// commandError is a command's failure, printed as "retarget <command>: <error>".
type commandError struct {
	cmd string
	err error
}

func (e *commandError) Error() string { return e.cmd + ": " + e.err.Error() }
func (e *commandError) Unwrap() error { return e.err }

// lookup finds the command args name and returns the arguments after its name. A group name
// followed by a help flag returns a nil command.
func lookup(args []string) (*command, []string, error) {
	group := args[0]
	var subs []string
	for _, cmd := range commands {
		if cmd.name == group {
			return cmd, args[1:], nil
		}
		if g, sub, ok := strings.Cut(cmd.name, " "); ok && g == group {
			subs = append(subs, sub)
		}
	}
	if len(subs) == 0 {
		return nil, nil, usagef("", "unknown command %q", group)
	}
	if len(args) < 2 {
		return nil, nil, usagef("", "%s needs a subcommand: %s", group, strings.Join(subs, ", "))
	}
	if isHelp(args[1]) {
		return nil, nil, nil
	}
	for _, cmd := range commands {
		if cmd.name == group+" "+args[1] {
			return cmd, args[2:], nil
		}
	}
	return nil, nil, usagef("", "unknown command \"%s %s\" (%s has: %s)", group, args[1], group, strings.Join(subs, ", "))
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// runCommand parses the command's flags and runs it.
func (c *cli) runCommand(ctx context.Context, cmd *command, args []string) error {
	fs := flag.NewFlagSet("retarget "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by fail, help by printUsage
	fs.Usage = func() {}
	var opts any
	if cmd.flags != nil {
		opts = cmd.flags(fs)
	}
	c.target.registerTargetFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		c.commandUsage(c.stdout, cmd, fs)
		return nil
	}
	if err != nil {
		return usagef(cmd.name, "%v", err)
	}
	if err := c.resolveTarget(ctx); err != nil {
		return err
	}
	return cmd.run(ctx, c, opts, pos)
}

// parseInterspersed parses flags wherever they are among the positional arguments
// ("user show APP ID --json"), which the flag package alone does not; "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// fail prints err and returns its exit code.
func (c *cli) fail(err error) int {
	if err == nil {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.cmd == "" {
			fmt.Fprintf(c.stderr, "retarget: %s\nRun 'retarget --help' for the commands.\n", ue.msg)
		} else {
			fmt.Fprintf(c.stderr, "retarget %s: %s\nRun 'retarget %s --help' for usage.\n", ue.cmd, ue.msg, ue.cmd)
		}
		return exitUsage
	}
	var ce *commandError
	if errors.As(err, &ce) {
		fmt.Fprintf(c.stderr, "retarget %s: %v\n", ce.cmd, ce.err)
	} else {
		fmt.Fprintf(c.stderr, "retarget: %v\n", err)
	}
	return exitFailure
}

func (c *cli) topUsage(w io.Writer) {
	fmt.Fprint(w, `retarget: operator CLI of the Retarget pipeline (ingest API, segments, dead letters, audiences)

Usage: retarget <command> [flags] [arguments]

Commands:
`)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, cmd := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", cmd.name, cmd.summary)
	}
	tw.Flush()
	fmt.Fprint(w, `
Run 'retarget <command> --help' for a command's flags and examples.

Where it talks to, for each setting the first of:
  1. the command's flags (--table, --stream, --url, ...);
  2. the environment: AWS_ENDPOINT_URL_<SERVICE>, the functions' variables (STATE_TABLE_NAME,
     EVENT_STREAM_NAME, ...), RETARGET_API_URL / RETARGET_API_KEY;
  3. --stack NAME: that deployed stack's outputs (CloudFormation DescribeStacks; your AWS
     credentials and region);
  4. the running dev stack (make dev): its .dev/endpoints.json, found from the working
     directory up to the module root, or in --dev-dir DIR. Loopback endpoints need no AWS
     credentials.
--stack and --dev-dir go before the command or among its flags.

Output is a table, or JSON with --json. Exit codes: 0 success, 1 failure, 2 bad command line.
`)
}

func (c *cli) groupUsage(w io.Writer, group string) {
	fmt.Fprintf(w, "Usage: retarget %s <subcommand> [flags] [arguments]\n\nSubcommands:\n", group)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, cmd := range commands {
		if g, sub, ok := strings.Cut(cmd.name, " "); ok && g == group {
			fmt.Fprintf(tw, "  %s\t%s\n", sub, cmd.summary)
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "\nRun 'retarget %s <subcommand> --help' for its flags and examples.\n", group)
}

// commandUsage prints a command's usage line, description, flags and examples.
func (c *cli) commandUsage(w io.Writer, cmd *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: retarget %s [flags]", cmd.name)
	if cmd.args != "" {
		fmt.Fprintf(w, " %s", cmd.args)
	}
	fmt.Fprintf(w, "\n\n%s\n", strings.TrimSpace(cmd.help))
	fmt.Fprint(w, "\nFlags:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		name := "--" + f.Name
		if kind != "" {
			name += " " + kind
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(tw, "  %s\t%s%s\n", name, usage, def)
	})
	tw.Flush()
	if cmd.example != "" {
		fmt.Fprintf(w, "\nExamples:\n%s\n", strings.TrimRight(cmd.example, "\n"))
	}
}

// stringList is a repeatable string flag (--id A --id B, or --id A,B).
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
