package markup_test

import (
	"testing"

	"github.com/slipway-cd/slipway/services/notifier/render/markup"
)

// hostile are values a payload can carry, and what each markup must make
// of them.
var hostile = []struct {
	in                      string
	slack, teams, html, txt string
}{
	{
		in:    "<!channel> <https://evil.example|Approve here>",
		slack: "&lt;!channel&gt; &lt;https://evil.example|Approve here&gt;",
		teams: `\<!channel\> \<https://evil.example|Approve here\>`,
		html:  "&lt;!channel&gt; &lt;https://evil.example|Approve here&gt;",
		txt:   "<!channel> <https://evil.example|Approve here>",
	},
	{
		in:    "[Approve here](https://evil.example)",
		slack: "[Approve here](https://evil.example)",
		teams: `\[Approve here\](https://evil.example)`,
		html:  "[Approve here](https://evil.example)",
		txt:   "[Approve here](https://evil.example)",
	},
	{
		in:    "<b>x</b> & <@U123>",
		slack: "&lt;b&gt;x&lt;/b&gt; &amp; &lt;@U123&gt;",
		teams: `\<b\>x\</b\> \& \<@U123\>`,
		html:  "&lt;b&gt;x&lt;/b&gt; &amp; &lt;@U123&gt;",
		txt:   "<b>x</b> & <@U123>",
	},
	{
		in:    "ci\x1b[31m\x00bot\u202e\tok\r\nnext",
		slack: "ci [31m bot ok\nnext",
		teams: `ci \[31m bot ok` + "\nnext",
		html:  "ci [31m bot ok\nnext",
		txt:   "ci [31m bot ok\nnext",
	},
	{
		in:    "# Urgent\n- approve\n12. now\n> quoted\n**bold** _it_ my_app ~x~ `c` \\",
		slack: "# Urgent\n- approve\n12. now\n&gt; quoted\n**bold** _it_ my_app ~x~ `c` \\",
		teams: "\\# Urgent\n\\- approve\n12\\. now\n\\> quoted\n\\*\\*bold\\*\\* \\_it\\_ my_app \\~x\\~ \\`c\\` \\\\",
		html:  "# Urgent\n- approve\n12. now\n&gt; quoted\n**bold** _it_ my_app ~x~ `c` \\",
		txt:   "# Urgent\n- approve\n12. now\n> quoted\n**bold** _it_ my_app ~x~ `c` \\",
	},
	{
		in:    "apps/web 1.4.0 deployed on azure-int: /dev/web (38 s)",
		slack: "apps/web 1.4.0 deployed on azure-int: /dev/web (38 s)",
		teams: "apps/web 1.4.0 deployed on azure-int: /dev/web (38 s)",
		html:  "apps/web 1.4.0 deployed on azure-int: /dev/web (38 s)",
		txt:   "apps/web 1.4.0 deployed on azure-int: /dev/web (38 s)",
	},
}

func TestEachMarkupShowsPayloadTextAsTyped(t *testing.T) {
	for _, c := range hostile {
		for _, m := range []struct {
			name string
			f    func(string) string
			want string
		}{
			{name: "Slack", f: markup.Slack, want: c.slack},
			{name: "Teams", f: markup.Teams, want: c.teams},
			{name: "HTML", f: markup.HTML, want: c.html},
			{name: "Text", f: markup.Text, want: c.txt},
		} {
			if got := m.f(c.in); got != m.want {
				t.Errorf("%s(%q)\n got %q\nwant %q", m.name, c.in, got, m.want)
			}
		}
	}
}

func TestLineKeepsOneLine(t *testing.T) {
	if got, want := markup.Line("ci-bot\nApprove at: https://evil.example"), "ci-bot Approve at: https://evil.example"; got != want {
		t.Errorf("Line = %q, want %q", got, want)
	}
}

func TestSlackURLCannotEndTheLinkEarly(t *testing.T) {
	if got, want := markup.SlackURL("https://ok.example/a|<!channel> b>"), "https://ok.example/a%7C%3C!channel%3E%20b%3E"; got != want {
		t.Errorf("SlackURL = %q, want %q", got, want)
	}
}
