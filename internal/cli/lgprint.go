package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// lgIndent is upstream's INDENT_INCREMENT.
const lgIndent = 2

// Object is a JSON object that keeps its members in document order (the
// looking glass is printed in the order the server sent it, as Python's
// json module does).
type Object struct {
	Members []Member
}

// Member is one key/value of an Object.
type Member struct {
	Key   string
	Value any
}

// Get returns the value of key and whether it is present.
func (o *Object) Get(key string) (any, bool) {
	for _, m := range o.Members {
		if m.Key == key {
			return m.Value, true
		}
	}
	return nil, false
}

// Delete removes key.
func (o *Object) Delete(key string) {
	for i, m := range o.Members {
		if m.Key == key {
			o.Members = append(o.Members[:i], o.Members[i+1:]...)
			return
		}
	}
}

// DecodeOrdered parses one JSON document into *Object (objects), []any
// (arrays), string, json.Number, bool and nil. A repeated key keeps its
// first position and takes its last value, as in Python.
func DecodeOrdered(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid JSON: data after the top-level value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		o := &Object{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			k := kt.(string)
			replaced := false
			for i := range o.Members {
				if o.Members[i].Key == k {
					o.Members[i].Value, replaced = v, true
				}
			}
			if !replaced {
				o.Members = append(o.Members, Member{k, v})
			}
		}
		_, err := dec.Token() // '}'
		return o, err
	case json.Delim('['):
		l := []any{}
		for dec.More() {
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		_, err := dec.Token() // ']'
		return l, err
	}
	return tok, nil
}

// PyStr renders a JSON scalar as Python's str() does for the value
// json.load gives: True/False, None, integers as digits, floats in repr
// form (1.0, 1e+16), strings as they are.
func PyStr(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		if v {
			return "True"
		}
		return "False"
	case string:
		return v
	case json.Number:
		s := v.String()
		if !strings.ContainsAny(s, ".eE") {
			return s
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return s
		}
		return pyFloat(f)
	}
	return fmt.Sprint(v)
}

// pyFloat is Python's float repr: shortest round-trip digits, positional
// for exponents -4 <= e < 16, else scientific with a two-digit exponent.
func pyFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsRune(s, '.') {
		s += ".0"
	}
	return s
}

// Fetcher GETs a looking-glass URL and decodes it with DecodeOrdered.
type Fetcher func(url string) (any, error)

// LGPrinter pretty-prints looking-glass JSON exactly as upstream's
// looking_glass.py pretty_print_recurse: an indented tree of "key: value"
// lines, list items as "* " bullets, "-" for an empty list or object,
// " (...)" after an item whose href is not followed. With Recurse, hrefs
// under the URL being printed are fetched and printed in place.
type LGPrinter struct {
	W       io.Writer
	Recurse bool
	Fetch   Fetcher
}

// Print prints data, fetched from url, starting at the beginning of a
// line (upstream's top-level call: indent 0, already on a new line).
func (p *LGPrinter) Print(data any, url string) {
	p.print(data, 0, url, true)
}

func (p *LGPrinter) write(s string) { _, _ = io.WriteString(p.W, s) }

// print is pretty_print_recurse: the key has been written; it writes data
// and ends at the start of a line. It reports whether the output of a
// followed href was spread over several lines (unused, as upstream).
func (p *LGPrinter) print(data any, indent int, url string, anew bool) bool {
	pad := strings.Repeat(" ", indent)
	switch d := data.(type) {
	case *Object:
		more := false
		_, hasHref := d.Get("href")
		if id, ok := d.Get("id"); ok && hasHref {
			p.write(PyStr(id))
			d.Delete("id")
		}
		if hasHref {
			more = true
			href, _ := d.Get("href")
			target := PyStr(href)
			if p.Recurse && p.Fetch != nil && strings.HasPrefix(target, url) {
				sub, err := p.Fetch(target)
				if err == nil {
					p.print(sub, indent+lgIndent, target, false)
					return true
				}
				var he *HTTPError
				if errors.As(err, &he) {
					p.write(fmt.Sprintf(" (ERROR %d)\n", he.Code))
				} else {
					p.write(fmt.Sprintf(" (ERROR %v)\n", err))
				}
				return false
			}
			d.Delete("href")
			p.write(" (...)")
			anew = false
		}
		if len(d.Members) > 0 {
			if !anew {
				p.write("\n")
			}
			for i, m := range d.Members {
				if i > 0 || !anew {
					p.write(pad)
				}
				p.write(m.Key + ": ")
				p.print(m.Value, indent+lgIndent, url, false)
			}
		} else if more {
			p.write("\n")
		} else {
			p.write("-\n")
		}
	case []any:
		if len(d) == 0 {
			p.write("-\n")
			return false
		}
		if !anew {
			p.write("\n")
			anew = true
		}
		for _, v := range d {
			p.write(pad + "* ")
			switch v.(type) {
			case *Object, []any:
				p.print(v, indent+lgIndent, url, anew)
			default:
				p.write(PyStr(v) + "\n")
			}
			anew = true
		}
	default:
		s := PyStr(d)
		if str, ok := d.(string); ok && strings.Contains(str, "\n") {
			s = strings.ReplaceAll(strings.Trim(str, "\n"), "\n", "\n"+pad)
			p.write("\n" + pad)
		}
		p.write(s + "\n")
	}
	return false
}
