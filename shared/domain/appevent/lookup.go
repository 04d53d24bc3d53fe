package appevent

// Lookup structures of the hot path: member names are dispatched through perfect hashes (one
// table read and one string comparison, not a search), and the per-request indexes (event ids,
// user objects, user keys) are open-addressing tables emptied in constant time.

import (
	"hash/maphash"
	"strconv"
)

// keySet maps a fixed set of member names to their positions in the list it was built from.
type keySet struct {
	names  []string
	quoted []string // ,"name": for each name
	seed   uint64
	slots  [keySlots]struct {
		name string
		i    int8
	}
}

const keySlots = 64

// newKeySet builds the perfect hash of names (at package initialisation).
func newKeySet(names ...string) *keySet {
	if len(names) > keySlots/2 {
		panic("appevent: too many names for a key set")
	}
	for seed := uint64(0); seed < 1_000_000; seed++ {
		s := &keySet{names: names, seed: seed}
		ok := true
		for i, n := range names {
			slot := &s.slots[s.hash(n)]
			if slot.name != "" {
				ok = false
				break
			}
			slot.name, slot.i = n, int8(i)
		}
		if ok {
			for _, n := range names {
				s.quoted = append(s.quoted, `,"`+n+`":`)
			}
			return s
		}
	}
	panic("appevent: no perfect hash for " + strconv.Itoa(len(names)) + " names")
}

func (s *keySet) hash(k string) uint32 {
	n := len(k)
	x := uint64(n) | uint64(k[0])<<8 | uint64(k[n-1])<<16 | uint64(k[n/2])<<24 | uint64(k[min(n/2+1, n-1)])<<32
	x = (x ^ s.seed) * 0xbf58476d1ce4e5b9
	return uint32(x >> (64 - 6))
}

// index returns the position of k in the set's names, or -1.
func (s *keySet) index(k string) int {
	if k == "" {
		return -1
	}
	if e := &s.slots[s.hash(k)]; e.name == k {
		return int(e.i)
	}
	return -1
}

// table indexes at most MaxEvents entries of a request by a 64-bit hash of their key; values
// are positions in the request's arrays (which hold the keys to compare). reset empties it in
// constant time: slots of an older generation are free.
type table struct {
	gen   uint32
	slots [tableSize]tableSlot
}

type tableSlot struct {
	gen, hi uint32
	v       int32
}

const tableSize = 1024 // a power of two above 2*MaxEvents: probes stay short

func (t *table) reset() {
	t.gen++
	if t.gen == 0 { // wrapped: every slot could look current
		clear(t.slots[:])
		t.gen = 1
	}
}

// probe returns the first slot for hash h; next returns the following one.
func (t *table) probe(h uint64) (*tableSlot, uint32) {
	i := uint32(h) & (tableSize - 1)
	return &t.slots[i], i
}

func (t *table) next(i uint32) (*tableSlot, uint32) {
	i = (i + 1) & (tableSize - 1)
	return &t.slots[i], i
}

// free reports whether s holds no entry of the current request.
func (t *table) free(s *tableSlot) bool { return s.gen != t.gen }

func (t *table) put(s *tableSlot, h uint64, v int) {
	*s = tableSlot{gen: t.gen, hi: uint32(h >> 32), v: int32(v)}
}

// seed keys the per-request tables' hashes (per process: the tables are never shared).
var seed = maphash.MakeSeed()

func hashString(s string) uint64 { return maphash.String(seed, s) }
