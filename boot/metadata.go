package boot

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"

	"github.com/tinkops/tinkops/schema"
)

// Metadata, as Hegel (Tinkerbell's "tootles") serves it: the caller is the
// hardware whose interface has the request's source address, and sees only
// its own data.
//   - /2009-04-04/user-data and /2009-04-04/meta-data/...: EC2-style, one
//     value per path, a listing (names, directories ending in /) at each
//     level;
//   - /metadata: JSON {"metadata": {"instance": {"storage": ...}}}, what
//     Tinkerbell's rootio action reads.

// ec2Prefix is the EC2 metadata API version Hegel serves.
const ec2Prefix = "/2009-04-04"

// ec2Leaves are the EC2 paths under ec2Prefix and how each is read from
// the hardware.
var ec2Leaves = map[string]func(*schema.Hardware) string{
	"/user-data": func(h *schema.Hardware) string {
		if h.Spec.UserData == nil {
			return ""
		}
		return *h.Spec.UserData
	},
	"/meta-data/instance-id":    func(h *schema.Hardware) string { return instance(h).ID },
	"/meta-data/hostname":       func(h *schema.Hardware) string { return instance(h).Hostname },
	"/meta-data/local-hostname": func(h *schema.Hardware) string { return instance(h).Hostname },
	// iqn and the license state have no field in Tinkerbell's Hardware: they
	// are served empty, as Hegel serves them.
	"/meta-data/iqn":         func(*schema.Hardware) string { return "" },
	"/meta-data/plan":        func(h *schema.Hardware) string { return facility(h).PlanSlug },
	"/meta-data/facility":    func(h *schema.Hardware) string { return facility(h).FacilityCode },
	"/meta-data/tags":        func(h *schema.Hardware) string { return strings.Join(instance(h).Tags, "\n") },
	"/meta-data/public-ipv4": func(h *schema.Hardware) string { return instanceIP(h, 4, true) },
	"/meta-data/public-ipv6": func(h *schema.Hardware) string { return instanceIP(h, 6, true) },
	"/meta-data/local-ipv4":  func(h *schema.Hardware) string { return instanceIP(h, 4, false) },
	// public-keys are the instance's ssh_keys (public keys, one a line);
	// Hegel leaves them unmapped and serves nothing.
	"/meta-data/public-keys":                               func(h *schema.Hardware) string { return strings.Join(instance(h).SSHKeys, "\n") },
	"/meta-data/operating-system/slug":                     func(h *schema.Hardware) string { return osys(h).Slug },
	"/meta-data/operating-system/distro":                   func(h *schema.Hardware) string { return osys(h).Distro },
	"/meta-data/operating-system/version":                  func(h *schema.Hardware) string { return osys(h).Version },
	"/meta-data/operating-system/image_tag":                func(h *schema.Hardware) string { return osys(h).ImageTag },
	"/meta-data/operating-system/license_activation/state": func(*schema.Hardware) string { return "" },
}

func instance(h *schema.Hardware) schema.MetadataInstance {
	if m := h.Spec.Metadata; m != nil && m.Instance != nil {
		return *m.Instance
	}
	return schema.MetadataInstance{}
}

func facility(h *schema.Hardware) schema.MetadataFacility {
	if m := h.Spec.Metadata; m != nil && m.Facility != nil {
		return *m.Facility
	}
	return schema.MetadataFacility{}
}

func osys(h *schema.Hardware) schema.MetadataInstanceOperatingSystem {
	if o := instance(h).OperatingSystem; o != nil {
		return *o
	}
	return schema.MetadataInstanceOperatingSystem{}
}

// instanceIP is the first instance address of the family that is public
// (or not), as Hegel picks public-ipv4, public-ipv6 and local-ipv4.
func instanceIP(h *schema.Hardware, family int64, public bool) string {
	for _, ip := range instance(h).Ips {
		if ip != nil && ip.Family == family && ip.Public == public {
			return ip.Address
		}
	}
	return ""
}

// ec2Listings maps each directory under ec2Prefix ("" is the root) to its
// sorted entries, directories with a trailing slash.
func ec2Listings() map[string][]string {
	dirs := map[string]map[string]bool{}
	for leaf := range ec2Leaves {
		parts := strings.Split(strings.TrimPrefix(leaf, "/"), "/")
		for i := range parts {
			dir := strings.Join(parts[:i], "/")
			entry := parts[i]
			if i < len(parts)-1 {
				entry += "/"
			}
			if dirs[dir] == nil {
				dirs[dir] = map[string]bool{}
			}
			dirs[dir][entry] = true
		}
	}
	out := map[string][]string{}
	for dir, set := range dirs {
		for e := range set {
			out[dir] = append(out[dir], e)
		}
		sort.Strings(out[dir])
	}
	return out
}

// metadataRoutes adds the metadata routes to mux.
func (s *Server) metadataRoutes(mux *http.ServeMux) {
	for leaf, get := range ec2Leaves {
		mux.HandleFunc("GET "+ec2Prefix+leaf, s.withCaller(func(w http.ResponseWriter, h *schema.Hardware) {
			writeText(w, get(h))
		}))
	}
	for dir, entries := range ec2Listings() {
		body := strings.Join(entries, "\n")
		p := ec2Prefix
		if dir != "" {
			p += "/" + dir
		}
		list := s.withCaller(func(w http.ResponseWriter, _ *schema.Hardware) { writeText(w, body) })
		mux.HandleFunc("GET "+p+"/{$}", list)
		mux.HandleFunc("GET "+p, list)
	}
	mux.HandleFunc("GET /metadata", s.withCaller(func(w http.ResponseWriter, h *schema.Hardware) {
		var out struct {
			Metadata struct {
				Instance struct {
					Storage *schema.MetadataInstanceStorage `json:"storage,omitempty"`
				} `json:"instance"`
			} `json:"metadata"`
		}
		out.Metadata.Instance.Storage = instance(h).Storage
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
}

// withCaller finds the hardware at the request's source address and calls
// fn with it; a caller that is no hardware's gets 404, even for listings,
// so the service tells a stranger nothing.
func (s *Server) withCaller(fn func(http.ResponseWriter, *schema.Hardware)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ip, err := s.clientIP(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		m, err := s.byIP(r.Context(), ip)
		if err != nil {
			code, msg := lookupStatus(err, "IP address "+ip.String())
			if code >= 500 {
				s.log.Error("metadata lookup failed", "ip", ip.String(), "err", err)
			}
			http.Error(w, msg, code)
			return
		}
		fn(w, m.hw)
	}
}

func writeText(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(body))
}
