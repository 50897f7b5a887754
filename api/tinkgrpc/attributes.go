package tinkgrpc

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/tinkops/tinkops/api/tinkgrpc/tinkpb"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// StatusKey is the key of the hardware status field that holds what its
// agent reported about the machine (AgentStatus).
const StatusKey = "agent"

// AgentStatus is what a hardware's status keeps about its Tinkerbell
// agent: the attributes it discovered (CPU, memory, disks, NICs, PCI
// devices, firmware, product), as Tinkerbell's AgentAttributes in JSON
// (protobuf JSON names), and when they last changed.
type AgentStatus struct {
	ID         string          `json:"id"`
	ReportedAt time.Time       `json:"reportedAt"`
	Attributes json.RawMessage `json:"attributes"`
}

// maxAttributes bounds what an agent may store on its hardware: a large
// machine's attributes are a few KiB.
const maxAttributes = 64 << 10

// keepAttributes stores the agent's attributes on its hardware's status
// when they differ from those stored. The agent sends them with every
// GetAction, so a write that fails (a sync wrote the hardware meanwhile)
// is tried again at the next call; failures never refuse the agent.
func (s *Service) keepAttributes(ctx context.Context, hw *schema.Hardware, id string, attrs *tinkpb.AgentAttributes) {
	if attrs == nil || s.cfg.Store == nil {
		return
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(attrs)
	if err != nil || len(raw) > maxAttributes {
		s.cfg.Log.Warn("agent attributes not kept", "agent", id, "hardware", hardwareID(hw), "bytes", len(raw), "err", err)
		return
	}
	sum := sha256.Sum256(append([]byte(id+"\x00"), raw...))
	key := state.ObjectKey{Kind: state.KindHardware, Namespace: hw.Metadata.Namespace, Name: hw.Metadata.Name}
	s.mu.Lock()
	same := s.attrs[key] == sum
	s.mu.Unlock()
	if same {
		return
	}
	remember := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.attrs) > 100_000 {
			clear(s.attrs)
		}
		s.attrs[key] = sum
	}
	o, err := s.cfg.Store.GetObject(ctx, key)
	if err != nil {
		s.cfg.Log.Warn("agent attributes not kept", "agent", id, "hardware", hardwareID(hw), "err", err)
		return
	}
	st := map[string]json.RawMessage{}
	if len(o.Status) > 0 {
		_ = json.Unmarshal(o.Status, &st)
	}
	var cur AgentStatus
	if json.Unmarshal(st[StatusKey], &cur) == nil && cur.ID == id {
		var prev tinkpb.AgentAttributes
		if protojson.Unmarshal(cur.Attributes, &prev) == nil && proto.Equal(&prev, attrs) {
			remember()
			return
		}
	}
	js, err := protojson.Marshal(attrs)
	if err != nil {
		return
	}
	b, err := json.Marshal(AgentStatus{ID: id, ReportedAt: s.cfg.Now().UTC(), Attributes: js})
	if err != nil {
		return
	}
	st[StatusKey] = b
	if o.Status, err = json.Marshal(st); err != nil {
		return
	}
	if _, err := s.cfg.Store.PutObject(ctx, state.Worker(hardwareID(hw)), o); err != nil {
		s.cfg.Log.Info("agent attributes not kept; the agent's next call tries again", "agent", id, "hardware", hardwareID(hw), "err", err)
		return
	}
	remember()
}
