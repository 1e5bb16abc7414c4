package slackmsg_test

import (
	"testing"

	"github.com/slipway-cd/slipway/pkg/platform/slackmsg"
)

// TestApprovalButtonIDsAreTheContract pins the ids on the wire: messages
// already in Slack carry them.
func TestApprovalButtonIDsAreTheContract(t *testing.T) {
	if slackmsg.ApprovalBlockID != "slipway_approval" || slackmsg.ActionApprove != "slipway_approve" || slackmsg.ActionReject != "slipway_reject" {
		t.Fatalf("ids changed: %q %q %q", slackmsg.ApprovalBlockID, slackmsg.ActionApprove, slackmsg.ActionReject)
	}
}

func TestPressReadsWhatTheButtonsCarry(t *testing.T) {
	for _, c := range []struct {
		action string
		grant  bool
		ok     bool
	}{
		{slackmsg.ActionApprove, true, true},
		{slackmsg.ActionReject, false, true},
		{"overflow_menu", false, false},
		{"", false, false},
	} {
		id, grant, ok := slackmsg.Press(c.action, slackmsg.ButtonValue("apr-1"))
		if ok != c.ok || grant != c.grant || (ok && id != "apr-1") || (!ok && id != "") {
			t.Errorf("Press(%q) = %q %t %t, want grant %t ok %t", c.action, id, grant, ok, c.grant, c.ok)
		}
		if slackmsg.IsApprovalButton(c.action) != c.ok {
			t.Errorf("IsApprovalButton(%q) = %t", c.action, !c.ok)
		}
	}
}

func TestEscapeKeepsEventTextLiteral(t *testing.T) {
	for in, want := range map[string]string{
		"<!channel> & <@U123|x>":         "&lt;!channel&gt; &amp; &lt;@U123|x&gt;",
		"<https://evil.example|Approve>": "&lt;https://evil.example|Approve&gt;",
		"*release* _manager_":            "*release* _manager_",
		"a\x1b[31mb\tc":                  "a [31mb c",
		"admin\u202etxt.exe":             "admintxt.exe",
		"&amp;":                          "&amp;amp;",
	} {
		if got := slackmsg.Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}
