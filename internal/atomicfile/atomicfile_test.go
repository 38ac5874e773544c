package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "report.json")
	for _, data := range []string{"one", "two"} {
		if err := Write(path, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != data {
			t.Fatalf("read %q, %v; want %q", got, err, data)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v; want 0640", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".report.json.tmp*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if err := Write(filepath.Join(path, "below-a-file"), nil, 0o600); err == nil {
		t.Error("Write under a regular file succeeded")
	}
}

func TestWriteNewNeverOverwrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := WriteNew(path, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := WriteNew(path, []byte("second"), 0o600)
	if !errors.Is(err, fs.ErrExist) || !IsCreateError(err) {
		t.Fatalf("second WriteNew: %v; want a create error for an existing file", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "first" {
		t.Errorf("file now %q; WriteNew overwrote it", got)
	}
	err = WriteNew(filepath.Join(t.TempDir(), "missing", "x"), nil, 0o600)
	if err == nil || !IsCreateError(err) || errors.Is(err, fs.ErrExist) {
		t.Errorf("WriteNew in a missing directory: %v; want a create error", err)
	}
}
