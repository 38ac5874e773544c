package gateway

import (
	"context"
	"strings"
	"sync"
	"time"
)

// What an owned name is.
type nameKind uint8

const (
	kindBuild   nameKind = iota // a build ID: Control.Solve's Ref, the buildid metadata
	kindSession                 // a session ID: Control.Session's X-Docker-Expose-Session-Uuid
)

func (k nameKind) String() string {
	if k == kindSession {
		return "session"
	}
	return "build"
}

// maxOwnedPerClient bounds the names one client holds. Past it, the
// client's oldest name is let go: a client can only lose its own names, never
// take or push out another's.
const maxOwnedPerClient = 16384

type ownedName struct {
	kind nameKind
	id   string
}

// owners binds each build and session ID to the client that first named
// it, for the life of the gateway. It is safe for concurrent use.
type owners struct {
	mu      sync.Mutex
	owner   map[ownedName]string   // → Identity.Key
	order   map[string][]ownedName // Identity.Key → its names, oldest first
	changed chan struct{}          // closed, and replaced, when a name is bound
}

func newOwners() *owners {
	return &owners{owner: map[ownedName]string{}, order: map[string][]ownedName{}, changed: make(chan struct{})}
}

// claim binds id to who unless a client holds it already, and returns
// its owner: who, or the client that holds it.
func (o *owners) claim(kind nameKind, id, who string) string {
	n := ownedName{kind, id}
	o.mu.Lock()
	defer o.mu.Unlock()
	if cur, ok := o.owner[n]; ok {
		return cur
	}
	o.owner[n] = who
	close(o.changed)
	o.changed = make(chan struct{})
	q := append(o.order[who], n)
	if len(q) > maxOwnedPerClient {
		old := q[0]
		q = q[1:]
		if o.owner[old] == who {
			delete(o.owner, old)
		}
	}
	o.order[who] = q
	return who
}

// ownerOf returns id's owner, "" if no client holds it.
func (o *owners) ownerOf(kind nameKind, id string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.owner[ownedName{kind, id}]
}

// await returns id's owner, waiting up to d for a client to bind it; ""
// if none did.
func (o *owners) await(ctx context.Context, kind nameKind, id string, d time.Duration) string {
	t := time.NewTimer(d)
	defer t.Stop()
	n := ownedName{kind, id}
	for {
		o.mu.Lock()
		cur, ch := o.owner[n], o.changed
		o.mu.Unlock()
		if cur != "" {
			return cur
		}
		select {
		case <-ch:
		case <-t.C:
			return ""
		case <-ctx.Done():
			return ""
		}
	}
}

// sessionLookup is the session a reference names, as BuildKit's session
// manager looks it up (session.Manager.Get): the part after the first
// colon when there is one ("prefix:ID" names ID).
func sessionLookup(ref string) string {
	if _, id, ok := strings.Cut(ref, ":"); ok && id != "" {
		return id
	}
	return ref
}
