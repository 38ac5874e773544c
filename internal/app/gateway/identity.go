package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Identity is who a client is. Builds and sessions belong to the
// identity that first named them (see owners): every connection of one
// client has the same Key.
type Identity struct {
	// Key tells clients apart: "uid:N" on a unix socket (a buildx build
	// uses several connections and processes of one user), "cert:…" over
	// TLS (the verified certificate's issuer, subject and SANs).
	Key string
	// Name names the caller in the log: "pid=…,uid=…,gid=…" on a unix
	// socket, "ADDR,cn=…" over TLS.
	Name string
}

// IdentifyFunc tells who the caller of a call is (ctx is the call's).
type IdentifyFunc func(ctx context.Context) (Identity, error)

// peerCred is the process at the other end of a unix socket, as the
// kernel reported it when it connected: a connection's RemoteAddr.
type peerCred struct {
	pid      int32
	uid, gid uint32
	groups   []uint32 // supplementary groups
}

func (c *peerCred) Network() string { return "unix" }
func (c *peerCred) String() string {
	return fmt.Sprintf("pid=%d,uid=%d,gid=%d", c.pid, c.uid, c.gid)
}

// identify is the default IdentifyFunc: a unix socket client by its peer
// credentials, a TLS client by its verified certificate. A client it
// cannot tell apart is refused.
func identify(ctx context.Context) (Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return Identity{}, errors.New("no peer")
	}
	if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
		if len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
			return Identity{}, errors.New("no verified client certificate")
		}
		leaf := ti.State.VerifiedChains[0][0]
		return Identity{Key: certKey(leaf), Name: p.Addr.String() + ",cn=" + leaf.Subject.CommonName}, nil
	}
	if c, ok := p.Addr.(*peerCred); ok {
		return Identity{Key: "uid:" + strconv.FormatUint(uint64(c.uid), 10), Name: c.String()}, nil
	}
	return Identity{}, fmt.Errorf("client %s has neither peer credentials nor a verified certificate", p.Addr)
}

// certKey is a certificate's identity: the same for a certificate renewed
// with the same names by the same CA.
func certKey(c *x509.Certificate) string {
	return "cert:" + c.Issuer.String() + "|" + c.Subject.String() + "|" + strings.Join(certNames(c), ",")
}

// certNames are the names a subject pattern is matched against: the
// subject's CN and every SAN.
func certNames(c *x509.Certificate) []string {
	var out []string
	if c.Subject.CommonName != "" {
		out = append(out, c.Subject.CommonName)
	}
	out = append(out, c.DNSNames...)
	out = append(out, c.EmailAddresses...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return out
}

// Admission says which clients may build on the gateway. A client it
// does not admit is refused at connection: its connection is closed (unix)
// or its TLS handshake fails, before any call is read.
type Admission struct {
	// UIDs and GIDs admit a unix socket client whose uid is listed, or
	// whose gid or one of its supplementary groups is.
	UIDs, GIDs []uint32
	// Subjects admits a TLS client whose certificate's subject CN or one
	// of its SANs matches one of these glob patterns (doublestar: * stops
	// at /, ** does not). None: every certificate the CA signed.
	Subjects []string
}

// DefaultAdmission admits, on a unix socket, the user running the gateway
// and root; over TLS every certificate the CA signed.
func DefaultAdmission() Admission {
	uids := []uint32{uint32(os.Getuid())}
	if uids[0] != 0 {
		uids = append(uids, 0)
	}
	return Admission{UIDs: uids}
}

// Validate checks the subject patterns.
func (a Admission) Validate() error {
	for _, p := range a.Subjects {
		if p == "" || !doublestar.ValidatePattern(p) {
			return fmt.Errorf("subject pattern %q is not a valid glob", p)
		}
	}
	return nil
}

// admitPeer reports whether a unix socket client is admitted.
func (a Admission) admitPeer(c *peerCred) bool {
	if slices.Contains(a.UIDs, c.uid) || slices.Contains(a.GIDs, c.gid) {
		return true
	}
	return slices.ContainsFunc(c.groups, func(g uint32) bool { return slices.Contains(a.GIDs, g) })
}

// admitCert reports whether a TLS client's certificate is admitted.
func (a Admission) admitCert(c *x509.Certificate) bool {
	if len(a.Subjects) == 0 {
		return true
	}
	for _, n := range certNames(c) {
		for _, p := range a.Subjects {
			if ok, _ := doublestar.Match(p, n); ok {
				return true
			}
		}
	}
	return false
}

// admitTLS returns cfg with a check of the client's certificate against
// a: a client it does not admit fails the handshake.
func admitTLS(cfg *tls.Config, a Admission, log *slog.Logger) *tls.Config {
	cfg = cfg.Clone()
	prev := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if prev != nil {
			if err := prev(cs); err != nil {
				return err
			}
		}
		if len(cs.PeerCertificates) == 0 {
			return errors.New("trustcache gateway: no client certificate")
		}
		leaf := cs.PeerCertificates[0]
		if !a.admitCert(leaf) {
			log.Warn("connection refused", slog.String("client", "cn="+leaf.Subject.CommonName), slog.Any("names", certNames(leaf)),
				slog.String("reason", "the certificate's subject matches no --allow-subject pattern"))
			return fmt.Errorf("trustcache gateway: certificate %q is not admitted: its subject and SANs match no allowed pattern", leaf.Subject.CommonName)
		}
		return nil
	}
	return cfg
}

// admitListener accepts only the unix socket clients a admits; the others
// are logged and their connections closed. Every connection it returns
// has the peer's credentials as its RemoteAddr.
type admitListener struct {
	net.Listener
	a   Admission
	log *slog.Logger
}

func (l *admitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		var pc *peerConn
		switch c := c.(type) {
		case *peerConn:
			pc = c
		case *net.UnixConn:
			pc = newPeerConn(c)
		default:
			return c, nil // tcp: the TLS handshake admits (admitTLS)
		}
		if pc.err != nil {
			l.log.Warn("connection refused", slog.String("client", "unknown"), slog.String("reason", "no peer credentials: "+pc.err.Error()))
			pc.Close()
			continue
		}
		if !l.a.admitPeer(pc.cred) {
			l.log.Warn("connection refused", slog.String("client", pc.cred.String()),
				slog.String("reason", "neither its uid nor its groups are allowed (--allow-uid, --allow-gid)"))
			pc.Close()
			continue
		}
		return pc, nil
	}
}
