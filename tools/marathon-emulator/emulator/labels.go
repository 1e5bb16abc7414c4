package emulator

import (
	"errors"
	"strings"
)

// labelSelector is AppsResource's ?label= query (LabelSelectorParsers):
// comma-separated terms that must all hold — "key" (exists), "key==v",
// "key!=v", "key in (a,b)", "key notin (a,b)"; a backslash escapes the
// next character.
type labelSelector []labelTerm

type labelTerm struct {
	key    string
	op     string // exists, ==, !=, in, notin
	values []string
}

func (s labelSelector) matches(labels map[string]any) bool {
	for _, t := range s {
		v, ok := labels[t.key].(string)
		switch t.op {
		case "exists":
			if !ok {
				return false
			}
		case "==":
			if !ok || v != t.values[0] {
				return false
			}
		case "!=":
			if !ok || v == t.values[0] {
				return false
			}
		case "in":
			if !ok || !contains(t.values, v) {
				return false
			}
		case "notin":
			if !ok || contains(t.values, v) {
				return false
			}
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// token is a lexed piece of a selector: a word (escapes resolved) or one
// of the punctuation marks , ( ) == !=.
type token struct {
	word  string
	punct string
}

func lexSelector(s string) ([]token, error) {
	var out []token
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			out = append(out, token{word: cur.String()})
			cur.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("dangling escape")
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		case ch == ' ' || ch == '\t':
			flush()
		case ch == ',' || ch == '(' || ch == ')':
			flush()
			out = append(out, token{punct: string(ch)})
		case (ch == '=' || ch == '!') && i+1 < len(s) && s[i+1] == '=':
			flush()
			out = append(out, token{punct: s[i : i+2]})
			i++
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	flush()
	return out, nil
}

func parseLabelSelector(s string) (labelSelector, error) {
	bad := errors.New("Can not parse label selector " + s)
	toks, err := lexSelector(s)
	if err != nil {
		return nil, bad
	}
	var sel labelSelector
	i := 0
	for i < len(toks) {
		if toks[i].punct != "" {
			return nil, bad
		}
		t := labelTerm{key: toks[i].word, op: "exists"}
		i++
		if i < len(toks) {
			switch {
			case toks[i].punct == "==" || toks[i].punct == "!=":
				if i+1 >= len(toks) || toks[i+1].punct != "" {
					return nil, bad
				}
				t.op, t.values = toks[i].punct, []string{toks[i+1].word}
				i += 2
			case toks[i].word == "in" || toks[i].word == "notin":
				t.op = toks[i].word
				i++
				if i >= len(toks) || toks[i].punct != "(" {
					return nil, bad
				}
				i++
				for {
					if i >= len(toks) {
						return nil, bad
					}
					if toks[i].punct == ")" {
						i++
						break
					}
					if toks[i].punct == "," {
						i++
						continue
					}
					if toks[i].punct != "" {
						return nil, bad
					}
					t.values = append(t.values, toks[i].word)
					i++
				}
			}
		}
		sel = append(sel, t)
		if i < len(toks) {
			if toks[i].punct != "," {
				return nil, bad
			}
			i++
		}
	}
	if len(sel) == 0 {
		return nil, bad
	}
	return sel, nil
}
