package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// DefaultListen is where the gateway listens by default.
const DefaultListen = "unix:///run/trustcache/buildkitd.sock"

// Listen listens on addr. unix://PATH: the socket is made with mode 0660
// (owner and group: give the builders' group access with chown), its
// directory, if missing, with 0755; a stale socket nobody answers on is
// replaced, one in use is an error. tcp://HOST:PORT: served only with TLS
// and client certificates (WithTLS; Serve refuses it otherwise).
func Listen(addr string) (net.Listener, error) {
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", addr, err)
	}
	switch u.Scheme {
	case "unix":
	case "tcp":
		if u.Host == "" || u.Path != "" {
			return nil, fmt.Errorf("listen address %q: want tcp://HOST:PORT", addr)
		}
		l, err := net.Listen("tcp", u.Host)
		if err != nil {
			return nil, fmt.Errorf("listen address %q: %w", addr, err)
		}
		return l, nil
	default:
		return nil, fmt.Errorf("listen address %q: want unix://PATH or tcp://HOST:PORT", addr)
	}
	path := u.Path
	if path == "" {
		path = u.Opaque
	}
	if path == "" {
		return nil, fmt.Errorf("listen address %q: no socket path", addr)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("listen address %q: %w", addr, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listen address %q: %s exists and is not a socket", addr, path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen address %q: something already listens on %s", addr, path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listen address %q: removing the stale socket: %w", addr, err)
		}
	}
	// The socket is made under a temporary name, given its mode, then
	// renamed: it is never reachable with the umask's mode.
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp"+strconv.Itoa(os.Getpid()))
	os.Remove(tmp)
	l, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", addr, err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	err = os.Chmod(tmp, 0o660)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("listen address %q: %w", addr, err)
	}
	return &unixListener{UnixListener: ul, path: path}, nil
}

// unixListener removes its socket when closed and gives each connection
// its peer's credentials (see admitListener).
type unixListener struct {
	*net.UnixListener
	path string
}

func (l *unixListener) Accept() (net.Conn, error) {
	c, err := l.AcceptUnix()
	if err != nil {
		return nil, err
	}
	return newPeerConn(c), nil
}

// Addr is the socket's path (not the temporary name it was made under).
func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	if rerr := os.Remove(l.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}

// peerConn is a unix connection whose RemoteAddr is its peer's
// credentials, read when it was accepted.
type peerConn struct {
	*net.UnixConn
	cred *peerCred
	err  error // why cred could not be read
}

func newPeerConn(c *net.UnixConn) *peerConn {
	cred, err := peerCredOf(c)
	return &peerConn{UnixConn: c, cred: cred, err: err}
}

func (c *peerConn) RemoteAddr() net.Addr {
	if c.cred == nil {
		return c.UnixConn.RemoteAddr()
	}
	return c.cred
}
