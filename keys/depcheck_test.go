package keys

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps package keys light: no CLI packages (the import
// direction is cmd → plugin → verify → keys), and none of cosign's library,
// which would bring rekor, tuf, grpc and their init costs into every start
// of the plugin. Only the non-test imports count.
func TestDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go tool not found: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps .: %v", err)
	}
	forbidden := []string{
		"github.com/spf13/cobra",
		"github.com/docker/cli",
		"github.com/sigstore/",
		"google.golang.org/grpc",
		"github.com/theupdateframework/",
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, prefix := range forbidden {
			if strings.HasPrefix(pkg, prefix) {
				t.Errorf("package keys depends on %s; want no dependency on %s…", pkg, prefix)
			}
		}
	}
}
