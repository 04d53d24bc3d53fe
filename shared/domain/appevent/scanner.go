package appevent

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner is a small allocation-free JSON reader over the request body. Strings without escapes
// are returned as substrings of the body (no copy). It stops at the first syntax error: a body
// that is not JSON cannot be split into events, so the whole request is refused.
type scanner struct {
	s       string
	i       int
	err     *SyntaxError
	lastKey string // the name of the member being read (see member); memberOf may leave it stale for a known name (ks.names[k])
	// slowStr is set when the last string read took the slow path (escapes or DEL): only such a
	// string can hold control characters, so only it needs checking for them.
	slowStr bool
}

// SyntaxError reports a body that is not valid JSON.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return "invalid JSON at byte " + strconv.Itoa(e.Offset) + ": " + e.Msg
}

const maxDepth = 32

func (sc *scanner) fail(msg string) {
	if sc.err == nil {
		sc.err = &SyntaxError{Offset: sc.i, Msg: msg}
	}
	sc.i = len(sc.s)
}

func (sc *scanner) ws() {
	if sc.i < len(sc.s) && sc.s[sc.i] > ' ' { // compact JSON: nothing to skip (inlined)
		return
	}
	sc.skipWS()
}

func (sc *scanner) skipWS() {
	s, i := sc.s, sc.i // locals: the loop must not reload the scanner's fields
	for i < len(s) && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
		i++
	}
	sc.i = i
}

// peek returns the first byte of the next value (after whitespace), or 0 at the end.
func (sc *scanner) peek() byte {
	if sc.i < len(sc.s) && sc.s[sc.i] > ' ' { // compact JSON: no whitespace to skip
		return sc.s[sc.i]
	}
	sc.skipWS()
	if sc.i < len(sc.s) {
		return sc.s[sc.i]
	}
	return 0
}

// repeats reports whether the next value is exactly obj (the text of a complete JSON object,
// or "" for none) and, if so, moves past it. A complete object ends at its own closing brace,
// so a byte-for-byte prefix match is the whole value.
func (sc *scanner) repeats(obj string) bool {
	if obj == "" || !strings.HasPrefix(sc.s[sc.i:], obj) {
		return false
	}
	sc.i += len(obj)
	return true
}

// kind names the JSON type of the next value for error messages.
func (sc *scanner) kind() string {
	switch sc.peek() {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

func (sc *scanner) isNull() bool {
	if sc.peek() == 'n' {
		sc.literal("null")
		return true
	}
	return false
}

func (sc *scanner) literal(lit string) {
	if len(sc.s)-sc.i >= len(lit) && sc.s[sc.i:sc.i+len(lit)] == lit {
		sc.i += len(lit)
		return
	}
	sc.fail("invalid literal")
}

// boolean reads true or false; the caller checked peek() is 't' or 'f'.
func (sc *scanner) boolean() bool {
	if sc.s[sc.i] == 't' {
		sc.literal("true")
		return true
	}
	sc.literal("false")
	return false
}

// str reads a string; the caller checked peek() == '"'.
func (sc *scanner) str() string {
	sc.slowStr = false
	s := sc.s
	start := sc.i + 1 // after the opening quote
	i := start
	for i+8 <= len(s) && !hasStop(word(s, i)) { // 8 bytes at a time, then byte by byte
		i += 8
	}
	for i < len(s) && !strStop[s[i]] {
		i++
	}
	sc.i = i
	switch {
	case i == len(s):
		sc.fail("unterminated string")
		return ""
	case s[i] == '"':
		sc.i = i + 1
		return s[start:i]
	case s[i] == '\\' || s[i] == 0x7f:
		sc.slowStr = true
		return sc.unescape(start)
	}
	sc.fail("control character in string")
	return ""
}

// strStop marks the bytes that end the fast path of str: the closing quote, an escape, a
// control character (invalid in JSON strings) or DEL (valid JSON, but refused by the fields
// that check for control characters).
var strStop = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'], t[0x7f] = true, true, true
	return t
}()

// hasStop reports whether a word of 8 bytes (little-endian) holds a byte of strStop: a lane
// below 0x20, or equal to '"', '\\' or DEL, borrows and so sets its top bit; lanes of 0x80 and
// more are masked out (they are not stops). Exact as a yes/no answer over the word: a lane only
// borrows from a stop below it.
func hasStop(x uint64) bool {
	const lanes, tops = 0x0101010101010101, 0x8080808080808080
	t := (x - 0x20*lanes) | ((x ^ '"'*lanes) - lanes) | ((x ^ '\\'*lanes) - lanes) | ((x ^ 0x7f*lanes) - lanes)
	return t&^x&tops != 0
}

// word returns the 8 bytes of s at i as a little-endian word (one load once compiled).
func word(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// unescape is the slow path of str for strings holding escapes.
func (sc *scanner) unescape(start int) string {
	b := make([]byte, 0, sc.i-start+16)
	b = append(b, sc.s[start:sc.i]...)
	for sc.i < len(sc.s) {
		c := sc.s[sc.i]
		switch {
		case c == '"':
			sc.i++
			return string(b)
		case c < 0x20:
			sc.fail("control character in string")
			return ""
		case c != '\\':
			b = append(b, c)
			sc.i++
			continue
		}
		if sc.i+1 >= len(sc.s) {
			break
		}
		e := sc.s[sc.i+1]
		sc.i += 2
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := sc.hex4()
			if !ok {
				sc.fail("invalid \\u escape")
				return ""
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if sc.i+1 < len(sc.s) && sc.s[sc.i] == '\\' && sc.s[sc.i+1] == 'u' {
					save := sc.i
					sc.i += 2
					if r2, ok = sc.hex4(); !ok {
						sc.fail("invalid \\u escape")
						return ""
					}
					if utf16.DecodeRune(r, r2) == utf8.RuneError {
						sc.i = save // not a pair: the second escape is read on its own
						r2 = -1
					}
				}
				r = utf16.DecodeRune(r, r2) // a lone surrogate becomes U+FFFD
			}
			b = utf8.AppendRune(b, r)
		default:
			sc.fail("invalid escape")
			return ""
		}
	}
	sc.fail("unterminated string")
	return ""
}

func (sc *scanner) hex4() (rune, bool) {
	if sc.i+4 > len(sc.s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(sc.s[sc.i : sc.i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	sc.i += 4
	return r, true
}

// numberValue reads a JSON number (the caller checked it is not another type) and returns its
// value as strconv.ParseFloat reads the text. Plain decimals of up to 15 digits (most of the numbers an event carries:
// counts, prices, times) are converted while they are read: their digits, read as an integer,
// are exact in a float64, and dividing by an exact power of ten is one correctly rounded
// operation, which is what strconv's own exact path computes. Other numbers go to strconv.
func (sc *scanner) numberValue() (float64, error) {
	s, i := sc.s, sc.i
	start := i
	neg := i < len(s) && s[i] == '-'
	if neg {
		i++
	}
	var n uint64 // wraps past 19 digits: then unused
	digits := 0
	switch {
	case i < len(s) && s[i] == '0':
		i, digits = i+1, 1
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			n = n*10 + uint64(s[i]-'0')
			digits++
		}
	default:
		sc.i = i
		sc.fail("invalid value")
		return 0, strconv.ErrSyntax
	}
	frac := 0
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			n = n*10 + uint64(s[i]-'0')
		}
		if i == d {
			sc.i = i
			sc.fail("invalid number")
			return 0, strconv.ErrSyntax
		}
		frac = i - d
		digits += frac
	}
	exp := i < len(s) && (s[i] == 'e' || s[i] == 'E')
	if exp {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			sc.i = i
			sc.fail("invalid number")
			return 0, strconv.ErrSyntax
		}
	}
	sc.i = i
	if !exp && digits <= 15 {
		v := float64(n)
		if frac > 0 {
			v /= float64pow10[frac]
		}
		if neg {
			v = -v // -0 stays negative zero, as strconv reads it
		}
		return v, nil
	}
	return strconv.ParseFloat(s[start:i], 64)
}

// skip reads and discards any value.
func (sc *scanner) skip(depth int) {
	if depth > maxDepth {
		sc.fail("nesting too deep")
		return
	}
	switch sc.peek() {
	case '"':
		sc.str()
	case '{':
		for first := true; sc.member(&first); {
			sc.skip(depth + 1)
		}
	case '[':
		for first := true; sc.element(&first); {
			sc.skip(depth + 1)
		}
	case 't', 'f':
		sc.boolean()
	case 'n':
		sc.literal("null")
	case 0:
		sc.fail("unexpected end of input")
	default:
		sc.numberValue() // a rare skipped number that is not plain costs a strconv call
	}
}

// member iterates an object: call with first=true at the '{'; it returns true with the scanner
// positioned on the member's value, and the key in sc.key. It returns false at '}' or on error.
func (sc *scanner) member(first *bool) bool {
	if *first {
		*first = false
		if sc.peek() != '{' {
			sc.fail("expected an object")
			return false
		}
		sc.i++
		if sc.peek() == '}' {
			sc.i++
			return false
		}
	} else {
		switch sc.peek() {
		case ',':
			sc.i++
		case '}':
			sc.i++
			return false
		default:
			sc.fail("expected ',' or '}'")
			return false
		}
	}
	if sc.peek() != '"' {
		sc.fail("expected a member name")
		return false
	}
	sc.lastKey = sc.str()
	return sc.colon()
}

// colon reads the ':' after a member name and the whitespace after it.
func (sc *scanner) colon() bool {
	if sc.peek() != ':' {
		sc.fail("expected ':'")
		return false
	}
	sc.i++
	sc.ws()
	return sc.err == nil
}

// memberOf is member for an object whose known names are ks: it also returns the name's index
// in ks (-1 for other names). g guesses the name from the order of the previous object read with
// it: a guessed name is recognised by comparing the input with it, without reading the string
// first or hashing it (a name of a key set has no character that JSON escapes, so input equal to
// it followed by '"' is that name).
func (sc *scanner) memberOf(first *bool, ks *keySet, g *keyGuess) (int, bool) {
	if *first {
		g.prev = -1
	}
	if g.prev >= -1 { // compact input: the separator, the guessed name and ':' in one comparison
		gs := &g.next[g.prev+1]
		lead := byte(',')
		if *first {
			lead = '{'
		}
		s, i := sc.s, sc.i
		var match bool
		var end int
		if n := int(gs.n); n != 0 {
			// Words compared, no call: the first (its separator as read), the last, and the
			// middle one of a name longer than 16 bytes. An 8-byte name read as an object's
			// first member misses here (its last word holds the ','): the general path below
			// reads it.
			end = i + n
			match = end <= len(s) && word(s, i) == gs.w[0]^','^uint64(lead) && word(s, end-8) == gs.w[2] &&
				(n <= 16 || word(s, i+8) == gs.w[1])
		} else {
			q := ks.quoted[gs.k] // ,"name":
			end = i + len(q)
			match = end <= len(s) && s[i] == lead && s[i+1:end] == q[1:]
		}
		if match {
			*first = false
			sc.i, g.prev = end, gs.k
			sc.ws()
			return int(gs.k), sc.err == nil
		}
	}
	if *first {
		*first = false
		if sc.peek() != '{' {
			sc.fail("expected an object")
			return -1, false
		}
		sc.i++
		if sc.peek() == '}' {
			sc.i++
			return -1, false
		}
	} else {
		switch sc.peek() {
		case ',':
			sc.i++
		case '}':
			sc.i++
			return -1, false
		default:
			sc.fail("expected ',' or '}'")
			return -1, false
		}
	}
	if sc.peek() != '"' {
		sc.fail("expected a member name")
		return -1, false
	}
	k := -1
	if g.prev >= -1 {
		guess := int(g.next[g.prev+1].k)
		name := ks.names[guess]
		s, j := sc.s, sc.i+1
		if end := j + len(name); end < len(s) && s[end] == '"' && s[j:end] == name {
			sc.i, sc.lastKey, sc.slowStr, k = end+1, s[j:end], false, guess
		}
	}
	if k < 0 {
		sc.lastKey = sc.str()
		k = ks.index(sc.lastKey)
		if g.prev >= -1 && k >= 0 {
			g.learn(ks, k)
		}
	}
	g.prev = int8(k)
	if k < 0 {
		g.prev = -2 // no guess after an unknown name
	}
	return k, sc.colon()
}

// keyGuess remembers, for the objects read with one key set, which name followed which.
type keyGuess struct {
	prev int8                    // index of the previous name of the object; -1 at its start, -2 after an unknown name
	next [keySlots/2 + 1]guessed // next[p+1]: the name that followed name p (or the first, p = -1) last time
}

// guessed is a name expected next, with what comparing the input with it takes at hand (no
// load of the key set's strings on the way).
type guessed struct {
	k int8  // the name's index in the key set
	n uint8 // the length of ,"name": when w holds it (8 to 24 bytes), else 0
	w [3]uint64
}

// learn records that name k of ks followed the previous name (g.prev).
func (g *keyGuess) learn(ks *keySet, k int) {
	gs := guessed{k: int8(k)}
	if q := ks.quoted[k]; len(q) >= 8 && len(q) <= 24 {
		gs.n = uint8(len(q))
		gs.w = [3]uint64{word(q, 0), word(q, min(8, len(q)-8)), word(q, len(q)-8)}
	}
	g.next[g.prev+1] = gs
}

// element iterates an array like member iterates an object.
func (sc *scanner) element(first *bool) bool {
	if *first {
		*first = false
		if sc.peek() != '[' {
			sc.fail("expected an array")
			return false
		}
		sc.i++
		if sc.peek() == ']' {
			sc.i++
			return false
		}
		return sc.err == nil
	}
	switch sc.peek() {
	case ',':
		sc.i++
		sc.ws()
		return sc.err == nil
	case ']':
		sc.i++
		return false
	}
	sc.fail("expected ',' or ']'")
	return false
}
