package formats

// A reader of the Distribution envelope in the form registries send it,
// the fast path of every Distribution and GitLab webhook. json.Unmarshal
// reads a body twice (a validity scan, then the decoding by reflection) and
// allocates every string on its own; this reads it once and takes the
// strings from one copy of the body.
//
// It is deliberately narrow. It reads only the fields registryEvent has,
// each at most once, spelt exactly, with a value of the field's type;
// strings without escapes; integers without fraction or exponent. On
// anything else (an escape, a null, a repeated field, a name that differs
// only in case, which encoding/json would match, a deeper nesting than
// envelopes have) it gives up, and the body goes through encoding/json as
// before: what is accepted, what is refused and every error message stay
// encoding/json's. FuzzScanEnvelope holds it to that: whenever it reads a
// body, json.Unmarshal reads the same events from it.

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// The fields scanEnvelope fills, per object; the json tags of registryEvent.
var (
	eventFields   = []string{"id", "timestamp", "action", "target", "request", "actor"}
	targetFields  = []string{"mediaType", "digest", "size", "length", "repository", "url", "tag"}
	requestFields = []string{"host"}
	actorFields   = []string{"name"}
)

// maxSkipDepth bounds the nesting of the values skipped (request, source
// and fields registries add); deeper ones are left to encoding/json.
const maxSkipDepth = 16

// scanEnvelope reads a Distribution envelope; ok is false when it gave up
// (see above), not that the body is malformed.
func scanEnvelope(body []byte) (events []*registryEvent, ok bool) {
	sc := envelopeScanner{s: string(body)}
	seen := false
	ok = sc.object(func(key string) bool {
		switch {
		case key == "events" && !seen:
			seen = true
			events = []*registryEvent{}
			return sc.array(func() bool {
				ev, ok := sc.event()
				events = append(events, ev)
				return ok
			})
		case strings.EqualFold(key, "events"):
			return false
		}
		return sc.skip(0)
	})
	sc.space()
	return events, ok && seen && sc.i == len(sc.s)
}

type envelopeScanner struct {
	s string // the body
	i int    // the next byte to read
}

func (sc *envelopeScanner) event() (*registryEvent, bool) {
	ev := new(registryEvent)
	ok := sc.fields(eventFields, func(name string) bool {
		var ok bool
		switch name {
		case "id":
			ev.ID, ok = sc.str()
		case "timestamp":
			ev.Timestamp, ok = sc.str()
		case "action":
			ev.Action, ok = sc.str()
		case "target":
			ev.Target = new(registryTarget)
			ok = sc.target(ev.Target)
		case "request":
			ok = sc.fields(requestFields, func(string) (ok bool) {
				ev.Request.Host, ok = sc.str()
				return ok
			})
		case "actor":
			ok = sc.fields(actorFields, func(string) (ok bool) {
				ev.Actor.Name, ok = sc.str()
				return ok
			})
		}
		return ok
	})
	return ev, ok
}

func (sc *envelopeScanner) target(t *registryTarget) bool {
	return sc.fields(targetFields, func(name string) bool {
		var ok bool
		switch name {
		case "mediaType":
			t.MediaType, ok = sc.str()
		case "digest":
			t.Digest, ok = sc.str()
		case "size":
			t.Size, ok = sc.int()
		case "length":
			t.Length, ok = sc.int()
		case "repository":
			t.Repository, ok = sc.str()
		case "url":
			t.URL, ok = sc.str()
		case "tag":
			t.Tag, ok = sc.str()
		}
		return ok
	})
}

// fields reads an object, handing each member named in names to read (the
// scanner is then at its value) and skipping the others.
func (sc *envelopeScanner) fields(names []string, read func(name string) bool) bool {
	var seen uint64
	return sc.object(func(key string) bool {
		for i, name := range names {
			if key == name {
				if seen&(1<<i) != 0 {
					return false // repeated: encoding/json merges or overwrites
				}
				seen |= 1 << i
				return read(name)
			}
		}
		for _, name := range names {
			if strings.EqualFold(key, name) {
				return false
			}
		}
		return sc.skip(0)
	})
}

// object reads an object, calling member for each key with the scanner at
// the member's value.
func (sc *envelopeScanner) object(member func(key string) bool) bool {
	if !sc.next('{') {
		return false
	}
	if sc.next('}') {
		return true
	}
	for {
		key, ok := sc.str()
		if !ok || !sc.next(':') || !member(key) {
			return false
		}
		if !sc.next(',') {
			return sc.next('}')
		}
	}
}

// array reads an array, calling elem with the scanner at each element.
func (sc *envelopeScanner) array(elem func() bool) bool {
	if !sc.next('[') {
		return false
	}
	if sc.next(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if !sc.next(',') {
			return sc.next(']')
		}
	}
}

// skip reads a value nobody needs, at the given nesting depth.
func (sc *envelopeScanner) skip(depth int) bool {
	if depth > maxSkipDepth {
		return false
	}
	sc.space()
	if sc.i == len(sc.s) {
		return false
	}
	switch c := sc.s[sc.i]; c {
	case '{':
		return sc.object(func(string) bool { return sc.skip(depth + 1) })
	case '[':
		return sc.array(func() bool { return sc.skip(depth + 1) })
	case '"':
		_, ok := sc.str()
		return ok
	case 't':
		return sc.literal("true")
	case 'f':
		return sc.literal("false")
	case 'n':
		return sc.literal("null")
	default:
		return sc.number()
	}
}

// str reads a string without escapes, control characters or invalid UTF-8
// (encoding/json decodes the first and replaces the last).
func (sc *envelopeScanner) str() (string, bool) {
	if !sc.next('"') {
		return "", false
	}
	n := strings.IndexByte(sc.s[sc.i:], '"')
	if n < 0 {
		return "", false
	}
	s := sc.s[sc.i : sc.i+n]
	sc.i += n + 1
	ascii := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\', c < ' ':
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return s, ascii || utf8.ValidString(s)
}

// int reads an integer as encoding/json reads one into an int64; a fraction
// or an exponent, which it refuses there, makes the scanner give up.
func (sc *envelopeScanner) int() (int64, bool) {
	sc.space()
	start := sc.i
	if !sc.number() {
		return 0, false
	}
	n, err := strconv.ParseInt(sc.s[start:sc.i], 10, 64)
	return n, err == nil
}

// number reads a number as JSON spells it: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (sc *envelopeScanner) number() bool {
	sc.skipByte('-')
	switch {
	case sc.skipByte('0'):
	case sc.i < len(sc.s) && sc.s[sc.i] >= '1' && sc.s[sc.i] <= '9':
		sc.digits()
	default:
		return false
	}
	if sc.skipByte('.') && !sc.digits() {
		return false
	}
	if sc.skipByte('e') || sc.skipByte('E') {
		if !sc.skipByte('+') {
			sc.skipByte('-')
		}
		return sc.digits()
	}
	return true
}

// digits reads one or more decimal digits.
func (sc *envelopeScanner) digits() bool {
	start := sc.i
	for sc.i < len(sc.s) && sc.s[sc.i] >= '0' && sc.s[sc.i] <= '9' {
		sc.i++
	}
	return sc.i > start
}

func (sc *envelopeScanner) literal(lit string) bool {
	if !strings.HasPrefix(sc.s[sc.i:], lit) {
		return false
	}
	sc.i += len(lit)
	return true
}

// skipByte reads c if it is the next byte.
func (sc *envelopeScanner) skipByte(c byte) bool {
	if sc.i < len(sc.s) && sc.s[sc.i] == c {
		sc.i++
		return true
	}
	return false
}

// next reads c if it is the next byte after white space.
func (sc *envelopeScanner) next(c byte) bool {
	sc.space()
	return sc.skipByte(c)
}

// space skips JSON's white space.
func (sc *envelopeScanner) space() {
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}
