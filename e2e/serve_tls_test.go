//go:build e2e

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// tlsPair writes a certificate for cn signed by ca (self-signed when ca
// is nil) and its key, and returns their files and the parsed pair.
func tlsPair(t *testing.T, dir, cn string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, isCA, server bool) (certFile, keyFile string, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sn, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: sn, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	switch {
	case isCA:
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	case server:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	default:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca, caKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, cn+".pem"), filepath.Join(dir, cn+"-key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile, cert, key
}

// TestServeTLS: the gateway on tcp:// with mutual TLS; buildctl with a
// client certificate builds through it (its imports decided, the log
// naming the certificate); without one it is refused.
func TestServeTLS(t *testing.T) {
	e := trustEnv(t)
	buildctl := filepath.Join(filepath.Dir(cfg.buildx), "buildctl")
	if _, err := os.Stat(buildctl); err != nil {
		t.Skipf("no buildctl at %s", buildctl)
	}
	dir := filepath.Join(e.dir, "tls")
	os.MkdirAll(dir, 0o700)
	caFile, _, ca, caKey := tlsPair(t, dir, "ca", nil, nil, true, false)
	srvCert, srvKey, _, _ := tlsPair(t, dir, "gateway", ca, caKey, false, true)
	cliCert, cliKey, _, _ := tlsPair(t, dir, "ci-runner", ca, caKey, false, false)

	e.genKey(t, "builder-a")
	repo := uniqueRepo(t)
	policy := e.writePolicy(t, "tls.yaml", []builder{{"builder-a", []string{filepath.Join(e.dir, "builder-a.pub")}}}, []scope{{repos: []string{repo}, builders: []string{"builder-a"}}})
	gw := e.startGatewayOn(t, policy, cfg.buildkitAddr, "gw-tls", "--listen", "tcp://127.0.0.1:0",
		"--tls-cert", srvCert, "--tls-key", srvKey, "--tls-cacert", caFile)
	m := regexp.MustCompile(`"address":"(127\.0\.0\.1:[0-9]+)","tls":true`).FindStringSubmatch(gw.log.String())
	if m == nil {
		t.Fatalf("the gateway's serving line lacks its tcp address and tls:\n%s", gw.log)
	}
	addr := "tcp://" + m[1]

	ctx := e.nonceProject(t, "tls-project", "FROM %BASE%\nRUN echo tls-%NONCE% > /result.txt\n")
	unsigned := repo + ":unsigned"
	args := []string{"--addr", addr, "--tlscacert", caFile, "--tlscert", cliCert, "--tlskey", cliKey,
		"build", "--frontend", "dockerfile.v0", "--local", "context=" + ctx, "--local", "dockerfile=" + ctx,
		"--opt", "force-network-mode=" + cfg.network, "--import-cache", "type=registry,ref=" + unsigned,
		"--output", "type=local,dest=" + filepath.Join(e.dir, "out-tls")}
	e.run(t, nil, buildctl, args...).must(t)
	if got := readResult(t, filepath.Join(e.dir, "out-tls")); !strings.HasPrefix(got, "tls-") {
		t.Errorf("buildctl over mutual TLS built %q", got)
	}
	lines := gw.decisionLines(unsigned)
	if len(lines) == 0 || !strings.Contains(lines[0], `"action":"dropped"`) || !strings.Contains(lines[0], `,cn=ci-runner"`) {
		t.Errorf("decision lines for %s: %q; want dropped, the client named by its certificate", unsigned, lines)
	}

	// Without a client certificate, or without TLS: refused.
	r := e.run(t, nil, buildctl, "--addr", addr, "--tlscacert", caFile, "--timeout", "5", "debug", "workers")
	if r.code == 0 || !strings.Contains(r.stderr, "failed to list workers") {
		t.Errorf("buildctl without a client certificate: want refused; got %v", r)
	}
	r = e.run(t, nil, buildctl, "--addr", addr, "--timeout", "5", "debug", "workers")
	if r.code == 0 || !strings.Contains(r.stderr, "failed to list workers") {
		t.Errorf("buildctl without TLS: want refused; got %v", r)
	}
}
