//go:build unix

package devstack

// The scanner of TestNoRawPIIAnywhere: it looks for known raw personal values in whatever the
// pipeline wrote, decoding what hides text from a plain search (JSON escapes, JSON inside JSON
// strings, base64 such as a dead letter's record, form and percent encoding), and allows a value
// only where a named exemption says Meta's contract needs it unhashed.

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// piiNeedle is one spelling of one raw personal value of one canary user.
type piiNeedle struct {
	user  string // the canary user, e.g. "u1"
	field string // the ingest API's user field, e.g. "email"
	form  string // which spelling: "raw", "normalised", "digits", ...
	text  string // lower case: matching ignores case
	// bounded needles match only where no letter or digit touches them on either side: short
	// values and numbers would otherwise match inside Kinesis sequence numbers, hex digests or
	// base64 user keys by chance.
	bounded bool
}

func (n piiNeedle) String() string {
	return fmt.Sprintf("%s %s (%s form %q)", n.user, n.field, n.form, n.text)
}

// piiExemption allows raw values of some fields at one JSON path of one kind of source: the
// places where Meta's contract requires the value unhashed and the pipeline must carry it.
type piiExemption struct {
	name   string         // the rule's name, reported with the count of matches it allowed
	kind   string         // the source kind it applies to
	fields []string       // the user fields it allows
	path   *regexp.Regexp // the JSON path (within one document) it allows them at
}

// piiFinding is a raw value where none may be.
type piiFinding struct {
	where   string // source and line
	path    string // JSON path in the document ("" for plain text)
	needle  piiNeedle
	excerpt string
}

func (f piiFinding) String() string {
	path := f.path
	if path == "" {
		path = "(text)"
	}
	return fmt.Sprintf("%s at %s: raw %s in %q", f.where, path, f.needle, f.excerpt)
}

// piiScanner scans documents. Not safe for concurrent use.
type piiScanner struct {
	needles    []piiNeedle
	exemptions []piiExemption

	findings []piiFinding
	seen     map[string]bool // where+path+needle: a value decoded twice is reported once
	exempted map[string]int  // "<exemption name> in <kind>" -> matches it allowed
	leaves   map[string]int  // source kind -> strings and numbers scanned
}

func newPIIScanner(needles []piiNeedle, exemptions []piiExemption) *piiScanner {
	return &piiScanner{needles: needles, exemptions: exemptions, seen: map[string]bool{},
		exempted: map[string]int{}, leaves: map[string]int{}}
}

// maxDecodeDepth bounds the decoding of nested encodings (JSON in a base64 string in JSON ...).
const maxDecodeDepth = 4

// scanDocument scans one document: a JSON value, JSON lines, or plain text lines (mixed lines
// are fine). where names the source in findings.
func (s *piiScanner) scanDocument(kind, where string, data []byte) {
	if v, ok := decodeJSONValue(bytes.TrimSpace(data)); ok {
		s.walk(kind, where, "", v, 0)
		return
	}
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		w := fmt.Sprintf("%s line %d", where, i+1)
		if v, ok := decodeJSONValue(line); ok {
			s.walk(kind, w, "", v, 0)
		} else {
			s.leaf(kind, w, "", string(line), 0)
		}
	}
}

// scanHTTPRequest scans a recorded request: its URL and its body, decoded by content type.
func (s *piiScanner) scanHTTPRequest(kind, where string, r recordedRequest) {
	s.leaf(kind, where, "#url", r.URL, 0)
	body := r.Body
	if r.ContentEncoding == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err == nil {
			if unzipped, err := io.ReadAll(zr); err == nil {
				body = unzipped
			}
		}
	}
	if strings.HasPrefix(r.ContentType, "application/x-www-form-urlencoded") {
		if form, err := url.ParseQuery(string(body)); err == nil {
			doc := map[string]any{}
			for k, vs := range form {
				if len(vs) == 1 {
					doc[k] = vs[0]
				} else {
					doc[k] = toAnySlice(vs)
				}
			}
			s.walk(kind, where, "", doc, 0)
			return
		}
	}
	s.scanDocument(kind, where, body)
}

func toAnySlice(vs []string) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}

// walk scans a decoded JSON value; path is its JSON path (".a.b[2]").
func (s *piiScanner) walk(kind, where, path string, v any, depth int) {
	switch v := v.(type) {
	case map[string]any:
		keys := slices.Sorted(maps.Keys(v))
		// A Custom Audience payload: name each row cell after its schema column, so that the
		// MADID exemption can allow exactly the MADID column.
		schema, isPayload := audienceSchema(v)
		for _, k := range keys {
			s.leaf(kind, where, path+"."+k+"#key", k, depth)
			if isPayload && k == "data" {
				if rows, ok := v[k].([]any); ok {
					s.walkRows(kind, where, path+".data", rows, schema, depth)
					continue
				}
			}
			s.walk(kind, where, path+"."+k, v[k], depth)
		}
	case []any:
		for i, x := range v {
			s.walk(kind, where, fmt.Sprintf("%s[%d]", path, i), x, depth)
		}
	case string:
		s.leaf(kind, where, path, v, depth)
	case json.Number:
		s.leaf(kind, where, path, string(v), depth)
	}
}

// audienceSchema reports whether m is a Custom Audience payload ({"schema": [...], "data":
// [...]}) and returns its column names; a single-key schema is one name.
func audienceSchema(m map[string]any) ([]string, bool) {
	if _, ok := m["data"].([]any); !ok {
		return nil, false
	}
	switch schema := m["schema"].(type) {
	case string:
		return []string{schema}, true
	case []any:
		cols := make([]string, len(schema))
		for i, c := range schema {
			name, ok := c.(string)
			if !ok {
				return nil, false
			}
			cols[i] = name
		}
		return cols, true
	}
	return nil, false
}

// walkRows scans audience rows with paths like .payload.data[3][MADID].
func (s *piiScanner) walkRows(kind, where, path string, rows []any, schema []string, depth int) {
	col := func(j int) string {
		if j < len(schema) {
			return schema[j]
		}
		return fmt.Sprintf("column %d", j)
	}
	for i, row := range rows {
		cells, ok := row.([]any)
		if !ok { // a single-key schema allows the bare value
			s.walk(kind, where, fmt.Sprintf("%s[%d][%s]", path, i, col(0)), row, depth)
			continue
		}
		for j, c := range cells {
			s.walk(kind, where, fmt.Sprintf("%s[%d][%s]", path, i, col(j)), c, depth)
		}
	}
}

// leaf scans one string. JSON text in it (an object or an array) is decoded and walked instead,
// keeping the string's path: a state document in attribute st gives .st.madid.id, so that the
// exemptions see where a value really is. Percent-encoded and base64 text (a dead letter's
// record) is scanned decoded as well.
func (s *piiScanner) leaf(kind, where, path, text string, depth int) {
	s.leaves[kind]++
	trimmed := strings.TrimSpace(text)
	if depth < maxDecodeDepth && (strings.HasPrefix(trimmed, "{") || strings.HasPrefix(trimmed, "[")) {
		if v, ok := decodeJSONValue([]byte(trimmed)); ok {
			s.walk(kind, where, path, v, depth+1)
			return
		}
	}
	s.match(kind, where, path, text)
	if depth >= maxDecodeDepth {
		return
	}
	if strings.Contains(text, "%") {
		if u, err := url.QueryUnescape(text); err == nil && u != text {
			s.leaf(kind, where, path, u, depth+1)
		}
	}
	if b, ok := decodeBase64Text(trimmed); ok {
		s.leaf(kind, where, path, string(b), depth+1)
	}
}

// match records every needle in text that no exemption allows.
func (s *piiScanner) match(kind, where, path, text string) {
	lower := strings.ToLower(text)
	for _, n := range s.needles {
		at := indexNeedle(lower, n)
		if at < 0 {
			continue
		}
		if rule, ok := s.exemption(kind, n.field, path); ok {
			s.exempted[rule+" in "+kind]++
			continue
		}
		id := where + "\x00" + path + "\x00" + n.text
		if s.seen[id] {
			continue
		}
		s.seen[id] = true
		s.findings = append(s.findings, piiFinding{where: where, path: path, needle: n, excerpt: excerpt(text, lower, at, len(n.text))})
	}
}

func (s *piiScanner) exemption(kind, field, path string) (string, bool) {
	for _, e := range s.exemptions {
		if e.kind == kind && slices.Contains(e.fields, field) && e.path.MatchString(path) {
			return e.name, true
		}
	}
	return "", false
}

// indexNeedle returns where n occurs in lower (respecting n.bounded), or -1.
func indexNeedle(lower string, n piiNeedle) int {
	for from := 0; from <= len(lower); {
		i := strings.Index(lower[from:], n.text)
		if i < 0 {
			return -1
		}
		i += from
		if !n.bounded || (!alnumBefore(lower, i) && !alnumAfter(lower, i+len(n.text))) {
			return i
		}
		_, size := utf8.DecodeRuneInString(lower[i:])
		from = i + size
	}
	return -1
}

func alnumBefore(s string, i int) bool {
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return i > 0 && (unicode.IsLetter(r) || unicode.IsDigit(r))
}

func alnumAfter(s string, i int) bool {
	r, _ := utf8.DecodeRuneInString(s[i:])
	return i < len(s) && (unicode.IsLetter(r) || unicode.IsDigit(r))
}

// excerpt returns up to 40 bytes around a match, from the original text when lower case kept
// its byte offsets.
func excerpt(text, lower string, at, n int) string {
	src := lower
	if len(text) == len(lower) {
		src = text
	}
	from, to := max(0, at-40), min(len(src), at+n+40)
	for from > 0 && !utf8.RuneStart(src[from]) {
		from--
	}
	for to < len(src) && !utf8.RuneStart(src[to]) {
		to++
	}
	return src[from:to]
}

// decodeJSONValue decodes data if it is exactly one JSON value, numbers as json.Number.
func decodeJSONValue(data []byte) (any, bool) {
	if len(data) == 0 || !json.Valid(data) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	return v, true
}

// decodeBase64Text decodes s if it is base64 (any of the four alphabets and paddings) of
// printable UTF-8 text, such as a []byte field holding JSON. Digests, user keys and sequence
// numbers decode to binary and are left alone.
func decodeBase64Text(s string) ([]byte, bool) {
	if len(s) < 16 {
		return nil, false
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(s)
		if err != nil || !utf8.Valid(b) {
			continue
		}
		printable := 0
		for _, r := range string(b) {
			if unicode.IsPrint(r) || r == '\n' || r == '\t' || r == '\r' {
				printable++
			}
		}
		if printable*10 >= utf8.RuneCount(b)*9 {
			return b, true
		}
	}
	return nil, false
}

// recordedRequest is one request a Meta Graph API client sent, as it came over the wire.
type recordedRequest struct {
	Method, URL, ContentType, ContentEncoding string
	Body                                      []byte
}

// metaRecorder serves a Meta Graph sandbox and keeps every request's body: the sandbox itself
// keeps accepted events and audience members, but not the bodies of refused requests (a
// poison event's batch) nor the rows of removals.
type metaRecorder struct {
	sandbox http.Handler
	mu      sync.Mutex
	reqs    []recordedRequest
}

func (m *metaRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/_sandbox/") && r.URL.Path != "/health" {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		m.mu.Lock()
		m.reqs = append(m.reqs, recordedRequest{Method: r.Method, URL: r.URL.String(), ContentType: r.Header.Get("Content-Type"),
			ContentEncoding: r.Header.Get("Content-Encoding"), Body: body})
		m.mu.Unlock()
	}
	m.sandbox.ServeHTTP(w, r)
}

// requests returns the recorded Graph requests.
func (m *metaRecorder) requests() []recordedRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.reqs)
}
