package marathon

import (
	"bytes"
	"errors"
	"io"
)

// The server-sent events format is parsed here by hand: it is a few lines of
// "field: value", and the Go SSE libraries either pull in a web framework's
// worth of dependencies or are unmaintained, and none lets us watch for
// missing heartbeats or bound the size of an event.

// maxEventBytes bounds one event. Marathon's largest (api_post_event with a
// whole app definition) is far smaller; the bound only keeps a broken
// stream from eating memory.
const maxEventBytes = 8 << 20

var errEventTooLarge = errors.New("event larger than 8 MiB dropped")

// sseParser reads events from a text/event-stream body. Lines may end in
// "\r\n", "\n" or "\r", and may be split anywhere across reads.
type sseParser struct {
	r          io.Reader
	buf        []byte
	start, end int
	err        error // from r, returned once buf is drained
	skipLF     bool  // the last line ended in '\r'; a '\n' right after belongs to it

	line     []byte
	lineLong bool

	typ      string
	data     []byte
	hasData  bool
	tooLarge bool
}

func newSSEParser(r io.Reader) *sseParser {
	return &sseParser{r: r, buf: make([]byte, 32<<10)}
}

// next returns the next event. Comments, heartbeats and events without data
// are skipped. errEventTooLarge is not fatal: parsing can go on.
func (p *sseParser) next() (Event, error) {
	for {
		line, err := p.readLine()
		if err != nil {
			return Event{}, err
		}
		if p.lineLong {
			p.tooLarge = true
			continue
		}
		if len(line) == 0 {
			ev, ok, err := p.dispatch()
			if err != nil || ok {
				return ev, err
			}
			continue
		}
		p.field(line)
	}
}

func (p *sseParser) dispatch() (Event, bool, error) {
	typ, data, hasData, tooLarge := p.typ, p.data, p.hasData, p.tooLarge
	p.typ, p.data, p.hasData, p.tooLarge = "", p.data[:0], false, false
	if tooLarge {
		return Event{}, false, errEventTooLarge
	}
	data = bytes.TrimSuffix(data, []byte("\n"))
	// An event with no data, or only empty data lines, is a heartbeat.
	if !hasData || len(data) == 0 {
		return Event{}, false, nil
	}
	if typ == "" {
		typ = "message"
	}
	return Event{Type: typ, Data: bytes.Clone(data)}, true, nil
}

func (p *sseParser) field(line []byte) {
	name, value, found := bytes.Cut(line, []byte(":"))
	if found && len(name) == 0 {
		return // a comment, which some servers use as heartbeat
	}
	if len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	switch string(name) {
	case "event":
		p.typ = string(value)
	case "data":
		if len(p.data)+len(value)+1 > maxEventBytes {
			p.tooLarge = true
			return
		}
		p.data = append(p.data, value...)
		p.data = append(p.data, '\n')
		p.hasData = true
	}
	// "id" and "retry" are ignored: Marathon cannot resume a stream, and the
	// reconnect delay is ours to choose.
}

// readLine returns the next line without its terminator. The slice is valid
// until the next call.
func (p *sseParser) readLine() ([]byte, error) {
	p.line, p.lineLong = p.line[:0], false
	for {
		if p.start == p.end {
			if p.err != nil {
				return nil, p.err
			}
			n, err := p.r.Read(p.buf)
			p.start, p.end, p.err = 0, n, err
			continue
		}
		chunk := p.buf[p.start:p.end]
		if p.skipLF {
			p.skipLF = false
			if chunk[0] == '\n' {
				p.start++
				continue
			}
		}
		i := bytes.IndexAny(chunk, "\r\n")
		if i < 0 {
			p.appendLine(chunk)
			p.start = p.end
			continue
		}
		p.appendLine(chunk[:i])
		p.skipLF = chunk[i] == '\r'
		p.start += i + 1
		return p.line, nil
	}
}

func (p *sseParser) appendLine(b []byte) {
	if len(p.line)+len(b) > maxEventBytes {
		p.lineLong = true
		return
	}
	p.line = append(p.line, b...)
}
