package metasandbox

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
)

// maxBody bounds a request body. 1,000 events of a few KiB each fit with room to spare.
const maxBody = 16 << 20

// callParams are the Graph parameters of one /events call, wherever they came from.
type callParams struct {
	accessToken   string
	proof         string
	testEventCode string
	partnerAgent  string
	// data is the JSON text of the data parameter; nil when the call has none.
	data []byte
	// elements are data's elements when it is a JSON array (split once, by splitData).
	elements   []json.RawMessage
	dataIsList bool
}

// splitData splits data into its elements once, for the request log and the validation.
func (p *callParams) splitData() {
	var elements []json.RawMessage
	p.dataIsList = p.data != nil && json.Unmarshal(p.data, &elements) == nil
	if p.elements = elements; !p.dataIsList {
		p.elements = nil // the request log counts 0 events, as before
	}
}

// readParams collects the call's parameters like Graph does: from the body (JSON, form or
// multipart), then from the query string for whatever the body lacks, and the access token
// also from an "Authorization: Bearer|OAuth <token>" header.
func readParams(r *http.Request) (callParams, *graphError) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return callParams{}, errParam("could not read the request body")
	}
	if len(body) > maxBody {
		return callParams{}, errParam(fmt.Sprintf("request body larger than %d bytes", maxBody))
	}

	fields, gerr := bodyFields(r.Header.Get("Content-Type"), body)
	if gerr != nil {
		return callParams{}, gerr
	}
	query := r.URL.Query()
	get := func(name string) string {
		if v, ok := fields[name]; ok {
			return v
		}
		return query.Get(name)
	}
	p := callParams{
		accessToken:   get("access_token"),
		proof:         get("appsecret_proof"),
		testEventCode: get("test_event_code"),
		partnerAgent:  get("partner_agent"),
	}
	if p.accessToken == "" {
		p.accessToken = headerToken(r.Header.Get("Authorization"))
	}
	if v, ok := fields["data"]; ok {
		p.data = []byte(v)
	} else if query.Has("data") {
		p.data = []byte(query.Get("data"))
	}
	return p, nil
}

// bodyFields returns the body's top-level parameters as strings; a JSON value that is not a
// string (the data array) is kept as its JSON text, which is what a form field carries too.
func bodyFields(contentType string, body []byte) (map[string]string, *graphError) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	mediaType, mediaParams, _ := mime.ParseMediaType(contentType)
	switch {
	case mediaType == "application/x-www-form-urlencoded":
		values, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, errParam("the form body could not be parsed")
		}
		return firstValues(values), nil
	case mediaType == "multipart/form-data":
		form, err := multipart.NewReader(bytes.NewReader(body), mediaParams["boundary"]).ReadForm(maxBody)
		if err != nil {
			return nil, errParam("the multipart body could not be parsed")
		}
		defer form.RemoveAll()
		return firstValues(form.Value), nil
	case mediaType == "application/json" || mediaType == "text/json" || strings.HasSuffix(mediaType, "+json") ||
		bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")):
		return jsonFields(body)
	default:
		return nil, errParam(fmt.Sprintf("unsupported Content-Type %q; send JSON or form fields", contentType))
	}
}

func jsonFields(body []byte) (map[string]string, *graphError) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, errParam("the JSON body could not be parsed: " + jsonProblem(err))
	}
	fields := make(map[string]string, len(raw))
	for k, v := range raw {
		v = bytes.TrimSpace(v)
		switch {
		case bytes.Equal(v, []byte("null")):
			continue
		case len(v) > 0 && v[0] == '"':
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, errParam(fmt.Sprintf("param %s is not a valid JSON string", k))
			}
			fields[k] = s
		default:
			fields[k] = string(v)
		}
	}
	return fields, nil
}

// jsonProblem describes a decoding error without quoting the body (which may hold PII).
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return fmt.Sprintf("syntax error at byte %d", syntax.Offset)
	}
	return "not a JSON object"
}

func firstValues(values map[string][]string) map[string]string {
	fields := make(map[string]string, len(values))
	for k, vs := range values {
		if len(vs) > 0 {
			fields[k] = vs[0]
		}
	}
	return fields
}

func headerToken(authorization string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || (!strings.EqualFold(scheme, "Bearer") && !strings.EqualFold(scheme, "OAuth")) {
		return ""
	}
	return strings.TrimSpace(token)
}

// appSecretProof is lowercase hex HMAC-SHA256(key = app secret, message = access token).
func appSecretProof(secret, token string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(token))
	return hex.EncodeToString(mac.Sum(nil))
}

// proofMatches compares in constant time; an uppercase proof does not match.
func proofMatches(secret, token, proof string) bool {
	return hmac.Equal([]byte(appSecretProof(secret, token)), []byte(proof))
}
