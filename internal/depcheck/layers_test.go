package depcheck

import (
	"slices"
	"strings"
	"testing"
)

// The layers, bottom up, as the folder names show them:
//
//	keys, internal/<plumbing>   key material; storage, transport, formats
//	verify/trustpolicy          the policy model (files only, no network)
//	verify                      the verifier
//	verify/decision             the verdict → cache action table
//	internal/app/...            the applications: the gateway, the trusted
//	                            builder, the build and bake pipeline
//	plugin, cmd                 the command layer and the binary
//
// A package imports only from its own layer or below.

// TestDecisionImporters: the decision vocabulary is the applications':
// only the command layer and the applications (the gateway, the build and
// bake pipeline) decide what becomes of a cache import.
func TestDecisionImporters(t *testing.T) {
	const decision = module + "/verify/decision"
	allowed := []string{module + "/plugin", module + "/internal/app/gateway", module + "/internal/app/pipeline"}
	for pkg, imps := range imports(t) {
		if slices.Contains(imps, decision) && !slices.Contains(allowed, pkg) {
			t.Errorf("%s imports %s; only %s may", pkg, decision, strings.Join(allowed, ", "))
		}
	}
}

// TestApplicationsOnTop: nothing below the applications imports them or
// the command layer: verify, keys and the plumbing under internal/ stand
// without internal/app/... and plugin.
func TestApplicationsOnTop(t *testing.T) {
	app, plugin := module+"/internal/app/", module+"/plugin"
	for pkg, imps := range imports(t) {
		if strings.HasPrefix(pkg, app) || pkg == plugin || strings.HasPrefix(pkg, module+"/cmd/") || strings.HasPrefix(pkg, module+"/e2e") {
			continue
		}
		for _, imp := range imps {
			if strings.HasPrefix(imp, app) || imp == plugin {
				t.Errorf("%s imports %s: a library below the applications imports an application", pkg, imp)
			}
		}
	}
}

// TestPolicyModelBelowVerifier: the policy model imports neither the
// verifier nor the decision table above it.
func TestPolicyModelBelowVerifier(t *testing.T) {
	for _, imp := range imports(t)[module+"/verify/trustpolicy"] {
		if imp == module+"/verify" || strings.HasPrefix(imp, module+"/verify/") {
			t.Errorf("verify/trustpolicy imports %s, a layer above it", imp)
		}
	}
}
