package lg

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// WriteError writes an error response the way upstream's pecan abort()
// does (reference §2.1): if the request's Accept header best-matches
// application/json (a missing Accept header or */* counts as JSON), the
// body is {"code": N, "title": "<reason phrase>", "description": "..."};
// otherwise it is a text/plain page carrying the same description. The
// REST API uses it for its errors too.
func WriteError(w http.ResponseWriter, r *http.Request, code int, description string) {
	title := http.StatusText(code)
	h := w.Header()
	h.Del("Content-Length")
	if WantsJSON(r.Header.Values("Accept")) {
		body, _ := json.Marshal(struct {
			Code        int    `json:"code"`
			Title       string `json:"title"`
			Description string `json:"description"`
		}{code, title, description})
		h.Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write(body)
		return
	}
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(strconv.Itoa(code) + " " + title + "\n\n" + description + "\n"))
}

// offers are the error renderings, in tie-break order: JSON wins a tie.
var offers = [...]string{"application/json", "text/plain", "text/html"}

// WantsJSON reports whether the Accept header values best-match
// application/json among application/json, text/plain and text/html
// (RFC 9110 §12.5.1: each offer takes the q of the most specific media
// range matching it; the highest q wins). An absent or empty header
// counts as JSON; a header accepting none of the three gives text.
func WantsJSON(accept []string) bool {
	joined := strings.TrimSpace(strings.Join(accept, ","))
	if joined == "" {
		return true
	}
	type rng struct {
		typ, sub string
		q        float64
	}
	var ranges []rng
	for _, part := range strings.Split(joined, ",") {
		fields := strings.Split(part, ";")
		mt := strings.ToLower(strings.TrimSpace(fields[0]))
		typ, sub, ok := strings.Cut(mt, "/")
		if !ok || typ == "" || sub == "" {
			continue
		}
		q := 1.0
		for _, p := range fields[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil || f < 0 || f > 1 {
					f = 0
				}
				q = f
			}
		}
		ranges = append(ranges, rng{typ, sub, q})
	}
	if len(ranges) == 0 {
		return true
	}
	best, bestQ := "", 0.0
	for _, offer := range offers {
		ot, os, _ := strings.Cut(offer, "/")
		spec, q := -1, 0.0
		for _, r := range ranges {
			s := -1
			switch {
			case r.typ == ot && r.sub == os:
				s = 2
			case r.typ == ot && r.sub == "*":
				s = 1
			case r.typ == "*" && r.sub == "*":
				s = 0
			}
			if s > spec {
				spec, q = s, r.q
			}
		}
		if spec >= 0 && q > bestQ {
			best, bestQ = offer, q
		}
	}
	return best == "application/json"
}

// strippedExts are the extensions removed from the last path segment, as
// pecan's guess_content_type_from_ext does for known content types.
var strippedExts = [...]string{".json", ".html", ".htm", ".txt", ".xml"}

// StripExt removes a known content-type extension (.json, .html, .htm,
// .txt, .xml) from the last segment of a URL path, as upstream's pecan
// does (reference §2.1): "/looking-glass/summary.json" is
// "/looking-glass/summary". A trailing slash is kept.
func StripExt(p string) string {
	trimmed := strings.TrimRight(p, "/")
	last := trimmed[strings.LastIndexByte(trimmed, '/')+1:]
	for _, ext := range strippedExts {
		if len(last) > len(ext) && strings.EqualFold(last[len(last)-len(ext):], ext) {
			return trimmed[:len(trimmed)-len(ext)] + p[len(trimmed):]
		}
	}
	return p
}
