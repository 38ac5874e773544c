package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSFiles names the PEM files of one side of a mutual TLS connection, and
// the flags they came from (for errors).
type TLSFiles struct {
	Cert, Key, CA             string // file paths
	CertFlag, KeyFlag, CAFlag string // flag names, e.g. "--tls-cert"
	// ServerName is the name the server's certificate must carry (client
	// side only); "" means the host of the address dialled.
	ServerName string
}

// Set reports whether any file is named.
func (f TLSFiles) Set() bool { return f.Cert != "" || f.Key != "" || f.CA != "" }

// complete checks that all three files are named.
func (f TLSFiles) complete() error {
	var missing []string
	for _, m := range []struct{ v, flag string }{{f.Cert, f.CertFlag}, {f.Key, f.KeyFlag}, {f.CA, f.CAFlag}} {
		if m.v == "" {
			missing = append(missing, m.flag)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("mutual TLS needs %s, %s and %s: %v missing", f.CertFlag, f.KeyFlag, f.CAFlag, missing)
	}
	return nil
}

// load reads the key pair and the CA pool.
func (f TLSFiles) load() (tls.Certificate, *x509.CertPool, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("%s %s / %s %s: %w", f.CertFlag, f.Cert, f.KeyFlag, f.Key, err)
	}
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("%s: %w", f.CAFlag, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return tls.Certificate{}, nil, fmt.Errorf("%s %s: no PEM certificate in it", f.CAFlag, f.CA)
	}
	return cert, pool, nil
}

// ServerTLS is the gateway's TLS configuration for listening on tcp://, as
// buildkitd's --tlscert/--tlskey/--tlscacert: every client must present a
// certificate the CA signed.
func ServerTLS(f TLSFiles) (*tls.Config, error) {
	if err := f.complete(); err != nil {
		return nil, err
	}
	cert, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// ClientTLS is the gateway's TLS configuration for a buildkitd on tcp://
// with TLS, as buildctl's --tlscacert/--tlscert/--tlskey/--tlsservername:
// the CA is required; a client certificate when buildkitd asks for one.
func ClientTLS(f TLSFiles) (*tls.Config, error) {
	if f.CA == "" {
		return nil, fmt.Errorf("%s is required with %s/%s: the CA that signed buildkitd's certificate", f.CAFlag, f.CertFlag, f.KeyFlag)
	}
	if (f.Cert == "") != (f.Key == "") {
		return nil, errors.New(f.CertFlag + " and " + f.KeyFlag + " go together")
	}
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.CAFlag, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it", f.CAFlag, f.CA)
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: f.ServerName, MinVersion: tls.VersionTLS12}
	if f.Cert != "" {
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("%s %s / %s %s: %w", f.CertFlag, f.Cert, f.KeyFlag, f.Key, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
