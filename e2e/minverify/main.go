// Command minverify is the start-up baseline of e2e/bench.sh: the least a Go
// program does to verify one cosign key signature of a tag with
// go-containerregistry (resolve the tag, read its ".sig" manifest, check
// one ECDSA signature over the simple-signing payload and the digest it
// names), with no policy, no ledger and no docker CLI plugin framework.
// It is a measuring stick, not a verifier to use: it checks nothing else.
//
//	minverify KEY.pub REGISTRY/REPO:TAG
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: minverify KEY.pub REF")
		os.Exit(2)
	}
	if err := verify(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "minverify:", err)
		os.Exit(1)
	}
	fmt.Println("verified")
}

func verify(keyFile, ref string) error {
	pemBytes, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return fmt.Errorf("%s: no PEM block", keyFile)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return err
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("%s: not an ECDSA key", keyFile)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	desc, err := remote.Head(r)
	if err != nil {
		return err
	}
	sigTag := r.Context().Tag(strings.Replace(desc.Digest.String(), ":", "-", 1) + ".sig")
	raw, err := remote.Get(sigTag)
	if err != nil {
		return err
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw.Manifest, &m); err != nil {
		return err
	}
	for _, l := range m.Layers {
		sig, err := base64.StdEncoding.DecodeString(l.Annotations["dev.cosignproject.cosign/signature"])
		if err != nil {
			continue
		}
		payload := l.Data
		if h := sha256.Sum256(payload); len(payload) == 0 || fmt.Sprintf("sha256:%x", h) != l.Digest.String() {
			blob, err := remote.Layer(r.Context().Digest(l.Digest.String()))
			if err != nil {
				return err
			}
			rc, err := blob.Compressed()
			if err != nil {
				return err
			}
			payload, err = io.ReadAll(io.LimitReader(rc, 1<<16))
			rc.Close()
			if err != nil {
				return err
			}
		}
		h := sha256.Sum256(payload)
		if !ecdsa.VerifyASN1(pub, h[:], sig) {
			continue
		}
		var p struct {
			Critical struct {
				Image struct {
					Digest string `json:"docker-manifest-digest"`
				} `json:"image"`
			} `json:"critical"`
		}
		if err := json.NewDecoder(bytes.NewReader(payload)).Decode(&p); err == nil && p.Critical.Image.Digest == desc.Digest.String() {
			return nil
		}
	}
	return errors.New("no valid signature")
}
