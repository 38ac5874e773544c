package plugin

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
	"github.com/docker-trustcache/docker-trustcache/keys"
)

func newKeysCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "keys",
		Example: keysExample,
		Short:   "Manage builder keys",
		Args:    noSubcommand,
		RunE:    showHelp,
	}
	cmd.AddCommand(newKeysGenerateCommand(dockerCLI, env), newKeysIDCommand(dockerCLI))
	return cmd
}

type keysGenerateOptions struct {
	name string
	dir  string
}

func newKeysGenerateCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	var opts keysGenerateOptions
	cmd := &cobra.Command{
		Use:     "generate --name NAME [--dir DIR]",
		Example: keysGenerateExample,
		Short:   "Generate a builder key pair (cosign-compatible)",
		Long: `Generate an ECDSA P-256 key pair: NAME.key, the private key encrypted with a
password in the format of "cosign generate-key-pair" (mode 0600), and
NAME.pub, the PKIX public key to list in the policy. Existing files are never
overwritten. Prints the key id.

The password is read from TRUSTCACHE_PASSWORD, then COSIGN_PASSWORD, then
asked for (twice) on a terminal.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStatus(runKeysGenerate(dockerCLI, env, opts))
		},
	}
	cmd.Flags().StringVar(&opts.name, "name", "", "Key name: writes NAME.key and NAME.pub (required)")
	cmd.Flags().StringVar(&opts.dir, "dir", ".", "Directory to write the key pair to")
	return cmd
}

func runKeysGenerate(dockerCLI command.Cli, env *Env, opts keysGenerateOptions) error {
	if opts.name == "" {
		return usagef("--name is required")
	}
	if st, err := os.Stat(opts.dir); err != nil || !st.IsDir() {
		return usagef("--dir %q: not a directory", opts.dir)
	}
	pass := keys.Password(env.lookupEnv, os.Stdin, dockerCLI.Err(), keys.IsTerminal)
	password, err := pass(true)
	if err != nil {
		return asUsage(err)
	}
	defer clear(password)
	privPEM, pubPEM, err := keys.GenerateKeyPair(password)
	if err != nil {
		return err
	}
	privPath, pubPath, err := keys.WriteKeyPair(opts.dir, opts.name, privPEM, pubPEM)
	if err != nil {
		return asUsage(err)
	}
	pub, err := keys.ParsePublicKeyPEM(pubPEM)
	if err != nil {
		return err
	}
	id, err := keys.ID(pub)
	if err != nil {
		return err
	}
	fmt.Fprintf(dockerCLI.Err(), "Private key written to %s\nPublic key written to %s\n", privPath, pubPath)
	fmt.Fprintln(dockerCLI.Out(), id)
	return nil
}

func newKeysIDCommand(dockerCLI command.Cli) *cobra.Command {
	return &cobra.Command{
		Use:     "id PUBKEY",
		Example: keysIDExample,
		Short:   "Print the key id of a public key",
		Long: `Print the key id of a public key file (PKIX PEM, as NAME.pub or cosign.pub):
"sha256:" and the hex SHA-256 of the key's DER encoding. Revocations in the
policy name keys by this id.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := keys.LoadPublicKey(args[0], "")
			if err != nil {
				return withStatus(asUsage(err))
			}
			id, err := keys.ID(pub)
			if err != nil {
				return withStatus(err)
			}
			fmt.Fprintln(dockerCLI.Out(), id)
			return nil
		},
	}
}
