package trustedbuilder

import (
	"math/bits"
	"os"
	"strconv"
	"strings"
)

// privilegedArgs are the docker run flags that let buildkitd run its own
// containers: --privileged, as buildx's docker-container driver runs it.
var privilegedArgs = []string{"--privileged"}

// boundedArgs are the flags used instead when the engine cannot start a
// privileged container because its host lacks a capability (a sandboxed
// machine whose bounding set is not full: runc fails with "unable to apply
// caps"): every capability the host has, no seccomp or AppArmor profile,
// /proc unmasked, and the host's cgroup tree writable (buildkitd's runc
// makes a cgroup per step), which is what --privileged gives otherwise.
// The engine must run on this host (a builder's gateway socket is a
// bind-mounted host directory anyway), whose bounding set this process
// reads.
func boundedArgs() ([]string, []string, bool) {
	missing := missingCaps()
	if missing == nil {
		return nil, nil, false
	}
	args := []string{"--cap-add", "ALL",
		"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
		"--security-opt", "systempaths=unconfined", "-v", "/sys/fs/cgroup:/sys/fs/cgroup"}
	for _, c := range missing {
		args = append(args, "--cap-drop", c)
	}
	return args, missing, true
}

// capNames are the capabilities by bit number (linux/capability.h).
var capNames = []string{"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
	"SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
	"IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE",
	"AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
	"BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE"}

// missingCaps returns the capabilities below the highest one this
// process's bounding set has that it lacks; nil when it cannot tell or
// lacks none.
func missingCaps() []string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil
	}
	return missingFromStatus(string(data))
}

func missingFromStatus(status string) []string {
	for _, line := range strings.Split(status, "\n") {
		v, ok := strings.CutPrefix(line, "CapBnd:")
		if !ok {
			continue
		}
		set, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil || set == 0 {
			return nil
		}
		var out []string
		for b := 0; b < bits.Len64(set) && b < len(capNames); b++ {
			if set&(1<<b) == 0 {
				out = append(out, capNames[b])
			}
		}
		return out
	}
	return nil
}
