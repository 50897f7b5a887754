package boot

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"time"
)

// handleFile serves a file of --boot-dir (kernels, initrds) with sizes and
// Range requests (http.ServeContent): iPXE and HookOS's loaders resume and
// size their downloads with them. The directory is opened as an os.Root,
// so neither a ".." nor a symlink that leads out of it reaches a file
// outside; directories are not listed.
func (s *Server) handleFile(w http.ResponseWriter, r *http.Request) {
	if s.cfg.BootDir == "" {
		http.Error(w, "this server has no boot files (tink-server --boot-dir)", http.StatusNotFound)
		return
	}
	name := r.PathValue("file")
	root, err := os.OpenRoot(s.cfg.BootDir)
	if err != nil {
		s.log.Error("boot dir not readable", "dir", s.cfg.BootDir, "err", err)
		http.Error(w, "internal error; see the server's log", http.StatusInternalServerError)
		return
	}
	defer root.Close()
	f, err := root.Open(name)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			http.Error(w, "no boot file "+name, http.StatusNotFound)
		default:
			// os.Root refuses a path (or symlink) that leaves the
			// directory: the file is not the server's to give.
			s.log.Warn("boot file refused", "file", name, "err", err)
			http.Error(w, "boot file "+name+" is not inside the boot directory", http.StatusForbidden)
		}
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.Error(w, "no boot file "+name, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	start := time.Now()
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
	s.log.Info("boot file served", "file", name, "size", fi.Size(), "range", r.Header.Get("Range"), "remote", r.RemoteAddr, "duration", time.Since(start).Round(time.Millisecond))
}
