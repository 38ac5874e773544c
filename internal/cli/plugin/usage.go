package plugin

import (
	"fmt"
	"io"
	"strings"
	"unicode"

	"github.com/docker/cli/cli-plugins/metadata"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// The help and usage text of every command, in the docker CLI's layout
// (what "docker COMMAND --help" prints, so the plugin's help reads like
// the rest of docker's): the usage line, the description, aliases,
// examples, the options, management commands (those with subcommands),
// commands, and the global options on the root.

// rootHelp is the text that ends the root's help.
const rootHelp = "For more help on how to use Docker, head to https://docs.docker.com/go/guides/"

// setUsage makes root and every command under it print its help and
// usage in the docker CLI's layout.
func setUsage(root *cobra.Command) {
	root.SetUsageFunc(func(c *cobra.Command) error {
		_, err := io.WriteString(c.OutOrStderr(), usage(c))
		return err
	})
	root.SetHelpFunc(func(c *cobra.Command, _ []string) {
		if c.Runnable() || c.HasSubCommands() {
			_, _ = io.WriteString(c.OutOrStdout(), c.UsageString())
		}
	})
}

// usage renders c's help text.
func usage(c *cobra.Command) string {
	var b strings.Builder
	b.WriteString("Usage:")
	if c.HasSubCommands() {
		b.WriteString("  " + c.CommandPath())
		if c.HasAvailableFlags() {
			b.WriteString(" [OPTIONS]")
		}
		b.WriteString(" COMMAND")
	} else {
		b.WriteString("  " + c.UseLine())
	}
	b.WriteString("\n\n")
	if c.Long != "" {
		b.WriteString(strings.TrimSpace(c.Long))
	} else {
		b.WriteString(strings.TrimSpace(c.Short))
	}
	if len(c.Aliases) > 0 || c.Annotations["aliases"] != "" {
		b.WriteString("\n\nAliases:\n  " + aliases(c))
	}
	if c.HasExample() {
		b.WriteString("\n\nExamples:\n" + c.Example)
	}
	if c.HasParent() && c.HasAvailableFlags() {
		b.WriteString("\n\nOptions:\n" + strings.TrimRightFunc(flagUsages(c), unicode.IsSpace))
	}
	var management, commands []*cobra.Command
	for _, sub := range c.Commands() {
		switch {
		case !sub.IsAvailableCommand():
		case isPlugin(sub) || sub.HasSubCommands():
			management = append(management, sub)
		default:
			commands = append(commands, sub)
		}
	}
	if len(management) > 0 {
		b.WriteString("\n\nManagement Commands:")
		for _, sub := range management {
			mark := " "
			if isPlugin(sub) {
				mark = "*"
			}
			fmt.Fprintf(&b, "\n  %-*s%s", sub.NamePadding()+1, sub.Name()+mark, sub.Short)
		}
	}
	if len(commands) > 0 {
		b.WriteString("\n\nCommands:")
		for _, sub := range commands {
			fmt.Fprintf(&b, "\n  %-*s %s", sub.NamePadding(), sub.Name(), sub.Short)
		}
	}
	if !c.HasParent() && c.HasAvailableFlags() {
		b.WriteString("\n\nGlobal Options:\n" + strings.TrimRightFunc(flagUsages(c), unicode.IsSpace))
	}
	if c.HasSubCommands() {
		b.WriteString("\n\nRun '" + c.CommandPath() + " COMMAND --help' for more information on a command.")
	}
	if msg := c.Annotations[annotationHelp]; msg != "" {
		if isTerminal(c.OutOrStderr()) {
			msg = "\x1b[1m" + msg + "\x1b[0m" // bold
		}
		b.WriteString("\n\n" + msg)
	}
	b.WriteString("\n")
	return b.String()
}

// annotationHelp is the annotation holding the text that ends a command's
// help (the root's: rootHelp).
const annotationHelp = "additionalHelp"

// aliases lists c's names as typed: "docker trustcache ledger ls, docker
// trustcache ledger list".
func aliases(c *cobra.Command) string {
	if a := c.Annotations["aliases"]; a != "" {
		return a
	}
	names := []string{c.CommandPath()}
	parent := ""
	if c.HasParent() {
		parent = c.Parent().CommandPath() + " "
	}
	for _, a := range c.Aliases {
		names = append(names, parent+a)
	}
	return strings.Join(names, ", ")
}

// flagUsages lists c's options wrapped to the terminal's width (80 columns
// when standard input is not a terminal).
func flagUsages(c *cobra.Command) string {
	width := 80
	if w, _, err := term.GetSize(0); err == nil {
		width = w
	}
	return c.Flags().FlagUsagesWrapped(width - 1)
}

func isPlugin(c *cobra.Command) bool {
	return c.Annotations[metadata.CommandAnnotationPlugin] == "true"
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// helpCommand is "help [command]": the help of the command named, under
// the command the help command is added to.
func helpCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "help [command]",
		Short:             "Help about the command",
		PersistentPreRun:  func(*cobra.Command, []string) {},
		PersistentPostRun: func(*cobra.Command, []string) {},
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Parent().Find(args)
			if cmd == nil || err != nil || len(rest) > 0 {
				return fmt.Errorf("unknown help topic: %v", strings.Join(rest, " "))
			}
			cmd.HelpFunc()(cmd, rest)
			return nil
		},
	}
}
