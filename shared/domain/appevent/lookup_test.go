package appevent

import (
	"strconv"
	"testing"
)

func TestKeySetsFindTheirNamesOnly(t *testing.T) {
	sets := map[string]struct {
		set   *keySet
		names []string
	}{
		"event":   {eventKeys, []string{"event_id", "event_name", "event_time", "user", "device", "consent", "custom_data"}},
		"user":    {userKeySet, userKeys[:]},
		"device":  {deviceKeys, nil},
		"consent": {consentKeys, nil},
		"custom":  {customKeys, nil},
		"content": {contentKeys, []string{"id", "quantity", "item_price"}},
		"names":   {eventNameSet, nil},
	}
	for name, s := range sets {
		names := s.names
		if names == nil {
			for _, slot := range s.set.slots {
				if slot.name != "" {
					names = append(names, slot.name)
				}
			}
		}
		for i, n := range names {
			got := s.set.index(n)
			if s.names != nil && got != i || got < 0 {
				t.Errorf("%s: index(%q) = %d, want %d", name, n, got, i)
			}
			for _, other := range []string{n[:len(n)-1], n + "x", "x" + n[1:], n[:len(n)-1] + "X", ""} {
				if other != "" && s.set.index(other) >= 0 && !contains(names, other) {
					t.Errorf("%s: index(%q) = %d for a name not in the set", name, other, s.set.index(other))
				}
			}
		}
		if s.set.index("") != -1 || s.set.index("no_such_member_"+strconv.Itoa(len(names))) != -1 {
			t.Errorf("%s: unknown names found", name)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// memberOf's guessed-name comparison finds the guessed name and nothing else: for every name
// of every set, guessed as the first member and as a later one, the name itself and the name
// with any one byte changed (quotes and separators included) are read as what they are.
func TestMemberOfGuessReadsWhatIsThere(t *testing.T) {
	for _, ks := range []*keySet{eventKeys, userKeySet, deviceKeys, consentKeys, customKeys, contentKeys} {
		for k, name := range ks.names {
			for _, first := range []bool{true, false} {
				text := `,"` + name + `":1}`
				if first {
					text = `{"` + name + `":1}`
				}
				for j := -1; j < len(text)-3; j++ {
					for _, c := range []byte{'{', ',', '"', ':', 'a', 'Z', 0} {
						in := []byte(text)
						if j >= 0 {
							if c == 0 {
								c = in[j] ^ 0x20
							}
							in[j] = c
						}
						sc := &scanner{s: string(in)}
						var g keyGuess
						g.prev = -1
						if !first {
							g.prev = int8((k + 1) % len(ks.names)) // the name read before this one
						}
						g.learn(ks, k)
						f := first
						got, ok := sc.memberOf(&f, ks, &g)
						// What the plain member reader finds, looked up in the set.
						ref := &scanner{s: string(in)}
						rf := first
						want, wantOK := -1, ref.member(&rf)
						if wantOK {
							want = ks.index(ref.lastKey)
						}
						if ok != wantOK || ok && (got != want || sc.i != ref.i) {
							t.Fatalf("%q guessing %q: got %d %v at %d, want %d %v at %d (%q)",
								in, name, got, ok, sc.i, want, wantOK, ref.i, ref.lastKey)
						}
						if ok && got < 0 && sc.lastKey != ref.lastKey {
							t.Fatalf("%q guessing %q: unknown name read as %q, want %q", in, name, sc.lastKey, ref.lastKey)
						}
					}
				}
			}
		}
	}
}
