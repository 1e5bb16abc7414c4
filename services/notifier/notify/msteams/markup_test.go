package msteams_test

import (
	"strings"
	"testing"

	"github.com/slipway-cd/slipway/services/notifier/render/rendertest"
)

// TestPayloadMarkupIsShownNotActedOn: an actor, repository, tag, approver
// or reason that holds Markdown ([label](url)), an autolink or HTML
// reaches the card escaped, in the TextBlocks and in the FactSet's titles
// and values (Teams renders Markdown in all of them), and is shown as
// typed.
func TestPayloadMarkupIsShownNotActedOn(t *testing.T) {
	wf := newWorkflows(t)
	r := newReceiver(t, wf.url())
	for _, n := range rendertest.Notifications(t) {
		if err := r.Notify(t.Context(), n); err != nil {
			t.Fatalf("Notify: %v", err)
		}
	}
	cards := wf.cards()
	if len(cards) != 3 {
		t.Fatalf("%d cards, want 3", len(cards))
	}
	for i, c := range cards {
		var shown strings.Builder
		for _, md := range markdownOf(c["body"]) {
			if m := markupIn(md); len(m) > 0 {
				t.Errorf("card %d: Teams acts on %q in %.200q", i, m, md)
			}
			rendertest.NoControls(t, "card text", md)
			shown.WriteString(unescape(md) + "\n")
		}
		for _, want := range []string{rendertest.MarkdownLink, rendertest.SlackPing} {
			if !strings.Contains(shown.String(), want) {
				t.Errorf("card %d does not show %q:\n%s", i, want, shown.String())
			}
		}
	}
}

// markdownOf returns every text of a card's elements that Teams renders as
// Markdown: TextBlock texts, and Fact titles and values.
func markdownOf(v any) []string {
	var out []string
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			out = append(out, markdownOf(e)...)
		}
	case map[string]any:
		if v["type"] == "TextBlock" {
			s, _ := v["text"].(string)
			return append(out, s)
		}
		if t, ok := v["title"].(string); ok {
			s, _ := v["value"].(string)
			return append(out, t, s)
		}
		for _, e := range v {
			out = append(out, markdownOf(e)...)
		}
	}
	return out
}

// markdownChar is one character of Markdown source and whether a
// backslash escaped it (CommonMark: any ASCII punctuation).
type markdownChar struct {
	r       rune
	escaped bool
}

func parseEscapes(md string) []markdownChar {
	var out []markdownChar
	rs := []rune(md)
	for i := 0; i < len(rs); i++ {
		if rs[i] == '\\' && i+1 < len(rs) && strings.ContainsRune("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", rs[i+1]) {
			out = append(out, markdownChar{rs[i+1], true})
			i++
			continue
		}
		out = append(out, markdownChar{rs[i], false})
	}
	return out
}

// markupIn returns what a Markdown renderer would turn into a link or an
// element: an unescaped [label](url), or an unescaped <…> (an autolink or
// HTML, which some Teams clients render).
func markupIn(md string) []string {
	cs := parseEscapes(md)
	var found []string
	text := func(a, b int) string {
		var s strings.Builder
		for _, c := range cs[a:b] {
			s.WriteRune(c.r)
		}
		return s.String()
	}
	for i, c := range cs {
		switch {
		case c.r == '[' && !c.escaped:
			for j := i + 1; j+1 < len(cs); j++ {
				if cs[j].r == ']' && !cs[j].escaped {
					if cs[j+1].r == '(' && !cs[j+1].escaped {
						found = append(found, text(i, min(j+20, len(cs))))
					}
					break
				}
			}
		case c.r == '<' && !c.escaped:
			for j := i + 1; j < len(cs); j++ {
				if cs[j].r == '>' && !cs[j].escaped {
					found = append(found, text(i, j+1))
					break
				}
			}
		}
	}
	return found
}

// unescape is what a reader sees of md's text: the escapes removed.
func unescape(md string) string {
	var s strings.Builder
	for _, c := range parseEscapes(md) {
		s.WriteRune(c.r)
	}
	return s.String()
}
