package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
)

// testCA is a certificate authority made for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // its certificate, PEM
}

var serial int64

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key := testreg.Key(t)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(dir, name+".pem")
	writePEM(t, file, "CERTIFICATE", der)
	return &testCA{cert: cert, key: key, file: file}
}

// issue makes a certificate for cn (a server's for 127.0.0.1 and
// localhost when server is set, else a client's) and returns its cert and
// key files.
func (ca *testCA) issue(t *testing.T, dir, cn string, server bool) (certFile, keyFile string) {
	t.Helper()
	key := testreg.Key(t)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, cn+".pem"), filepath.Join(dir, cn+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

func writePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func serverFiles(cert, key, ca string) TLSFiles {
	return TLSFiles{Cert: cert, Key: key, CA: ca, CertFlag: "--tls-cert", KeyFlag: "--tls-key", CAFlag: "--tls-cacert"}
}

func clientFiles(cert, key, ca string) TLSFiles {
	return TLSFiles{Cert: cert, Key: key, CA: ca, CertFlag: "--buildkit-tls-cert", KeyFlag: "--buildkit-tls-key", CAFlag: "--buildkit-tls-cacert"}
}

// TestServeTLS: on tcp:// the gateway serves only clients with a
// certificate its CA signed, and logs their name.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := newTestCA(t, dir, "ca"), newTestCA(t, dir, "other-ca")
	srvCert, srvKey := ca.issue(t, dir, "gateway", true)
	cliCert, cliKey := ca.issue(t, dir, "ci-runner-7", false)
	evilCert, evilKey := other.issue(t, dir, "intruder", false)

	be := startBackend(t)
	cc, err := Dial(be.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	cfg, err := ServerTLS(serverFiles(srvCert, srvKey, ca.file))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var sb strings.Builder
	log := slog.New(slog.NewJSONHandler(&lockedWriter{w: &sb, mu: &mu}, nil))
	logText := func() string {
		mu.Lock()
		defer mu.Unlock()
		return sb.String()
	}
	s := New(cc, NewDecider(testVerifier(t), fakeEndpoint{}, log), log, WithTLS(cfg))
	l, err := Listen("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	addr := l.Addr().String()

	call := func(creds credentials.TransportCredentials) error {
		conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		req := frame(mapField(7, "cache-from", "reg.example/team/cache:signed"))
		var resp frame
		return conn.Invoke(ctx, "/moby.buildkit.v1.Control/Solve", &req, &resp)
	}
	good, err := ClientTLS(TLSFiles{Cert: cliCert, Key: cliKey, CA: ca.file, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := call(credentials.NewTLS(good)); err != nil {
		t.Fatalf("a client with a certificate the CA signed: %v", err)
	}
	if lt := logText(); !strings.Contains(lt, `"client":"127.0.0.1:`) || !strings.Contains(lt, `,cn=ci-runner-7"`) {
		t.Errorf("the decision log does not name the client's certificate:\n%s", lt)
	}
	noCert, _ := ClientTLS(TLSFiles{CA: ca.file, ServerName: "127.0.0.1"})
	evil, _ := ClientTLS(TLSFiles{Cert: evilCert, Key: evilKey, CA: ca.file, ServerName: "127.0.0.1"})
	for name, creds := range map[string]credentials.TransportCredentials{
		"no client certificate":           credentials.NewTLS(noCert),
		"a certificate another CA signed": credentials.NewTLS(evil),
		"plaintext":                       insecure.NewCredentials(),
	} {
		if err := call(creds); err == nil {
			t.Errorf("%s: the call went through; want refused", name)
		}
	}
	if n := len(be.recorded()); n != 1 {
		t.Errorf("buildkitd got %d calls; want only the certified client's", n)
	}
}

// TestServeTCPNeedsTLS: a tcp listener without TLS is never served.
func TestServeTCPNeedsTLS(t *testing.T) {
	be := startBackend(t)
	cc, err := Dial(be.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	log := slog.New(slog.DiscardHandler)
	s := New(cc, NewDecider(testVerifier(t), fakeEndpoint{}, log), log)
	l, err := Listen("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(l); err == nil || !strings.Contains(err.Error(), "tcp needs TLS") {
		t.Errorf("Serve(tcp) without TLS = %v; want refused", err)
	}
	if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
		c.Close()
		t.Errorf("the tcp listener still accepts")
	}
}

// TestDialTLS: the gateway reaches a buildkitd that requires mutual TLS,
// and refuses one whose certificate its CA did not sign.
func TestDialTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := newTestCA(t, dir, "ca"), newTestCA(t, dir, "other-ca")
	bkCert, bkKey := ca.issue(t, dir, "buildkitd", true)
	gwCert, gwKey := ca.issue(t, dir, "gateway", false)
	fakeCert, fakeKey := other.issue(t, dir, "fake-buildkitd", true)

	start := func(cert, key string) string {
		cfg, err := ServerTLS(serverFiles(cert, key, ca.file))
		if err != nil {
			t.Fatal(err)
		}
		b := &backend{}
		b.srv = grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)), grpc.ForceServerCodecV2(rawCodec{}), grpc.UnknownServiceHandler(b.handle))
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go b.srv.Serve(l)
		t.Cleanup(b.srv.Stop)
		return "tcp://" + l.Addr().String()
	}
	cfg, err := ClientTLS(clientFiles(gwCert, gwKey, ca.file))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := DialTLS(start(bkCert, bkKey), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if err := probe(t.Context(), cc); err != nil {
		t.Errorf("probe over mutual TLS: %v", err)
	}
	cc2, err := DialTLS(start(fakeCert, fakeKey), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cc2.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if err := probe(ctx, cc2); err == nil {
		t.Errorf("probe of a buildkitd whose certificate another CA signed succeeded")
	}
	// Without TLS the same buildkitd does not answer.
	cc3, err := Dial(start(bkCert, bkKey))
	if err != nil {
		t.Fatal(err)
	}
	defer cc3.Close()
	if err := probe(ctx, cc3); err == nil {
		t.Errorf("probe without TLS succeeded")
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	cert, key := ca.issue(t, dir, "gateway", true)
	_, otherKey := ca.issue(t, dir, "other", true)
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		f    TLSFiles
		want string
	}{
		{serverFiles(cert, key, ""), "mutual TLS needs --tls-cert, --tls-key and --tls-cacert: [--tls-cacert] missing"},
		{serverFiles("", "", ca.file), "[--tls-cert --tls-key] missing"},
		{serverFiles(missing, key, ca.file), "--tls-cert " + missing},
		{serverFiles(cert, otherKey, ca.file), "private key does not match public key"},
		{serverFiles(cert, key, missing), "--tls-cacert: open " + missing},
		{serverFiles(cert, key, notPEM), "--tls-cacert " + notPEM + ": no PEM certificate in it"},
	} {
		if _, err := ServerTLS(tc.f); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ServerTLS(%+v) = %v; want %q", tc.f, err, tc.want)
		}
	}
	for _, tc := range []struct {
		f    TLSFiles
		want string
	}{
		{clientFiles(cert, key, ""), "--buildkit-tls-cacert is required"},
		{clientFiles(cert, "", ca.file), "--buildkit-tls-cert and --buildkit-tls-key go together"},
		{clientFiles("", "", notPEM), "no PEM certificate in it"},
		{clientFiles(cert, otherKey, ca.file), "private key does not match public key"},
	} {
		if _, err := ClientTLS(tc.f); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ClientTLS(%+v) = %v; want %q", tc.f, err, tc.want)
		}
	}
}

// TestServeTLSTenants: over TLS a client is its certificate. One the
// --allow-subject patterns do not match fails its handshake; two admitted
// certificates are two clients: one's build is not the other's.
func TestServeTLSTenants(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	srvCert, srvKey := ca.issue(t, dir, "gateway", true)
	be := startBackend(t)
	cc, err := Dial(be.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	cfg, err := ServerTLS(serverFiles(srvCert, srvKey, ca.file))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var sb strings.Builder
	log := slog.New(slog.NewJSONHandler(&lockedWriter{w: &sb, mu: &mu}, nil))
	admit := Admission{Subjects: []string{"ci-*", "spiffe://example.org/builders/**"}}
	if err := admit.Validate(); err != nil {
		t.Fatal(err)
	}
	s := New(cc, NewDecider(testVerifier(t), fakeEndpoint{}, log), log, WithTLS(cfg), WithAdmission(admit))
	s.awaitOpen = 200 * time.Millisecond
	l, err := Listen("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Shutdown(context.Background()) })

	dial := func(cn string) *grpc.ClientConn {
		cert, key := ca.issue(t, dir, cn, false)
		c, err := ClientTLS(TLSFiles{Cert: cert, Key: key, CA: ca.file, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient("passthrough:///"+l.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(c)), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	invoke := func(conn *grpc.ClientConn, ctx context.Context, method string, req []byte) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		f, resp := frame(req), frame{}
		return conn.Invoke(ctx, method, &f, &resp)
	}
	victim, attacker, outsider := dial("ci-main"), dial("ci-pr-42"), dial("pr-job")
	if err := invoke(outsider, t.Context(), listWorkers, nil); status.Code(err) != codes.Unavailable {
		t.Errorf("a certificate no pattern matches: %v; want refused at the handshake", err)
	}
	mu.Lock()
	if !strings.Contains(sb.String(), `"msg":"connection refused","client":"cn=pr-job"`) {
		t.Errorf("refusal not logged:\n%s", sb.String())
	}
	mu.Unlock()
	if err := invoke(victim, t.Context(), mStatus, tagBytes(statusRef, []byte("build-main"))); err != nil {
		t.Fatalf("victim's Status: %v", err)
	}
	if err := invoke(attacker, buildCtx(t.Context(), "build-main"), bridgeReturn, nil); status.Code(err) != codes.PermissionDenied {
		t.Errorf("another certificate's Return in the build: %v; want PermissionDenied", err)
	}
	if err := invoke(victim, buildCtx(t.Context(), "build-main"), bridgeReturn, nil); err != nil {
		t.Errorf("the build's own Return: %v", err)
	}
}
