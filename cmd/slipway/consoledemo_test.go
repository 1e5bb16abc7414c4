package main

import (
	"fmt"
	"regexp"
	"testing"
	"time"
)

// TestDemoPrdApprovalIsClickedInTheConsole plays `slipway demo` as a
// person watching it: the console it prints opens in the browser, and
// during the pause before the demo would approve by itself, the prd
// promotion is approved in the console's queue. The demo names who
// approved (the console's anonymous user, via console) and the release
// goes on to prd.
func TestDemoPrdApprovalIsClickedInTheConsole(t *testing.T) {
	b := startBrowser(t)
	opts := fastDemo()
	// Long enough that the demo never approves by itself while the
	// browser does.
	opts.ApprovalPause = 2 * time.Minute
	d := playDemo(t, opts)
	out := d.out
	defer func() {
		if _, err := d.stop(); t.Failed() {
			t.Logf("output:\n%s\nlog:\n%s\nerror: %v", out, d.logs, err)
		}
	}()

	line := out.waitFor(t, regexp.MustCompile(`approve the prd promotion in the console \((http://\S+/)approvals\)`))
	consoleURL := regexp.MustCompile(`http://\S+/`).FindString(line)
	p := openTab(t, b, consoleURL)
	p.open("/approvals")
	p.waitJS("the prd promotion in the queue", fmt.Sprintf(`document.body.innerText.includes(%q)`, demoRepo))
	p.check(demoRepo)
	p.clickButton("approve selected")

	out.waitFor(t, regexp.MustCompile(regexp.QuoteMeta("the prd promotion was approved by anonymous (via console)")))
	out.waitFor(t, regexp.MustCompile(regexp.QuoteMeta(demoRepo+":"+demoGoodTag+" runs in dev, tst and prd")))
	if regexp.MustCompile(`approving the prd promotion as`).MatchString(out.String()) {
		t.Error("the demo approved by itself although the console's approval came first")
	}
}
