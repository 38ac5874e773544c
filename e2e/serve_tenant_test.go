//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
)

// The uid and gid the attacker runs as: another user of the build host.
const nobodyID = 65534

// tenantGatewayEnv names another gateway binary to run instead of the
// one under test (main's, to see the attacks succeed there). Without
// --allow-uid there: such a binary admits every client the socket lets in.
const tenantGatewayEnv = "TRUSTCACHE_E2E_TENANT_GATEWAY"

// attackStep is one line of tenantattacker's output.
type attackStep struct {
	Step    string   `json:"step"`
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Data    string   `json:"data"`
	Refs    []string `json:"refs"`
}

// tenantLab is a buildkitd of the test's own behind a gateway that
// another uid (nobody) can reach, and the attacker program.
type tenantLab struct {
	dir      string // readable by nobody: the sockets and the attacker
	attacker string
	bk       *ownBuildkitd
}

func newTenantLab(t *testing.T) *tenantLab {
	t.Helper()
	dir, err := os.MkdirTemp("", "tc-tenant-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lab := &tenantLab{dir: dir, attacker: filepath.Join(dir, "tenantattacker")}
	build := exec.Command("go", "build", "-o", lab.attacker, "./tenantattacker")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the attacker: %v\n%s", err, out)
	}
	lab.bk = startOwnBuildkitd(t)
	return lab
}

// startGateway runs a gateway in front of the lab's buildkitd on
// lab.dir/NAME.sock, reachable by nobody as far as the socket's mode
// goes (the gateway admits whom its flags say).
func (lab *tenantLab) startGateway(t *testing.T, e *env, policy, name string, extra ...string) *gatewayProc {
	t.Helper()
	bin := pluginBin
	if alt := os.Getenv(tenantGatewayEnv); alt != "" {
		bin, extra = alt, nil
		t.Logf("gateway: %s (no admission flags)", alt)
	}
	g := &gatewayProc{sock: filepath.Join(lab.dir, name+".sock"), log: &testreg.Buffer{}, done: make(chan error, 1)}
	args := []string{"trustcache", "serve", "--buildkit", "unix://" + lab.bk.sock, "--listen", "unix://" + g.sock,
		"--policy", policy, "--log-format", "json", "--no-ledger", "--drain-timeout", "30s"}
	g.cmd = exec.Command(bin, append(args, extra...)...)
	g.cmd.Env = e.environ(nil)
	g.cmd.Dir = e.dir
	g.cmd.Stdout, g.cmd.Stderr = g.log, g.log
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.done <- g.cmd.Wait() }()
	t.Cleanup(func() {
		g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.done:
		case <-time.After(time.Minute):
			g.cmd.Process.Kill()
		}
		t.Logf("gateway %s log:\n%s", name, g.log)
	})
	g.waitLog(t, `"msg":"serving"`)
	if err := os.Chmod(g.sock, 0o666); err != nil {
		t.Fatal(err)
	}
	return g
}

// attack runs the attacker program against addr, as nobody (asRoot:
// as the test's own user, a victim or an oracle reading buildkitd
// directly), and returns its steps.
func (lab *tenantLab) attack(t *testing.T, asRoot bool, addr string, args ...string) []attackStep {
	t.Helper()
	cmd := exec.Command(lab.attacker, append([]string{"-addr", addr}, args...)...)
	cmd.Dir = lab.dir
	if !asRoot {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyID, Gid: nobodyID}}
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tenantattacker %q: %v\n%s", args, err, out)
	}
	var steps []attackStep
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var s attackStep
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("tenantattacker said %q: %v", sc.Text(), err)
		}
		steps = append(steps, s)
	}
	if len(steps) == 0 {
		t.Fatalf("tenantattacker %q said nothing", args)
	}
	t.Logf("tenantattacker %q (root %v): %+v", args, asRoot, steps)
	return steps
}

// victimBuild is a docker buildx build running in the background.
type victimBuild struct {
	out      string // its local output directory
	progress *testreg.Buffer
	done     chan error
}

// startVictim starts a buildx build of df (with %BASE% and %NONCE%) on
// builder, exporting to a local directory.
func (e *env) startVictim(t *testing.T, builder, name, df string, extra ...string) *victimBuild {
	t.Helper()
	ctx := e.nonceProject(t, name, df)
	v := &victimBuild{out: filepath.Join(e.dir, name+"-out"), progress: &testreg.Buffer{}, done: make(chan error, 1)}
	args := []string{"buildx", "build", "--builder", builder, "--network", cfg.network, "--provenance=false", "--progress=plain"}
	args = append(append(args, extra...), "-o", "type=local,dest="+v.out, ctx)
	cmd := exec.Command(cfg.docker, args...)
	cmd.Env = e.environ(nil)
	cmd.Dir = e.dir
	cmd.Stdout, cmd.Stderr = v.progress, v.progress
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { v.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-v.done:
		case <-time.After(time.Minute):
		}
	})
	return v
}

// wait waits for the victim's build to end.
func (v *victimBuild) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-v.done:
		v.done <- err
		return err
	case <-time.After(5 * time.Minute):
		t.Fatalf("the victim's build did not end:\n%s", v.progress)
		return nil
	}
}

// activeBuild returns the ID of the build running on the lab's buildkitd,
// as buildkitd itself tells (the test as an all-seeing oracle: what the
// attacker learnt from ListenBuildHistory before the gateway filtered it).
func (lab *tenantLab) activeBuild(t *testing.T, v *victimBuild) string {
	t.Helper()
	var ref string
	if !waitFor(2*time.Minute, func() bool {
		steps := lab.attack(t, true, "unix://"+lab.bk.sock, "-action", "history")
		if len(steps[0].Refs) > 0 {
			ref = steps[0].Refs[0]
			return true
		}
		return false
	}) {
		t.Fatalf("the victim's build never showed in buildkitd's history:\n%s", v.progress)
	}
	return ref
}

// victimDockerfile runs long enough for the attacker to act in the build.
const victimDockerfile = `FROM %BASE%
RUN echo %NONCE% > /nonce.txt && sleep 20 && echo honest-%NONCE% > /result.txt
`

// slowBase is cfg.baseImage through a proxy of the registry that answers
// manifests after a delay: the victim's frontend (which resolves its base
// image before it returns its result) takes that long, and an attacker
// has the time to return first, as it would on a busy registry.
func slowBase(t *testing.T, delay time.Duration) string {
	t.Helper()
	host, path, ok := strings.Cut(cfg.baseImage, "/")
	if !ok {
		t.Fatalf("base image %q has no registry host", cfg.baseImage)
	}
	up, err := url.Parse("http://" + host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(up)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") {
			time.Sleep(delay)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://") + "/" + path
}

// TestServeTenants: #21's attacks by another client of a shared builder
// (another uid, admitted by --allow-uid), on the real stack: buildkitd,
// the gateway and a buildx victim. Each is refused, the victim's build is
// its own, buildkitd stays up; a uid the gateway does not admit is
// refused at connection.
func TestServeTenants(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("runs the attacker as another uid: needs root")
	}
	e := trustEnv(t)
	e.genKey(t, "builder-a")
	repo := uniqueRepo(t)
	policy := e.writePolicy(t, "tenant.yaml", []builder{{"builder-a", []string{filepath.Join(e.dir, "builder-a.pub")}}},
		[]scope{{repos: []string{repo}, builders: []string{"builder-a"}}})
	lab := newTenantLab(t)
	gw := lab.startGateway(t, e, policy, "shared", "--allow-uid", "65534")
	gwAddr := "unix://" + gw.sock
	builder := "gw-tenant-" + randomHex(t, 4)
	e.docker(t, "buildx", "create", "--name", builder, "--driver", "remote", gwAddr).must(t)
	var victimBuildID string

	// Attack 1: the attacker solves its own result in the victim's build
	// and returns it first.
	t.Run("Poisoning", func(t *testing.T) {
		df := strings.Replace(victimDockerfile, "%BASE%", slowBase(t, 6*time.Second), 1)
		v := e.startVictim(t, builder, "victim-poison", df)
		id := lab.activeBuild(t, v)
		victimBuildID = id
		if seen := lab.attack(t, false, gwAddr, "-action", "history")[0]; len(seen.Refs) != 0 {
			t.Errorf("the attacker's build history through the gateway shows %q; want none of the victim's", seen.Refs)
		}
		steps := lab.attack(t, false, gwAddr, "-action", "poison", "-build", id, "-payload", "POISON")
		if steps[0].Code != "PermissionDenied" || len(steps) != 1 {
			t.Errorf("the attacker's Solve and Return in the victim's build: %+v; want Solve refused with PermissionDenied", steps)
		}
		if err := v.wait(t); err != nil {
			t.Errorf("the victim's build failed: %v\n%s", err, v.progress)
		}
		got, err := os.ReadFile(filepath.Join(v.out, "result.txt"))
		if err != nil || !strings.HasPrefix(string(got), "honest-") {
			t.Errorf("the victim's output is %q (%v); want its own honest-… result", got, err)
		}
		if !strings.Contains(gw.log.String(), `"msg":"call refused"`) || !strings.Contains(gw.log.String(), "uid=65534") {
			t.Errorf("the refusal is not logged with the attacker's uid")
		}
	})

	// Attack 2: a step in the victim's build that reads its secret.
	t.Run("SecretLeak", func(t *testing.T) {
		secret := "s3cret-" + randomHex(t, 8)
		src := filepath.Join(e.dir, "victim-secret.txt")
		if err := os.WriteFile(src, []byte(secret), 0o600); err != nil {
			t.Fatal(err)
		}
		v := e.startVictim(t, builder, "victim-secret", victimDockerfile, "--secret", "id=s,src="+src)
		id := lab.activeBuild(t, v)
		steps := lab.attack(t, false, gwAddr, "-action", "leak", "-build", id, "-base", cfg.baseImage, "-secret", "s")
		if steps[0].Code != "PermissionDenied" || len(steps) != 1 {
			t.Errorf("the attacker's step in the victim's build: %+v; want refused with PermissionDenied", steps)
		}
		for _, s := range steps {
			if strings.Contains(s.Data, secret) {
				t.Errorf("the attacker read the victim's secret: %+v", s)
			}
		}
		if err := v.wait(t); err != nil {
			t.Errorf("the victim's build failed: %v\n%s", err, v.progress)
		}
	})

	// Forged and guessed IDs: another client's session (attached, then
	// named in a Solve), another's build, a build no one opened.
	t.Run("ForgedIDs", func(t *testing.T) {
		session := "victim-session-" + randomHex(t, 8)
		if s := lab.attack(t, true, gwAddr, "-action", "attach", "-session", session)[0]; s.Code != "OK" {
			t.Fatalf("the victim attaching its session: %+v", s)
		}
		for _, args := range [][]string{
			{"-action", "attach", "-session", session},
			{"-action", "solve-session", "-session", session},
			{"-action", "solve-session", "-session", "prefix:" + session},
			{"-action", "return", "-build", "guessed-" + randomHex(t, 12)},
		} {
			if s := lab.attack(t, false, gwAddr, args...)[0]; s.Code != "PermissionDenied" {
				t.Errorf("attacker %q: %+v; want PermissionDenied", args, s)
			}
		}
		if victimBuildID != "" {
			if s := lab.attack(t, false, gwAddr, "-action", "return", "-build", victimBuildID)[0]; s.Code != "PermissionDenied" {
				t.Errorf("attacker's Return in the victim's finished build: %+v; want PermissionDenied", s)
			}
		}
	})

	// Attack 4's defence: a builder admits only its trust level. A uid the
	// gateway was not told to admit is refused at connection, before any
	// call is read.
	t.Run("Admission", func(t *testing.T) {
		protected := lab.startGateway(t, e, policy, "protected")
		s := lab.attack(t, false, "unix://"+protected.sock, "-action", "connect")[0]
		if s.Code != "Unavailable" {
			t.Errorf("nobody's ListWorkers on the protected gateway: %+v; want Unavailable (refused at connection)", s)
		}
		if !strings.Contains(protected.log.String(), `"msg":"connection refused"`) || !strings.Contains(protected.log.String(), "uid=65534") {
			t.Errorf("the refusal is not logged with the client's uid:\n%s", protected.log)
		}
		if s := lab.attack(t, true, "unix://"+protected.sock, "-action", "connect")[0]; s.Code != "OK" {
			t.Errorf("root's ListWorkers on the protected gateway: %+v; want OK", s)
		}
	})

	// Attack 3: a null cache import, which BuildKit v0.34.2's Dockerfile
	// frontend dereferences.
	t.Run("NullImports", func(t *testing.T) {
		s := lab.attack(t, false, gwAddr, "-action", "nullimports")[0]
		if s.Code != "InvalidArgument" || !strings.Contains(s.Message, "FrontendAttrs[cache-imports][0] is null") {
			t.Errorf("Solve with cache-imports [null]: %+v; want InvalidArgument naming the field", s)
		}
		time.Sleep(2 * time.Second)
		select {
		case err := <-lab.bk.done:
			lab.bk.done <- err
			t.Fatalf("buildkitd exited (%v):\n%s", err, lab.bk.log)
		default:
		}
		if s := lab.attack(t, true, "unix://"+lab.bk.sock, "-action", "connect")[0]; s.Code != "OK" {
			t.Errorf("buildkitd after the attack: %+v; want it answering", s)
		}
	})
}
