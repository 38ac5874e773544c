//go:build !linux

package gateway

import (
	"errors"
	"net"
)

// peerCredOf fails: the gateway tells unix socket clients apart by
// SO_PEERCRED, which only Linux has here; it refuses them elsewhere.
func peerCredOf(c *net.UnixConn) (*peerCred, error) {
	return nil, errors.New("peer credentials of a unix socket client are read on Linux only")
}
