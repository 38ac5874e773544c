package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// Set by "make release-check"; without -dist, TestRelease is skipped.
var (
	releaseDist      = flag.String("dist", "", "directory of a `make release` to check")
	releasePlatforms = flag.String("platforms", "", "space-separated GOOS/GOARCH pairs the release must hold")
	releaseVersion   = flag.String("version", "", "version every release binary must be stamped with")
)

// releaseFile is the name "make release" gives the binary for goos/goarch.
func releaseFile(goos, goarch string) string {
	name := "docker-trustcache-" + goos + "-" + goarch
	if goos == "windows" {
		name += ".exe"
	}
	return name
}

// TestRelease checks a "make release" directory as a user receives it:
// exactly one binary per platform and a checksum for each; every binary is
// an executable for its platform, built static and -trimpath from this
// command with the version stamped; the host's binary reports that version
// in its plugin metadata and in --version.
func TestRelease(t *testing.T) {
	if *releaseDist == "" {
		t.Skip("no -dist: run by make release-check")
	}
	if *releasePlatforms == "" || *releaseVersion == "" {
		t.Fatal("-dist needs -platforms and -version")
	}
	want := []string{"checksums.txt"}
	for _, p := range strings.Fields(*releasePlatforms) {
		goos, goarch, ok := strings.Cut(p, "/")
		if !ok {
			t.Fatalf("-platforms: %q is not GOOS/GOARCH", p)
		}
		want = append(want, releaseFile(goos, goarch))
		t.Run(p, func(t *testing.T) {
			checkReleaseBinary(t, filepath.Join(*releaseDist, releaseFile(goos, goarch)), goos, goarch, *releaseVersion)
		})
	}

	entries, err := os.ReadDir(*releaseDist)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s holds %q; want %q", *releaseDist, got, want)
	}

	sums := readChecksums(t, filepath.Join(*releaseDist, "checksums.txt"))
	var summed []string
	for name, sum := range sums {
		summed = append(summed, name)
		if got := fileSHA256(t, filepath.Join(*releaseDist, name)); got != sum {
			t.Errorf("checksums.txt: %s: sha256 %s; the file's is %s", name, sum, got)
		}
	}
	slices.Sort(summed)
	if want := slices.DeleteFunc(want, func(n string) bool { return n == "checksums.txt" }); !slices.Equal(summed, want) {
		t.Errorf("checksums.txt lists %q; want %q", summed, want)
	}
}

// checkReleaseBinary checks one release binary; the host's one is also run.
func checkReleaseBinary(t *testing.T, path, goos, goarch, version string) {
	t.Helper()
	if fi, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if fi.Size() == 0 {
		t.Fatalf("%s is empty", path)
	}
	if err := checkExecutable(path, goos, goarch); err != nil {
		t.Errorf("%s: %v", path, err)
	}

	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the Go build information of %s: %v", path, err)
	}
	if want := "github.com/docker-trustcache/docker-trustcache/cmd/docker-trustcache"; bi.Path != want {
		t.Errorf("%s: built from %q; want %q", path, bi.Path, want)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	for key, want := range map[string]string{
		"GOOS": goos, "GOARCH": goarch, "CGO_ENABLED": "0", "-trimpath": "true",
		"-tags": "grpcnotrace", // the Makefile's TAGS: start-up (docs/performance.md)
	} {
		if got := settings[key]; got != want {
			t.Errorf("%s: build setting %s = %q; want %q", path, key, got, want)
		}
	}

	// The host's binary is run; of the others, which cannot be, the stamped
	// string must at least be in them (-trimpath keeps -ldflags out of the
	// build information).
	if goos == runtime.GOOS && goarch == runtime.GOARCH {
		checkVersion(t, path, version)
	} else if data, err := os.ReadFile(path); err != nil {
		t.Fatal(err)
	} else if !bytes.Contains(data, []byte(version)) {
		t.Errorf("%s: version %q is not in the binary; want it stamped", path, version)
	}
}

// checkExecutable says whether path is an executable for goos/goarch, and
// for Linux, whether it is static: no dynamic loader to run it (macOS and
// Windows have no static executables; Go links their system libraries
// without cgo).
func checkExecutable(path, goos, goarch string) error {
	switch goos {
	case "linux":
		f, err := elf.Open(path)
		if err != nil {
			return fmt.Errorf("not a ELF executable: %w", err)
		}
		defer f.Close()
		machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[goarch]
		if f.Machine != machine || f.Type != elf.ET_EXEC {
			return fmt.Errorf("ELF %v %v; want %v %v", f.Type, f.Machine, elf.ET_EXEC, machine)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				return fmt.Errorf("dynamically linked (%v): want a static executable", p.Type)
			}
		}
	case "darwin":
		f, err := macho.Open(path)
		if err != nil {
			return fmt.Errorf("not a Mach-O executable: %w", err)
		}
		defer f.Close()
		cpu := map[string]macho.Cpu{"amd64": macho.CpuAmd64, "arm64": macho.CpuArm64}[goarch]
		if f.Cpu != cpu || f.Type != macho.TypeExec {
			return fmt.Errorf("Mach-O %v %v; want %v %v", f.Type, f.Cpu, macho.TypeExec, cpu)
		}
	case "windows":
		f, err := pe.Open(path)
		if err != nil {
			return fmt.Errorf("not a PE executable: %w", err)
		}
		defer f.Close()
		machine := map[string]uint16{"amd64": pe.IMAGE_FILE_MACHINE_AMD64, "arm64": pe.IMAGE_FILE_MACHINE_ARM64}[goarch]
		if f.Machine != machine || f.Characteristics&pe.IMAGE_FILE_EXECUTABLE_IMAGE == 0 {
			return fmt.Errorf("PE machine %#x, characteristics %#x; want an executable for machine %#x",
				f.Machine, f.Characteristics, machine)
		}
	default:
		return fmt.Errorf("no check for %s executables", goos)
	}
	return nil
}

// readChecksums reads a sha256sum file: name → hex digest.
func readChecksums(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		// "<64 hex>  <name>": two spaces, or " *" before a name read in binary mode.
		sum, name, ok := strings.Cut(sc.Text(), " ")
		name, _ = strings.CutPrefix(strings.TrimPrefix(name, " "), "*")
		if _, err := hex.DecodeString(sum); !ok || err != nil || len(sum) != 2*sha256.Size || name == "" {
			t.Fatalf("%s:%d: %q is not a sha256sum line", path, n, sc.Text())
		}
		sums[name] = sum
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sums
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
