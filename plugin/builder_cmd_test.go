package plugin

import (
	"slices"
	"strings"
	"testing"
)

func TestParseAllow(t *testing.T) {
	t.Parallel()
	uids, gids, err := parseAllow([]string{"1001", "uid:1002,gid:50", "user:root", "group:root"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(uids, []uint32{1001, 1002, 0}) || !slices.Equal(gids, []uint32{50, 0}) {
		t.Errorf("uids %v gids %v", uids, gids)
	}
	for _, bad := range []string{"uid:x", "pid:1", "-1", "uid:4294967296", "user:no-such-user-here"} {
		if _, _, err := parseAllow([]string{bad}); err == nil || !strings.Contains(err.Error(), "--allow") {
			t.Errorf("parseAllow(%q) = %v, want an --allow error", bad, err)
		}
	}
}
