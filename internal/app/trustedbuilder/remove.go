package trustedbuilder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Remove removes builder name of configDir: the buildx builder (when it
// still points at the builder's socket), the containers and volumes the
// record names (each only when it carries the builder's label), and the
// builder's directory. It goes on past a step that fails and returns
// every failure: what is left is named, never silently kept.
func Remove(ctx context.Context, d Docker, configDir, name string, progress io.Writer) error {
	rec, err := Load(configDir, name)
	if err != nil {
		return err
	}
	if _, err := d.Ping(ctx); err != nil {
		return err
	}
	var errs []error
	// The buildx builder, only if it is still ours.
	if out, err := d.run(ctx, "buildx", "inspect", name); err == nil {
		if strings.Contains(out, "unix://"+rec.Socket) {
			if _, err := d.run(ctx, "buildx", "rm", name); err != nil {
				errs = append(errs, err)
			} else {
				fmt.Fprintf(progress, "removed buildx builder %s\n", name)
			}
		} else {
			fmt.Fprintf(progress, "kept buildx builder %s: it does not point at this builder's gateway any more\n", name)
		}
	}
	for _, c := range []string{rec.GatewayContainer, rec.BuildkitContainer} {
		if c == "" {
			continue
		}
		if err := removeLabelled(ctx, d, "container", c, name, progress); err != nil {
			errs = append(errs, err)
		}
	}
	for _, v := range rec.Volumes {
		if err := removeLabelled(ctx, d, "volume", v, name, progress); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		errs = append(errs, fmt.Errorf("kept %s so that builder rm %s can be run again", rec.Dir, name))
		return errors.Join(errs...)
	}
	if err := os.RemoveAll(rec.Dir); err != nil {
		return fmt.Errorf("removing %s: %w", rec.Dir, err)
	}
	fmt.Fprintf(progress, "removed %s\n", rec.Dir)
	return nil
}

// removeLabelled removes a container or volume that carries the builder's
// label; one that is gone already is fine, one without the label is not
// ours and is kept (an error).
func removeLabelled(ctx context.Context, d Docker, kind, id, name string, progress io.Writer) error {
	got, err := d.run(ctx, kind, "inspect", "--format", "{{index .Labels \""+Label+"\"}}", id)
	if kind == "container" {
		got, err = d.run(ctx, kind, "inspect", "--format", "{{index .Config.Labels \""+Label+"\"}}", id)
	}
	if err != nil {
		var ce *commandError
		if errors.As(err, &ce) && isNotFound(ce.stderr) {
			return nil
		}
		return err
	}
	if got != name {
		return fmt.Errorf("%s %s is not labelled %s=%s: not removing it", kind, id, Label, name)
	}
	args := []string{"rm", "-f", "-v", id} // -v: its anonymous volumes too (never named ones)
	if kind == "volume" {
		args = []string{"volume", "rm", "-f", id}
	}
	if _, err := d.run(ctx, args...); err != nil {
		return err
	}
	fmt.Fprintf(progress, "removed %s %s\n", kind, id)
	return nil
}
