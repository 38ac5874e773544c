package gateway

import (
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// names are the build and the sessions a request names: what the
// gateway checks against the caller (see methods.go).
type names struct {
	build    string   // the build ID it opens or names, "" if none
	sessions []string // session IDs it names, as buildkitd looks them up
}

// Field numbers of what names a build or a session (BuildKit v0.34.2's
// control.proto, gateway.proto, ops.proto, policy.proto).
const (
	// moby.buildkit.v1.SolveRequest
	ctlSolveRef                 protowire.Number = 1
	ctlSolveDefinition          protowire.Number = 2
	ctlSolveSession             protowire.Number = 5
	ctlSolveFrontendAttrs       protowire.Number = 7
	ctlSolveFrontendInputs      protowire.Number = 10
	ctlSolveSourcePolicy        protowire.Number = 12
	ctlSolveSourcePolicySession protowire.Number = 15
	// moby.buildkit.v1.frontend.SolveRequest
	brSolveDefinition     protowire.Number = 1
	brSolveFrontendOpt    protowire.Number = 3
	brSolveFrontendInputs protowire.Number = 13
	brSolveSourcePolicies protowire.Number = 15
	// moby.buildkit.v1.frontend.ResolveImageConfigRequest
	resolveImageSessionID      protowire.Number = 6
	resolveImageSourcePolicies protowire.Number = 8
	// moby.buildkit.v1.frontend.ResolveSourceMetaRequest
	resolveSourceSource   protowire.Number = 1
	resolveSourcePolicies protowire.Number = 8
	// StatusRequest.Ref, UpdateBuildHistoryRequest.Ref, BuildHistoryRequest.Ref
	statusRef        protowire.Number = 1
	updateHistoryRef protowire.Number = 1
	historyReqRef    protowire.Number = 2
	// BuildHistoryEvent.record, BuildHistoryRecord.Ref
	historyEventRecord protowire.Number = 2
	historyRecordRef   protowire.Number = 1
	// pb.Definition.def, pb.Op.source, pb.Op.build, pb.SourceOp.attrs,
	// pb.BuildOp.def
	definitionDef protowire.Number = 1
	opSource      protowire.Number = 3
	opBuild       protowire.Number = 5
	sourceAttrs   protowire.Number = 2
	buildOpDef    protowire.Number = 3
	// sourcepolicy.Policy.rules, Rule.updates, Update.attrs
	policyRules   protowire.Number = 2
	ruleUpdates   protowire.Number = 3
	updateAttrs   protowire.Number = 2
	mapEntryValue protowire.Number = 2
)

// Attributes that name a session: of a source op (pb.AttrLocalSessionID,
// pb.AttrOCILayoutSessionID), and the frontend attribute prefix that
// gives a local its session (dockerui's local-sessionid:NAME).
const (
	attrLocalSession     = "local.session"
	attrOCISession       = "oci.session"
	attrLocalSessionIDPx = "local-sessionid:"
)

// maxDefinitionDepth bounds definitions nested in build ops.
const maxDefinitionDepth = 8

// nameReader collects the names of one request.
type nameReader struct {
	n names
}

func (r *nameReader) session(id string) {
	if id != "" {
		r.n.sessions = append(r.n.sessions, sessionLookup(id))
	}
}

// stringField decodes f, a string field, as buildkitd would.
func stringField(f field, name string) (string, error) {
	if err := bytesField(f, name); err != nil {
		return "", err
	}
	return str(f.val, name)
}

// requestNames returns what req, the first message of a call of method,
// names. Only the methods whose requests name something are decoded (see
// methods); a request that does not decode is refused (MalformedError).
func requestNames(method string, req []byte) (names, error) {
	if len(req) > MaxRequestSize {
		return names{}, malformed("request of %d bytes exceeds %d", len(req), MaxRequestSize)
	}
	fs, err := fields(req)
	if err != nil {
		return names{}, err
	}
	var r nameReader
	for _, f := range fs {
		var err error
		switch method {
		case mControlSolve:
			err = r.controlSolve(f)
		case mBridgeSolve:
			err = r.bridgeSolve(f)
		case mStatus:
			if f.num == statusRef {
				r.n.build, err = stringField(f, "Ref")
			}
		case mUpdateBuildHistory:
			if f.num == updateHistoryRef {
				r.n.build, err = stringField(f, "Ref")
			}
		case mListenBuildHistory:
			if f.num == historyReqRef {
				r.n.build, err = stringField(f, "Ref")
			}
		case mResolveImageConfig:
			switch f.num {
			case resolveImageSessionID:
				var id string
				id, err = stringField(f, "SessionID")
				r.session(id)
			case resolveImageSourcePolicies:
				err = r.policy(f, "SourcePolicies")
			}
		case mResolveSourceMeta:
			switch f.num {
			case resolveSourceSource:
				err = r.sourceOp(f, "Source")
			case resolveSourcePolicies:
				err = r.policy(f, "SourcePolicies")
			}
		}
		if err != nil {
			return names{}, err
		}
	}
	return r.n, nil
}

func (r *nameReader) controlSolve(f field) error {
	switch f.num {
	case ctlSolveRef:
		ref, err := stringField(f, "Ref")
		r.n.build = ref // the last one wins, as in buildkitd
		return err
	case ctlSolveSession, ctlSolveSourcePolicySession:
		id, err := stringField(f, "Session")
		r.session(id)
		return err
	case ctlSolveFrontendAttrs:
		return r.frontendAttr(f, "FrontendAttrs")
	case ctlSolveDefinition:
		return r.definition(f, "Definition", 0)
	case ctlSolveFrontendInputs:
		return r.definitionMapEntry(f, "FrontendInputs")
	case ctlSolveSourcePolicy:
		return r.policy(f, "SourcePolicy")
	}
	return nil
}

func (r *nameReader) bridgeSolve(f field) error {
	switch f.num {
	case brSolveFrontendOpt:
		return r.frontendAttr(f, "FrontendOpt")
	case brSolveDefinition:
		return r.definition(f, "Definition", 0)
	case brSolveFrontendInputs:
		return r.definitionMapEntry(f, "FrontendInputs")
	case brSolveSourcePolicies:
		return r.policy(f, "SourcePolicies")
	}
	return nil
}

// frontendAttr reads one frontend attribute: local-sessionid:NAME names
// a session.
func (r *nameReader) frontendAttr(f field, where string) error {
	if err := bytesField(f, where); err != nil {
		return err
	}
	k, v, err := mapEntry(f.val, where)
	if err != nil {
		return err
	}
	if strings.HasPrefix(string(k), attrLocalSessionIDPx) {
		id, err := str(v, where+"["+string(k)+"]")
		if err != nil {
			return err
		}
		r.session(id)
	}
	return nil
}

// definitionMapEntry reads an entry of a map<string, pb.Definition>.
func (r *nameReader) definitionMapEntry(f field, where string) error {
	if err := bytesField(f, where); err != nil {
		return err
	}
	fs, err := fields(f.val)
	if err != nil {
		return malformed("%s entry: %v", where, err)
	}
	for _, e := range fs {
		if e.num == mapEntryValue {
			if err := r.definition(e, where+" value", 0); err != nil {
				return err
			}
		}
	}
	return nil
}

// definition reads a pb.Definition: every op's source attributes, and the
// definitions of build ops.
func (r *nameReader) definition(f field, where string, depth int) error {
	if err := bytesField(f, where); err != nil {
		return err
	}
	if depth > maxDefinitionDepth {
		return malformed("%s: definitions nested deeper than %d", where, maxDefinitionDepth)
	}
	fs, err := fields(f.val)
	if err != nil {
		return malformed("%s: %v", where, err)
	}
	for _, d := range fs {
		if d.num != definitionDef {
			continue
		}
		if err := bytesField(d, where+".def"); err != nil {
			return err
		}
		ops, err := fields(d.val)
		if err != nil {
			return malformed("%s.def: op: %v", where, err)
		}
		for _, op := range ops {
			switch op.num {
			case opSource:
				if err := r.sourceOp(op, where+".def.source"); err != nil {
					return err
				}
			case opBuild:
				if err := bytesField(op, where+".def.build"); err != nil {
					return err
				}
				bfs, err := fields(op.val)
				if err != nil {
					return malformed("%s.def.build: %v", where, err)
				}
				for _, b := range bfs {
					if b.num == buildOpDef {
						if err := r.definition(b, where+".def.build.def", depth+1); err != nil {
							return err
						}
					}
				}
			}
		}
	}
	return nil
}

// sourceOp reads a pb.SourceOp's attributes.
func (r *nameReader) sourceOp(f field, where string) error {
	if err := bytesField(f, where); err != nil {
		return err
	}
	fs, err := fields(f.val)
	if err != nil {
		return malformed("%s: %v", where, err)
	}
	for _, a := range fs {
		if a.num == sourceAttrs {
			if err := r.sessionAttr(a, where+".attrs"); err != nil {
				return err
			}
		}
	}
	return nil
}

// sessionAttr reads one entry of a source's attributes.
func (r *nameReader) sessionAttr(f field, where string) error {
	if err := bytesField(f, where); err != nil {
		return err
	}
	k, v, err := mapEntry(f.val, where)
	if err != nil {
		return err
	}
	if ks := string(k); ks == attrLocalSession || ks == attrOCISession {
		id, err := str(v, where+"["+ks+"]")
		if err != nil {
			return err
		}
		r.session(id)
	}
	return nil
}

// policy reads a source policy: a CONVERT rule's attributes may name a
// session.
func (r *nameReader) policy(f field, where string) error {
	if err := bytesField(f, where); err != nil {
		return err
	}
	fs, err := fields(f.val)
	if err != nil {
		return malformed("%s: %v", where, err)
	}
	for _, rule := range fs {
		if rule.num != policyRules {
			continue
		}
		if err := bytesField(rule, where+".rules"); err != nil {
			return err
		}
		rfs, err := fields(rule.val)
		if err != nil {
			return malformed("%s.rules: %v", where, err)
		}
		for _, u := range rfs {
			if u.num != ruleUpdates {
				continue
			}
			if err := bytesField(u, where+".rules.updates"); err != nil {
				return err
			}
			ufs, err := fields(u.val)
			if err != nil {
				return malformed("%s.rules.updates: %v", where, err)
			}
			for _, a := range ufs {
				if a.num == updateAttrs {
					if err := r.sessionAttr(a, where+".rules.updates.attrs"); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// historyEventRef returns the build a BuildHistoryEvent is about, "" when
// it names none or does not decode.
func historyEventRef(ev []byte) string {
	fs, err := fields(ev)
	if err != nil {
		return ""
	}
	ref := ""
	for _, f := range fs {
		if f.num != historyEventRecord || f.typ != protowire.BytesType {
			continue
		}
		rfs, err := fields(f.val)
		if err != nil {
			return ""
		}
		for _, rf := range rfs {
			if rf.num == historyRecordRef && rf.typ == protowire.BytesType {
				ref = string(rf.val)
			}
		}
	}
	return ref
}
