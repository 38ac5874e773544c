//go:build !linux

package gateway

import "net"

// peerAddr names the other end of c.
func peerAddr(c *net.UnixConn) net.Addr { return c.RemoteAddr() }
