// Package trustedbuilder makes, lists and removes trusted builders: a
// BuildKit container of the local docker engine with the trustcache gateway
// in front of it (a second container, from the image `make image` builds),
// registered as a buildx builder that points at the gateway's unix socket.
// Every client of that builder (docker build, buildx, bake, compose, CI
// actions) goes through the policy with no change to its command line.
//
// It talks to the engine through the docker CLI (Docker), as the build
// wrapper runs buildx: no API client is linked into the plugin.
package trustedbuilder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker-trustcache/docker-trustcache/internal/lazyregexp"
)

// Defaults.
const (
	// DefaultName is the builder's name without --name.
	DefaultName = "trustcache"
	// DefaultBuildkitImage is upstream's BuildKit of the version the
	// gateway is tested with. Pin it by digest in production
	// (docs/builder.md).
	DefaultBuildkitImage = "moby/buildkit:v0.34.2"
	// DefaultGatewayImage is what `make image` tags.
	DefaultGatewayImage = "docker-trustcache:latest"

	// Paths inside the containers.
	buildkitSocketDir = "/run/buildkit"
	buildkitSocket    = buildkitSocketDir + "/buildkitd.sock"
	gatewayRunDir     = "/run/trustcache"
	gatewayPolicyDir  = "/etc/trustcache/policy"
	gatewayStateDir   = "/var/lib/trustcache"

	// nonroot is the gateway's user when the builder's creator is root
	// (the image's "nonroot").
	nonroot = 65532

	// maxSocketPath is the shortest limit of a unix socket path (macOS: 104
	// bytes with the terminating NUL).
	maxSocketPath = 103
)

// Options say what builder Create makes.
type Options struct {
	// Name of the builder (and of the buildx builder); default DefaultName.
	Name string
	// ConfigDir is the docker config dir: the builder lives in
	// ConfigDir/trustcache/builders/NAME. Required.
	ConfigDir string
	// PolicyFile is the policy the gateway enforces (copied). Required.
	PolicyFile string
	// BuildkitImage runs buildkitd (default DefaultBuildkitImage); unused
	// with BuildkitAddr.
	BuildkitImage string
	// GatewayImage runs the gateway (default DefaultGatewayImage).
	GatewayImage string
	// BuildkitAddr reuses a buildkitd on this host (unix://PATH or
	// tcp://127.0.0.1:PORT) instead of starting one.
	BuildkitAddr string
	// AllowUIDs and AllowGIDs are the clients the gateway admits besides
	// the builder's creator and root (gateway --allow-uid, --allow-gid).
	AllowUIDs, AllowGIDs []uint32
	// Use makes it buildx's current builder (buildx create --use).
	Use bool
	// RegistryAuth gives the gateway the registry credentials of
	// ConfigDir's config.json (copyRegistryAuth): without them it reads
	// registries anonymously.
	RegistryAuth bool
	// Timeout bounds each wait for a container to be ready; default 60s.
	Timeout time.Duration
}

// Create starts the builder's BuildKit (unless opts.BuildkitAddr) and
// gateway containers and registers the buildx builder. Progress goes to
// progress. On any failure everything made so far is removed again: a
// failed create leaves nothing behind.
func Create(ctx context.Context, d Docker, opts Options, progress io.Writer) (rec *Record, err error) {
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	if opts.BuildkitImage == "" {
		opts.BuildkitImage = DefaultBuildkitImage
	}
	if opts.GatewayImage == "" {
		opts.GatewayImage = DefaultGatewayImage
	}
	if opts.Timeout == 0 {
		opts.Timeout = 60 * time.Second
	}
	if err := checkName(opts.Name); err != nil {
		return nil, err
	}
	if opts.ConfigDir == "" || opts.PolicyFile == "" {
		return nil, errors.New("trustedbuilder: ConfigDir and PolicyFile are required")
	}
	name := opts.Name
	dir, err := filepath.Abs(filepath.Join(BuildersDir(opts.ConfigDir), name))
	if err != nil {
		return nil, err
	}
	rec = &Record{
		Name:             name,
		Dir:              dir,
		Socket:           filepath.Join(dir, "run", "gateway.sock"),
		GatewayContainer: "trustcache-" + name + "-gateway",
		GatewayImage:     opts.GatewayImage,
		AllowUIDs:        opts.AllowUIDs,
		AllowGIDs:        opts.AllowGIDs,
	}
	if len(rec.Socket) > maxSocketPath {
		return nil, fmt.Errorf("the gateway's socket path %s is %d bytes, longer than a unix socket path may be (%d): use a shorter DOCKER_CONFIG or builder name", rec.Socket, len(rec.Socket), maxSocketPath)
	}
	stateVol, runVol := "trustcache-"+name+"-state", "trustcache-"+name+"-run"
	if opts.BuildkitAddr == "" {
		rec.BuildkitContainer = "trustcache-" + name + "-buildkit"
		rec.BuildkitImage = opts.BuildkitImage
		rec.BuildkitAddr = "unix://" + buildkitSocket
		rec.Volumes = []string{stateVol, runVol}
	} else {
		if err := checkBuildkitAddr(opts.BuildkitAddr); err != nil {
			return nil, err
		}
		rec.BuildkitAddr = opts.BuildkitAddr
		rec.External = true
	}

	// Checks that cost nothing to undo, first.
	if _, err := d.Ping(ctx); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(dir); err == nil {
		return nil, fmt.Errorf("trusted builder %q exists already (%s): remove it first with docker trustcache builder rm %s", name, dir, name)
	}
	if ok, err := d.exists(ctx, "buildx", "inspect", name); err != nil {
		return nil, err
	} else if ok {
		return nil, fmt.Errorf("a buildx builder named %q exists already (docker buildx ls): choose another --name, or remove it with docker buildx rm %s", name, name)
	}
	for _, c := range []string{rec.BuildkitContainer, rec.GatewayContainer} {
		if c == "" {
			continue
		}
		if ok, err := d.exists(ctx, "container", "inspect", c); err != nil {
			return nil, err
		} else if ok {
			return nil, fmt.Errorf("a container named %s exists already (a builder %q of another docker config?): remove it, or choose another --name", c, name)
		}
	}
	for _, v := range rec.Volumes {
		if ok, err := d.exists(ctx, "volume", "inspect", v); err != nil {
			return nil, err
		} else if ok {
			return nil, fmt.Errorf("a volume named %s exists already: remove it, or choose another --name", v)
		}
	}
	if rec.GatewayImageID, err = ensureImage(ctx, d, opts.GatewayImage, "gateway image", "; build it with make image"); err != nil {
		return nil, err
	}
	if !rec.External {
		if rec.BuildkitImageID, err = ensureImage(ctx, d, opts.BuildkitImage, "BuildKit image", ""); err != nil {
			return nil, err
		}
	}

	// Who the gateway runs as (the owner of its socket and state), and
	// whom it admits.
	uid, gid, groupAdd, err := gatewayUser(opts)
	if err != nil {
		return nil, err
	}
	rec.GatewayUser = fmt.Sprintf("%d:%d", uid, gid)
	admit, err := admission(ctx, d, opts, uid)
	if err != nil {
		return nil, err
	}

	// From here on every step is undone if a later one fails.
	var undo []func()
	defer func() {
		if err == nil {
			return
		}
		fmt.Fprintf(progress, "create failed: removing what was made for builder %s\n", name)
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		rec = nil
	}()
	quiet := func(args ...string) func() {
		return func() { _, _ = d.run(context.WithoutCancel(ctx), args...) }
	}

	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("making the builder's directory: %w", err)
	}
	undo = append(undo, func() { _ = os.RemoveAll(dir) })
	for _, sub := range []string{"run", "state"} {
		p := filepath.Join(dir, sub)
		mode := os.FileMode(0o755)
		if sub == "state" {
			mode = 0o700
		}
		if err := os.Mkdir(p, mode); err != nil {
			return nil, err
		}
		if os.Getuid() == 0 {
			if err := os.Chown(p, uid, gid); err != nil {
				return nil, err
			}
		}
	}
	if opts.RegistryAuth {
		hosts, err := copyRegistryAuth(opts.ConfigDir, filepath.Join(dir, "state"), uid, gid, progress)
		if err != nil {
			return nil, fmt.Errorf("--registry-auth: %w", err)
		}
		rec.RegistryAuth = hosts
		if len(hosts) > 0 {
			fmt.Fprintf(progress, "registry credentials for %s given to the gateway\n", strings.Join(hosts, ", "))
		} else {
			fmt.Fprintf(progress, "no registry credentials in %s to give the gateway: it reads registries anonymously\n", filepath.Join(opts.ConfigDir, "config.json"))
		}
	}
	pol, envs, err := snapshotPolicy(opts.PolicyFile, filepath.Join(dir, "policy"), "")
	if err != nil {
		return nil, err
	}
	rec.Policy = pol
	rec.PolicyEnv = envs
	fmt.Fprintf(progress, "policy %s (%s) copied to %s\n", pol.Source, pol.Digest, pol.File)

	label := Label + "=" + name
	if !rec.External {
		for _, v := range rec.Volumes {
			if _, err := d.run(ctx, "volume", "create", "--label", label, v); err != nil {
				return nil, err
			}
			undo = append(undo, quiet("volume", "rm", "-f", v))
		}
		// Privileged: buildkitd runs every RUN step in its own containers
		// (runc, overlayfs mounts), as buildx's docker-container driver
		// runs it. Host network: the gateway's verified content endpoint
		// listens on 127.0.0.1 and buildkitd must reach it (and registries
		// on this host's loopback); docker engines started with
		// --bridge=none (CI sandboxes, this project's e2e) have no other.
		// Its socket is in a volume only the gateway mounts: no client
		// reaches buildkitd around the gateway.
		run := func(priv []string) error {
			args := []string{"run", "-d", "--name", rec.BuildkitContainer, "--label", label}
			args = append(args, priv...)
			args = append(args, "--network", "host", "--restart", "unless-stopped",
				"-v", stateVol+":/var/lib/buildkit", "-v", runVol+":"+buildkitSocketDir,
				opts.BuildkitImage,
				"--addr", "unix://"+buildkitSocket, "--group", strconv.Itoa(gid))
			_, err := d.run(ctx, args...)
			return err
		}
		// A run that fails may leave the container created.
		undo = append(undo, quiet("rm", "-f", "-v", rec.BuildkitContainer))
		rec.BuildkitPrivilege = "privileged"
		if err := run(privilegedArgs); err != nil {
			bounded, missing, ok := boundedArgs()
			if !ok || !strings.Contains(err.Error(), "unable to apply caps") {
				return nil, err
			}
			// The container was created before runc failed.
			_, _ = d.run(ctx, "rm", "-f", rec.BuildkitContainer)
			fmt.Fprintf(progress, "this docker engine cannot start privileged containers (its host lacks CAP_%s): BuildKit runs with every other capability, unconfined, with the host's cgroups\n", strings.Join(missing, ", CAP_"))
			rec.BuildkitPrivilege = "all capabilities but " + strings.Join(missing, ", ")
			if err := run(bounded); err != nil {
				return nil, err
			}
		}
		fmt.Fprintf(progress, "started %s (%s)\n", rec.BuildkitContainer, opts.BuildkitImage)
		if err := waitBuildkit(ctx, d, rec.BuildkitContainer, opts.Timeout); err != nil {
			return nil, err
		}
	}

	args := []string{"run", "-d", "--name", rec.GatewayContainer, "--label", label,
		"--network", "host", "--restart", "unless-stopped",
		"--user", rec.GatewayUser,
		"--read-only",
		"-v", filepath.Join(dir, "run") + ":" + gatewayRunDir,
		"-v", filepath.Join(dir, "policy") + ":" + gatewayPolicyDir + ":ro",
		"-v", filepath.Join(dir, "state") + ":" + gatewayStateDir,
		"-e", "DOCKER_CONFIG=" + gatewayStateDir,
	}
	for _, g := range groupAdd {
		args = append(args, "--group-add", strconv.Itoa(g))
	}
	for _, e := range envs {
		args = append(args, "-e", e) // the value comes from this process's environment
	}
	gwBuildkit := rec.BuildkitAddr
	if rec.External {
		if p, ok := strings.CutPrefix(rec.BuildkitAddr, "unix://"); ok {
			// Its directory, not the socket file: a buildkitd that restarts
			// makes a new socket, which a file mount would not show.
			d := filepath.Dir(p)
			args = append(args, "-v", d+":"+d)
		}
	} else {
		args = append(args, "-v", runVol+":"+buildkitSocketDir)
	}
	args = append(args, opts.GatewayImage, "serve",
		"--buildkit", gwBuildkit,
		"--listen", "unix://"+gatewayRunDir+"/gateway.sock",
		"--policy", gatewayPolicyDir+"/"+filepath.Base(pol.File),
		"--log-format", "json")
	args = append(args, admit...)
	undo = append(undo, quiet("rm", "-f", "-v", rec.GatewayContainer))
	if _, err := d.run(ctx, args...); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "started %s (%s), serving %s\n", rec.GatewayContainer, opts.GatewayImage, rec.Socket)
	if err := waitGateway(ctx, d, rec, opts.Timeout); err != nil {
		return nil, err
	}

	bx := []string{"buildx", "create", "--name", name, "--driver", "remote"}
	if opts.Use {
		bx = append(bx, "--use")
	}
	if _, err := d.run(ctx, append(bx, "unix://"+rec.Socket)...); err != nil {
		return nil, err
	}
	undo = append(undo, quiet("buildx", "rm", name))
	rec.Created = time.Now().UTC().Truncate(time.Second)
	if err := rec.save(); err != nil {
		return nil, err
	}
	return rec, nil
}

// checkBuildkitAddr accepts the buildkitd addresses a gateway can use:
// on this host, since BuildKit imports verified caches from the gateway's
// endpoint on 127.0.0.1.
func checkBuildkitAddr(addr string) error {
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("--buildkit %s: want unix:///ABSOLUTE/PATH", addr)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("--buildkit %s: %w", addr, err)
		}
		if fi.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("--buildkit %s: %s is not a socket", addr, p)
		}
		return nil
	}
	if hp, ok := strings.CutPrefix(addr, "tcp://"); ok {
		host, _, err := net.SplitHostPort(hp)
		if err == nil {
			if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
				return nil
			}
		}
	}
	return fmt.Errorf("--buildkit %s: want unix:///PATH or tcp://127.0.0.1:PORT (buildkitd must run on this host: it imports verified caches from the gateway on 127.0.0.1)", addr)
}

// gatewayUser is who the gateway runs as. Not root where it can help it:
// the builder's creator (its socket is then theirs, and the gateway
// admits them by default), or the image's nonroot user when the creator is
// root. Its primary group is the first allowed gid, so the socket (mode
// 0660) is that group's too. A reused buildkitd (--buildkit unix://) is
// reached as its socket's owner, with the socket's group: the socket's
// mode is not enough to tell (its directory may be closed to others, as a
// root buildkitd's usually is), and its owner is who reaches it.
func gatewayUser(opts Options) (uid, gid int, groupAdd []int, err error) {
	uid, gid = os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = nonroot, nonroot
	}
	if p, ok := strings.CutPrefix(opts.BuildkitAddr, "unix://"); ok {
		fi, err := os.Stat(p)
		if err != nil {
			return 0, 0, nil, err
		}
		suid, sgid, ok := fileOwner(fi)
		if !ok {
			return 0, 0, nil, fmt.Errorf("--buildkit %s: cannot read the socket's owner", opts.BuildkitAddr)
		}
		uid, gid = suid, sgid
	}
	if len(opts.AllowGIDs) > 0 {
		if gid != int(opts.AllowGIDs[0]) {
			groupAdd = append(groupAdd, gid)
		}
		gid = int(opts.AllowGIDs[0])
	}
	return uid, gid, groupAdd, nil
}

// admission returns the gateway's --allow-uid and --allow-gid flags: the
// allowed clients, and the creator when the gateway runs as another user
// (by default it admits only its own user and root). A gateway image whose
// serve has no such flags (built before they existed) is refused when
// they are needed.
func admission(ctx context.Context, d Docker, opts Options, gatewayUID int) ([]string, error) {
	var out []string
	creator := uint32(os.Getuid())
	if int(creator) != gatewayUID && creator != 0 {
		out = append(out, "--allow-uid", strconv.FormatUint(uint64(creator), 10))
	}
	for _, u := range opts.AllowUIDs {
		out = append(out, "--allow-uid", strconv.FormatUint(uint64(u), 10))
	}
	for _, g := range opts.AllowGIDs {
		out = append(out, "--allow-gid", strconv.FormatUint(uint64(g), 10))
	}
	if len(out) == 0 {
		return nil, nil
	}
	help, err := d.run(ctx, "run", "--rm", "--network", "none", opts.GatewayImage, "serve", "--help")
	if err != nil {
		return nil, err
	}
	if !strings.Contains(help, "--allow-uid") {
		return nil, fmt.Errorf("gateway image %s: its serve has no --allow-uid (built from an older plugin), so it cannot admit other clients than its own user and root: rebuild it with make image", opts.GatewayImage)
	}
	return out, nil
}

// ensureImage returns the image's ID, pulling it when it is not here.
func ensureImage(ctx context.Context, d Docker, image, what, hint string) (string, error) {
	if id, err := d.run(ctx, "image", "inspect", "--format", "{{.Id}}", image); err == nil {
		return id, nil
	}
	if _, err := d.run(ctx, "pull", "-q", image); err != nil {
		return "", fmt.Errorf("%s %s is not on this docker engine, and pulling it failed%s: %v", what, image, hint, err)
	}
	return d.run(ctx, "image", "inspect", "--format", "{{.Id}}", image)
}

// waitBuildkit waits until buildkitd in container answers its control API.
func waitBuildkit(ctx context.Context, d Docker, container string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if _, last = d.run(ctx, "exec", container, "buildctl", "--addr", "unix://"+buildkitSocket, "debug", "workers"); last == nil {
			return nil
		}
		if err := checkRunning(ctx, d, container); err != nil {
			return err
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("buildkitd in %s did not answer within %s: %v", container, timeout, last)
}

// waitGateway waits until the gateway accepts connections on its socket.
func waitGateway(ctx context.Context, d Docker, rec *Record, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("unix", rec.Socket, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		last = err
		if err := checkRunning(ctx, d, rec.GatewayContainer); err != nil {
			return err
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("the gateway %s did not listen on %s within %s: %v", rec.GatewayContainer, rec.Socket, timeout, last)
}

// checkRunning returns an error with the container's last log lines when
// it has stopped or is restarting.
func checkRunning(ctx context.Context, d Docker, container string) error {
	st, err := d.run(ctx, "container", "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}", container)
	if err != nil {
		return err
	}
	f := strings.Fields(st)
	if len(f) == 3 && f[0] == "running" && f[2] == "0" {
		return nil
	}
	if len(f) == 3 && f[0] == "created" {
		return nil
	}
	logs := tailLogs(ctx, d, container, 15)
	return fmt.Errorf("container %s stopped (status %s): its last output:\n%s", container, st, logs)
}

// tailLogs returns the last n lines the container wrote.
func tailLogs(ctx context.Context, d Docker, container string, n int) string {
	c := d.cmd(ctx, "logs", "--tail", strconv.Itoa(n), container)
	out, _ := c.CombinedOutput()
	return strings.TrimRight(string(out), "\n")
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

var versionRE = lazyregexp.New(`(?m)^BuildKit version:\s*(\S+)`)
