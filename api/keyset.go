package api

import (
	"iter"
	"slices"

	"github.com/tinkops/tinkops/state"
)

// keySet is a set of object keys, as the fleet index holds them per MAC,
// IP address, machine and template. Almost every MAC, address and machine
// belongs to one object, and a Go map of one key costs about ten times a
// slice of one: at 10,000 machines the index's 40,000 sets took 20 MB as
// maps. So a set is a slice of up to keySetSmall keys and a map beyond
// (a template's workflows: thousands).
type keySet struct {
	few  []state.ObjectKey
	many map[state.ObjectKey]struct{}
}

// keySetSmall is the most keys a set holds in its slice: a scan of 8 keys
// costs about what a map lookup does.
const keySetSmall = 8

func (s *keySet) add(k state.ObjectKey) {
	if s.many != nil {
		s.many[k] = struct{}{}
		return
	}
	if slices.Contains(s.few, k) {
		return
	}
	if len(s.few) < keySetSmall {
		s.few = append(s.few, k)
		return
	}
	s.many = make(map[state.ObjectKey]struct{}, 2*keySetSmall)
	for _, o := range s.few {
		s.many[o] = struct{}{}
	}
	s.many[k] = struct{}{}
	s.few = nil
}

// remove removes k and reports whether the set is then empty.
func (s *keySet) remove(k state.ObjectKey) (empty bool) {
	if s.many != nil {
		delete(s.many, k)
		return len(s.many) == 0
	}
	if i := slices.Index(s.few, k); i >= 0 {
		s.few = slices.Delete(s.few, i, i+1)
	}
	return len(s.few) == 0
}

// all yields the keys in no particular order; a nil set yields none.
func (s *keySet) all() iter.Seq[state.ObjectKey] {
	return func(yield func(state.ObjectKey) bool) {
		if s == nil {
			return
		}
		for _, k := range s.few {
			if !yield(k) {
				return
			}
		}
		for k := range s.many {
			if !yield(k) {
				return
			}
		}
	}
}

// addTo adds key to the set m[k].
func addTo[K comparable](m map[K]*keySet, k K, key state.ObjectKey) {
	set := m[k]
	if set == nil {
		set = &keySet{}
		m[k] = set
	}
	set.add(key)
}

// removeFrom removes key from the set m[k], and the set once empty.
func removeFrom[K comparable](m map[K]*keySet, k K, key state.ObjectKey) {
	if set := m[k]; set != nil && set.remove(key) {
		delete(m, k)
	}
}
