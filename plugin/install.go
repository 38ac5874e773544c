package plugin

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
	"github.com/docker-trustcache/docker-trustcache/internal/dockerconfig"
)

type installOptions struct {
	aliasBuilder bool
	force        bool
	check        bool
}

func newInstallCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	var opts installOptions
	cmd := &cobra.Command{
		Use:     "install (--alias-builder [--force] | --check)",
		Example: installExample,
		Short:   `Route "docker build" through docker trustcache`,
		Long: `Set "aliases": {"builder": "trustcache"} in the docker CLI config file
($DOCKER_CONFIG/config.json, default ~/.docker/config.json), so that
"docker build", "docker image build" and "docker builder build" run
"docker trustcache build", and the other "docker builder" commands
(prune, ls, du …) run "docker buildx" through it. "docker buildx build"
is not routed: it still runs buildx directly.

Every other setting in the file is kept. A builder alias set to something
else (e.g. "buildx", which "docker buildx install" sets) is refused unless
--force replaces it; uninstall does not put it back. The file keeps its
owner, group and mode (run as root on another user's config, it stays
theirs); a symbolic link is followed to its target.

The docker CLI reads DOCKER_BUILDKIT before the alias: where DOCKER_BUILDKIT=0
(or false) is set, docker build runs the legacy builder, docker trustcache
does not run, and --cache-from images are used unverified. install warns
when it runs with such a value.

--check changes nothing. It exits 0 when a docker build run in the same
environment runs docker trustcache build — the builder alias is trustcache,
DOCKER_BUILDKIT does not turn BuildKit off, the docker-buildx plugin is
there — and 2, naming every problem and its fix, when not. Run it in CI in
the job (and with the environment) that runs docker build.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.check {
				return withStatus(runInstallCheck(dockerCLI.Out(), env, pluginName, opts))
			}
			return withStatus(runInstall(dockerCLI.Err(), env, pluginName, opts))
		},
	}
	flags := cmd.Flags()
	flags.BoolVar(&opts.aliasBuilder, "alias-builder", false, `Set the docker CLI's builder alias to trustcache (required, unless --check)`)
	flags.BoolVar(&opts.force, "force", false, "Replace a builder alias set to something else")
	flags.BoolVar(&opts.check, "check", false, "Change nothing; exit 2 unless docker build here runs docker trustcache build")
	return cmd
}

type uninstallOptions struct {
	aliasBuilder bool
}

func newUninstallCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	var opts uninstallOptions
	cmd := &cobra.Command{
		Use:     "uninstall --alias-builder",
		Example: uninstallExample,
		Short:   `Stop routing "docker build" through docker trustcache`,
		Long: `Remove "aliases": {"builder": "trustcache"} from the docker CLI config file,
and the "aliases" object when that leaves it empty (an empty "aliases" means
the same to the docker CLI as none). A builder alias set to something else
is left alone. Every other setting in the file is kept.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStatus(runUninstall(dockerCLI.Err(), env.dockerConfigFile(), pluginName, opts))
		},
	}
	cmd.Flags().BoolVar(&opts.aliasBuilder, "alias-builder", false, "Remove the docker CLI's builder alias to trustcache (required)")
	return cmd
}

// runInstall sets the builder alias to name in the docker config file of
// env's config dir. errOut gets what was done.
func runInstall(errOut io.Writer, env *Env, name string, opts installOptions) error {
	path := env.dockerConfigFile()
	if !opts.aliasBuilder {
		return usagef("nothing to install: pass --alias-builder to route docker build through docker %s (--check checks that it is)", name)
	}
	cfg, err := readDockerConfig(path)
	if err != nil {
		return err
	}
	prev, set := cfg.Builder()
	ours := set && dockerconfig.IsJSONString(prev, name)
	switch {
	case ours:
		fmt.Fprintf(errOut, "%s: the builder alias is already %q; nothing to do\n", path, name)
		installNotes(errOut, env, name)
		return nil
	case set && !opts.force:
		why := ""
		if dockerconfig.IsJSONString(prev, "buildx") {
			why = " (docker buildx install sets it)"
		}
		return usagef("%s: %q is %s%s, not %q; pass --force to replace it", path, dockerconfig.AliasesKey+"."+dockerconfig.BuilderAliasKey, prev, why, name)
	}
	cfg.SetBuilder(name)
	if err := cfg.Write(); err != nil {
		return err
	}
	if set {
		fmt.Fprintf(errOut, "%s: replaced the builder alias %s with %q (uninstall will not restore %s)\n", path, prev, name, prev)
	} else {
		fmt.Fprintf(errOut, "%s: set %q to %q\n", path, dockerconfig.AliasesKey+"."+dockerconfig.BuilderAliasKey, name)
	}
	fmt.Fprintf(errOut, "docker build, docker image build and docker builder build now run docker %s build\n", name)
	fmt.Fprintf(errOut, "note: a build that imports no cache (no --cache-from) needs no policy: in a project without one, docker build works exactly as docker buildx build\n")
	installNotes(errOut, env, name)
	return nil
}

// installNotes tells what the alias does not cover, and warns when
// DOCKER_BUILDKIT here makes docker build skip it.
func installNotes(errOut io.Writer, env *Env, name string) {
	fmt.Fprintf(errOut, "note: where DOCKER_BUILDKIT=0 (or false) is set, docker build runs the legacy builder instead, "+
		"which ignores the alias and uses --cache-from images unverified; docker %s install --check tells whether docker build is routed\n", name)
	if problem := buildKitProblem(env, name); problem != "" {
		fmt.Fprintf(errOut, "WARNING: %s\n", problem)
	}
}

// buildKitProblem says what DOCKER_BUILDKIT, as the docker CLI reads it
// (see envBuildKit), does to the builder alias to name here, and how to fix
// it; "" when nothing.
func buildKitProblem(env *Env, name string) string {
	v, off, err := env.buildKitEnv()
	switch {
	case err != nil:
		return fmt.Sprintf("%s=%q is not a boolean: the docker CLI refuses to run docker build. Fix: unset %s or set %s=1",
			envBuildKit, v, envBuildKit, envBuildKit)
	case off:
		return fmt.Sprintf("%s=%s is set: docker build runs the legacy builder, which ignores the builder alias: "+
			"docker %s does not run and --cache-from images are used unverified. Fix: unset %s or set %s=1",
			envBuildKit, v, name, envBuildKit, envBuildKit)
	}
	return ""
}

// runInstallCheck checks, changing nothing, that a docker build run in the
// environment env, with the docker config file of its config dir, runs
// docker name build:
// the builder alias is name, DOCKER_BUILDKIT does not turn BuildKit off, and
// the docker-buildx plugin that build runs is there. out gets "ok"; every
// problem found, with its fix, is in the usage error returned.
func runInstallCheck(out io.Writer, env *Env, name string, opts installOptions) error {
	path := env.dockerConfigFile()
	if opts.force {
		return usagef("--check does not take --force: it changes nothing")
	}
	cfg, err := readDockerConfig(path)
	if err != nil {
		return err
	}
	var problems []string
	prev, set := cfg.Builder()
	switch {
	case !set:
		problems = append(problems, fmt.Sprintf("no builder alias: docker build runs buildx, never docker %s. Fix: docker %s install --alias-builder", name, name))
	case !dockerconfig.IsJSONString(prev, name):
		problems = append(problems, fmt.Sprintf("the builder alias is %s, not %q: docker build does not run docker %s. Fix: docker %s install --alias-builder --force", prev, name, name, name))
	}
	if problem := buildKitProblem(env, name); problem != "" {
		problems = append(problems, problem)
	}
	plugins := cfg.PluginConfig()
	buildx, found := buildxPlugin(env, plugins)
	if !found {
		dirs := append(append(plugins.CLIPluginsExtraDirs, filepath.Join(filepath.Dir(path), "cli-plugins")), env.PluginDirs...)
		problems = append(problems, fmt.Sprintf("docker-buildx not found (looked in %s): docker %s build runs it, and fails without it. "+
			"Fix: install the buildx plugin in one of those directories (https://docs.docker.com/go/buildx/)", strings.Join(dirs, ", "), name))
	}
	if len(problems) > 0 {
		return usagef("%s: docker build does not run docker %s build here:\n  - %s", path, name, strings.Join(problems, "\n  - "))
	}
	bk, _, _ := env.buildKitEnv()
	if bk == "" {
		bk = "unset"
	} else {
		bk = envBuildKit + "=" + bk
	}
	fmt.Fprintf(out, "%s: ok: docker build runs docker %s build (builder alias %q, %s, %s)\n", path, name, name, bk, buildx)
	return nil
}

// runUninstall removes the builder alias from the docker config file at
// path if it is name, and the aliases object if that leaves it empty.
func runUninstall(errOut io.Writer, path, name string, opts uninstallOptions) error {
	if !opts.aliasBuilder {
		return usagef("nothing to uninstall: pass --alias-builder to stop routing docker build through docker %s", name)
	}
	cfg, err := readDockerConfig(path)
	if err != nil {
		return err
	}
	prev, set := cfg.Builder()
	switch {
	case !cfg.Exists():
		fmt.Fprintf(errOut, "%s does not exist: no builder alias to remove\n", path)
		return nil
	case !set:
		fmt.Fprintf(errOut, "%s: no builder alias; nothing to do\n", path)
		return nil
	case !dockerconfig.IsJSONString(prev, name):
		fmt.Fprintf(errOut, "%s: the builder alias is %s, not %q; left as it is\n", path, prev, name)
		return nil
	}
	emptied := cfg.RemoveBuilder()
	if err := cfg.Write(); err != nil {
		return err
	}
	if emptied {
		fmt.Fprintf(errOut, "%s: removed the builder alias %q and the %q object it leaves empty\n", path, name, dockerconfig.AliasesKey)
	} else {
		fmt.Fprintf(errOut, "%s: removed the builder alias %q\n", path, name)
	}
	return nil
}

// readDockerConfig reads the docker config file at path
// (dockerconfig.Read); contents it cannot edit safely are usage errors.
func readDockerConfig(path string) (*dockerconfig.File, error) {
	cfg, err := dockerconfig.Read(path)
	var invalid *dockerconfig.InvalidError
	if errors.As(err, &invalid) {
		return nil, asUsage(err)
	}
	return cfg, err
}
