package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

func newDiffCommand(g *globals) *cobra.Command {
	var revision string
	cmd := &cobra.Command{
		Use:   "diff [PATH]",
		Short: "Show what the server would do with a working tree: the plan a pull request makes",
		Long: `diff sends the repository at PATH (default .) to tink-server, which plans it
against its live state with the same code a sync runs, and prints the plan:
what happens (workflows that start, machines that are power-cycled,
objects removed), then each change with the fields it touches. Nothing is
written.

-o markdown is ready to post as a pull-request comment.

Exit status: 0 no changes, 1 changes, 2 errors (the repository's
validation errors included, printed as file:line:column: field: message).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			format, err := g.formatFor("text", "text", "markdown", "json", "yaml")
			if err != nil {
				return err
			}
			archive, err := packRepository(dir)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.Plan(cmd.Context(), bytes.NewReader(archive), revision)
			if err != nil {
				failed(cmd, err)
				return exitError{code: 2}
			}
			out := cmd.OutOrStdout()
			switch format {
			case "json", "yaml":
				if err := printData(out, format, res); err != nil {
					return err
				}
			case "markdown":
				if len(res.Errors) > 0 {
					fmt.Fprintf(out, "### tinkops: the repository has %d error(s)\n\n", len(res.Errors))
					for _, e := range res.Errors {
						fmt.Fprintf(out, "- `%s`\n", e.Error())
					}
				} else {
					fmt.Fprint(out, res.Markdown)
				}
			default:
				for _, e := range res.Errors {
					fmt.Fprintln(out, e.Error())
				}
				fmt.Fprint(out, res.Text)
			}
			switch {
			case len(res.Errors) > 0:
				if format == "text" || format == "markdown" {
					fmt.Fprintf(cmd.ErrOrStderr(), "%d error(s)\n", len(res.Errors))
				}
				return exitError{code: 2}
			case res.Blocked != "":
				return exitError{code: 2}
			case !res.Empty:
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&revision, "revision", "", "name for the plan's revision (e.g. the pull request's commit)")
	return cmd
}

// maxArchive bounds what diff sends (the server's limit).
const maxArchive = 64 << 20

// packRepository packs the files schema.Load reads (.yaml, .yml, .json,
// .cue; hidden directories and cue.mod left out) into a gzipped tar.
func packRepository(dir string) ([]byte, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("read repository: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("read repository: %s is not a directory", dir)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(name, ".") || name == "cue.mod") {
				return filepath.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(name)) {
		case ".yaml", ".yml", ".json", ".cue":
		default:
			return nil
		}
		if strings.HasPrefix(name, ".") || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
		if buf.Len() > maxArchive {
			return fmt.Errorf("the repository is larger than %d MiB compressed", maxArchive>>20)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read repository: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
