package api

import (
	"fmt"
	"net/http"
	"time"
)

// handleBackup streams a backup of the live store (admin): the file
// tink-server restore reads. It is written from one read snapshot while
// the server goes on; the file's frames and end digest let the receiver
// tell a complete backup from one cut short, which a status code sent
// before the body cannot.
func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request, c *call) error {
	if s.backup == nil {
		return Errorf(EUNAVAILABLE, "this server cannot stream backups")
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="tink-%s.backup"`, s.now().UTC().Format("2006-01-02T150405Z")))
	w.Header().Set("Cache-Control", "no-store")
	start := time.Now()
	if err := s.backup(r.Context(), w); err != nil {
		// The status is sent; the cut-short body is what tells the client.
		s.log.Error("backup stream failed", "by", c.who.Name, "err", err)
		return nil
	}
	s.log.Info("backup streamed", "by", c.who.Name, "took", time.Since(start).Round(time.Millisecond))
	return nil
}
