package gateway

import (
	"fmt"
	"net"
	"syscall"
)

// peerAddr names the process at the other end of c: its pid and uid.
func peerAddr(c *net.UnixConn) net.Addr {
	rc, err := c.SyscallConn()
	if err != nil {
		return c.RemoteAddr()
	}
	var cred *syscall.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return c.RemoteAddr()
	}
	return processAddr(fmt.Sprintf("pid=%d,uid=%d", cred.Pid, cred.Uid))
}
