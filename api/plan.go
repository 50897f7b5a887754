package api

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/reconciler"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// Planner plans a repository against the store without writing anything:
// reconciler.Reconciler, the same code a sync runs, so `tink diff` on a
// pull request shows exactly what the server will do when it merges.
type Planner interface {
	PlanSnapshot(ctx context.Context, snap reconciler.Snapshot) (*reconciler.Plan, schema.ErrorList, error)
}

// Limits of a repository sent to POST /v1/plan: the compressed body, and
// what it unpacks to (files over schema.MaxFileSize are reported by the
// loader, as in a repository). Loading a repository takes many times its
// size in memory, so the unpacked size is bounded well below what a gzip
// body can expand to (a 2.2 MiB body held 512 MiB of YAML and took 7 GB),
// and only MaxConcurrentPlans run at once: a viewer's plans cannot take
// the memory the reconciler needs. 64 MiB holds the repository of a
// fleet of tens of thousands of machines.
const (
	MaxPlanBody        = 64 << 20
	MaxPlanUnpacked    = 64 << 20
	maxPlanFiles       = 100_000
	MaxConcurrentPlans = 2
)

// maxConcurrentDecodes bounds the object bodies validated at once.
const maxConcurrentDecodes = 4

// handlePlan takes a repository as a gzipped tar of its files and answers
// with the plan, or with the repository's errors.
func (s *Server) handlePlan(w http.ResponseWriter, r *http.Request, c *call) error {
	if s.planner == nil {
		return Errorf(EUNAVAILABLE, "this server cannot plan repositories")
	}
	if r.ContentLength > MaxPlanBody {
		return Errorf(ETOOLARGE, "the repository archive is larger than the limit of %s", sizeText(MaxPlanBody))
	}
	select {
	case s.plans <- struct{}{}:
	default:
		w.Header().Set("Retry-After", "5")
		return Errorf(EUNAVAILABLE, "%d plans are already running on this server, its limit; retry in a moment", MaxConcurrentPlans)
	}
	// The slot and the unpacked files are given back before the answer is
	// written: a client that sends its plans one after another must never
	// find its own previous plan still holding a slot.
	out, err := func() (client.PlanResult, error) {
		defer func() { <-s.plans }()
		return s.plan(r)
	}()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

// plan unpacks the request's repository archive into a directory of its
// own, plans it and removes the directory.
func (s *Server) plan(r *http.Request) (client.PlanResult, error) {
	var out client.PlanResult
	dir, err := os.MkdirTemp("", "tink-plan-")
	if err != nil {
		return out, err
	}
	defer os.RemoveAll(dir)
	sum, err := unpack(r.Context(), io.LimitReader(r.Body, MaxPlanBody+1), dir)
	if err != nil {
		return out, err
	}
	rev := r.URL.Query().Get("revision")
	if rev == "" {
		rev = "diff@sha256:" + sum[:16]
	}
	p, errs, err := s.planner.PlanSnapshot(r.Context(), reconciler.Snapshot{Revision: rev, FS: os.DirFS(dir)})
	if err != nil {
		return out, err
	}
	out.Revision = rev
	for _, e := range errs {
		out.Errors = append(out.Errors, state.SyncError{File: e.File, Line: e.Line, Column: e.Column, Path: e.Path, Message: e.Message})
	}
	if p != nil {
		out.Changes = make([]client.PlanChange, 0, len(p.Changes))
		for _, ch := range p.Changes {
			pc := client.PlanChange{Op: string(ch.Op), Key: ch.Key, File: ch.File, Consequences: ch.Consequences}
			for _, f := range ch.Fields {
				pc.Fields = append(pc.Fields, client.PlanField{Path: f.Path, Old: f.Old, New: f.New})
			}
			out.Changes = append(out.Changes, pc)
		}
		out.Unchanged, out.Blocked, out.Consequences = p.Unchanged, p.Blocked, p.Consequences()
		out.Empty = p.Empty()
		out.Text, out.Markdown = p.FormatText(), p.FormatMarkdown()
	}
	return out, nil
}

// unpack extracts a gzipped tar of regular files into dir, refusing paths
// that leave it, links and anything beyond the limits, and returns a hash
// of the content (the plan's revision name).
func unpack(ctx context.Context, r io.Reader, dir string) (string, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return "", Errorf(state.EINVALID, "the body must be a gzipped tar of the repository: %v", err)
	}
	tr := tar.NewReader(zr)
	var total int64
	var files int
	type entry struct{ name, hash string }
	var entries []entry
	for {
		if err := ctx.Err(); err != nil {
			return "", err // the client left
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "too large") {
				return "", Errorf(ETOOLARGE, "the repository archive is larger than the limit of %s", sizeText(MaxPlanBody))
			}
			return "", Errorf(state.EINVALID, "read the repository archive: %v", err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
		default:
			return "", Errorf(state.EINVALID, "%s: only regular files may be sent", h.Name)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if !validRepoPath(name) {
			return "", Errorf(state.EINVALID, "%s: not a relative path inside the repository", h.Name)
		}
		files++
		total += h.Size
		if files > maxPlanFiles || total > MaxPlanUnpacked {
			return "", Errorf(ETOOLARGE, "the repository unpacks to more than %d files or %s, the limits of a plan", maxPlanFiles, sizeText(MaxPlanUnpacked))
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return "", err
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return "", Errorf(state.EINVALID, "%s: %v", name, err)
		}
		hsh := sha256.New()
		_, err = io.Copy(io.MultiWriter(f, hsh), io.LimitReader(tr, h.Size))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", Errorf(state.EINVALID, "%s: %v", name, err)
		}
		entries = append(entries, entry{name, hex.EncodeToString(hsh.Sum(nil))})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var b bytes.Buffer
	for _, e := range entries {
		b.WriteString(e.name + "\x00" + e.hash + "\n")
	}
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:]), nil
}

// validRepoPath reports whether name stays inside the repository.
func validRepoPath(name string) bool {
	return name != "." && name != "" && !strings.HasPrefix(name, "/") && !strings.HasPrefix(name, "../") && name != ".." && !strings.Contains(name, "\\")
}
