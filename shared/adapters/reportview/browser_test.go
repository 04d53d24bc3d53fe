package reportview_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/reportview"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// TestReportPageInChromium renders a hand-built report, opens the page in real headless
// Chromium and checks what the browser made of it: one chart per audience with the treated
// and holdout lines (one point per join day) and their legend, the KPI tables and notes, no
// network request at all, and a screenshot that shows the two lines' colours.
func TestReportPageInChromium(t *testing.T) {
	browser := findChromium(t)
	rep := sampleReport()
	dir := t.TempDir()
	pagePath := filepath.Join(dir, "report.html")
	var page bytes.Buffer
	if err := reportview.WriteHTML(&page, rep); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pagePath, page.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if s := page.String(); strings.Contains(s, "http:") || strings.Contains(s, "https:") || strings.Contains(s, "//") {
		t.Errorf("the page names a URL: it must be self-contained")
	}

	proxy := startRecordingProxy(t)
	dom, shot := runChromium(t, browser, proxy.addr, pagePath)
	if reqs := proxy.pageRequests(); len(reqs) > 0 {
		t.Errorf("the page made network requests: %q", reqs)
	}

	root := parseDOM(t, dom)
	if csp := root.find(func(e *elem) bool {
		return e.name == "meta" && strings.EqualFold(e.attr("http-equiv"), "Content-Security-Policy")
	}); len(csp) != 1 ||
		csp[0].attr("content") != reportview.ContentSecurityPolicy || !strings.Contains(csp[0].attr("content"), "default-src 'none'") {
		t.Errorf("CSP meta elements %v", csp)
	}
	sections := root.find(func(e *elem) bool { return e.name == "section" && e.attr("class") == "audience" })
	if len(sections) != len(rep.Audiences) {
		t.Fatalf("%d audience sections, want %d", len(sections), len(rep.Audiences))
	}
	for i, sec := range sections {
		a := rep.Audiences[i]
		if sec.attr("data-segment") != a.Segment {
			t.Errorf("section %d is %q, want %q", i, sec.attr("data-segment"), a.Segment)
		}
		svgs := sec.find(func(e *elem) bool { return e.name == "svg" })
		if len(svgs) != 1 {
			t.Fatalf("%s: %d svg elements, want 1", a.Segment, len(svgs))
		}
		svg := svgs[0]
		if text := svg.text(); !strings.Contains(text, "Treated") || !strings.Contains(text, "Holdout") {
			t.Errorf("%s: the chart's legend lacks Treated/Holdout: %q", a.Segment, text)
		}
		lines := map[string]int{}
		for _, pl := range svg.find(func(e *elem) bool { return e.name == "polyline" }) {
			lines[pl.attr("data-series")] = len(strings.Fields(pl.attr("points")))
		}
		bars := svg.find(func(e *elem) bool { return e.name == "g" && e.attr("class") == "bar" })
		if len(bars) != len(a.Days) {
			t.Errorf("%s: %d user bars, want one per day (%d)", a.Segment, len(bars), len(a.Days))
		}
		tables := sec.find(func(e *elem) bool { return e.name == "table" })
		if len(tables) != 2 {
			t.Errorf("%s: %d tables, want the KPI and lift tables", a.Segment, len(tables))
		}
		switch a.Segment {
		case "cart_abandoner": // every day has both rates
			if lines["treated"] != len(a.Days) || lines["holdout"] != len(a.Days) || len(lines) != 2 {
				t.Errorf("%s: polylines %v, want treated and holdout with %d points each", a.Segment, lines, len(a.Days))
			}
			text := sec.text()
			for _, want := range []string{"1,234.50 EUR", "8.95 EUR", "+12.4 pp (95% CI +4.3 to +20.5 pp), significant", "Contaminated: on 2026-02-03, 2026-02-04"} {
				if !strings.Contains(text, want) {
					t.Errorf("%s: the page does not say %q", a.Segment, want)
				}
			}
		case "lapsed": // below the minimum sample: no daily rate, no line
			if len(lines) != 0 {
				t.Errorf("%s: polylines %v without any daily rate", a.Segment, lines)
			}
			if text := sec.text(); strings.Count(text, "not enough data") < 4 {
				t.Errorf("%s: \"not enough data\" said %d times: %q", a.Segment, strings.Count(text, "not enough data"), text)
			}
		}
	}
	if text := root.text(); !strings.Contains(text, "99.99 EUR") {
		t.Error("the group's spend is not on the page")
	}

	checkScreenshot(t, shot)
}

// findChromium finds a Chromium on PATH. Without one the test skips, except in CI or with
// EMULATORS_REQUIRED=1, where it fails: the page is checked in a real browser or not at all.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg, remedy = "no chromium, chromium-browser or google-chrome on PATH", "install it: apt-get install chromium"
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set, so the test may not skip; %s)", msg, remedy)
	}
	ingesttest.MissingTool(t, msg, remedy)
	return ""
}

// runChromium opens file in headless Chromium once, with every request sent to the
// recording proxy (loopback included) and every host name unresolvable, and returns the DOM
// after rendering and a PNG screenshot. Chromium and every process it starts run in their
// own process group, which is killed when the run ends or times out.
func runChromium(t *testing.T, browser, proxy, file string) (dom, shot []byte) {
	t.Helper()
	dir := t.TempDir()
	shotPath := filepath.Join(dir, "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless=new", "--no-sandbox", "--disable-gpu",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--no-first-run", "--no-default-browser-check",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
		"--disable-default-apps", "--disable-breakpad", "--disable-crash-reporter", "--metrics-recording-only",
		"--proxy-server=http://"+proxy, "--proxy-bypass-list=<-loopback>",
		"--window-size=900,1600", "--screenshot="+shotPath, "--dump-dom", "file://"+file)
	// Its own home: Chromium keeps its crash database there whatever --user-data-dir says,
	// and the crash handler, which leaves the process group, names it in its command line.
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	killGroup := func() error {
		if cmd.Process == nil {
			return nil
		}
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return nil // the group is gone already
		}
		return err
	}
	cmd.Cancel = killGroup
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	killGroup() // helpers Chromium left behind in its group
	killStragglers(t, dir)
	if err != nil {
		t.Fatalf("chromium: %v\nstderr:\n%s", err, tail(stderr.String(), 4000))
	}
	shot, err = os.ReadFile(shotPath)
	if err != nil {
		t.Fatalf("no screenshot: %v\nstderr:\n%s", err, tail(stderr.String(), 4000))
	}
	return stdout.Bytes(), shot
}

// killStragglers kills, by pid, the processes whose command line names dir: Chromium's crash
// handler daemonises out of the process group, and must not outlive the test.
func killStragglers(t *testing.T, dir string) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(cmdline, []byte(dir)) {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d", &pid); err == nil && pid != os.Getpid() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// checkScreenshot decodes the PNG and checks that it is not blank: its pixels vary, and both
// lines' colours are on it (the SVG was drawn, not only the text).
func checkScreenshot(t *testing.T, shot []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	b := img.Bounds()
	var n, sum, sumSq float64
	var treated, holdout int
	near := func(r, g, bl uint32, want [3]uint32) bool {
		d := func(a, b uint32) uint32 {
			if a > b {
				return a - b
			}
			return b - a
		}
		return d(r, want[0]) < 24 && d(g, want[1]) < 24 && d(bl, want[2]) < 24
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			l := 0.299*float64(r) + 0.587*float64(g) + 0.114*float64(bl)
			n, sum, sumSq = n+1, sum+l, sumSq+l*l
			if near(r, g, bl, [3]uint32{0x1f, 0x6f, 0xd1}) {
				treated++
			}
			if near(r, g, bl, [3]uint32{0xe0, 0x61, 0x2b}) {
				holdout++
			}
		}
	}
	mean := sum / n
	if variance := sumSq/n - mean*mean; variance < 100 {
		t.Errorf("the screenshot is blank: luminance variance %.1f", variance)
	}
	if treated < 200 || holdout < 200 {
		t.Errorf("the screenshot shows %d pixels of the treated line's colour and %d of the holdout's: the chart was not drawn", treated, holdout)
	}
}

// recordingProxy is an HTTP proxy on loopback that records every request it gets (GET
// http://..., CONNECT host:443) and answers each with 403: with Chromium pointed at it, any
// request the page makes shows up here.
type recordingProxy struct {
	addr string
	mu   sync.Mutex
	seen []string
}

func startRecordingProxy(t *testing.T) *recordingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{addr: ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.seen = append(p.seen, r.Method+" "+r.RequestURI)
		p.mu.Unlock()
		http.Error(w, "no network in this test", http.StatusForbidden)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p
}

// browserServices are the hosts Chromium itself calls in the background (component and
// clock updates, sign-in), whatever page it shows, even with --disable-background-networking:
// not requests of the page. Exact names only, so that a page loading a web font from
// fonts.googleapis.com is still caught.
var browserServices = map[string]bool{"update.googleapis.com": true, "clients2.google.com": true, "accounts.google.com": true,
	"redirector.gvt1.com": true, "edgedl.me.gvt1.com": true, "optimizationguide-pa.googleapis.com": true,
	"safebrowsingohttpgateway.googleapis.com": true, "clientservices.googleapis.com": true, "content-autofill.googleapis.com": true}

// pageRequests are the requests the proxy got, but Chromium's own background ones.
func (p *recordingProxy) pageRequests() []string {
	var out []string
	for _, r := range p.requests() {
		target := strings.TrimPrefix(strings.TrimPrefix(r[strings.Index(r, " ")+1:], "http://"), "https://")
		host := target
		if i := strings.IndexAny(target, ":/?"); i >= 0 {
			host = target[:i]
		}
		if !browserServices[host] {
			out = append(out, r)
		}
	}
	return out
}

func (p *recordingProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

// elem is an element of the dumped DOM.
type elem struct {
	name     string
	attrs    map[string]string
	children []*elem
	texts    []string // text directly inside, in order (children's text is theirs)
}

func (e *elem) attr(name string) string { return e.attrs[name] }

// find returns the elements below e (e included) that match, in document order.
func (e *elem) find(match func(*elem) bool) []*elem {
	var out []*elem
	if match(e) {
		out = append(out, e)
	}
	for _, c := range e.children {
		out = append(out, c.find(match)...)
	}
	return out
}

// text is all the text below e, whitespace collapsed.
func (e *elem) text() string {
	var b strings.Builder
	var walk func(*elem)
	walk = func(e *elem) {
		for _, s := range e.texts {
			b.WriteString(s + " ")
		}
		for _, c := range e.children {
			walk(c)
		}
	}
	walk(e)
	return strings.Join(strings.Fields(b.String()), " ")
}

// parseDOM reads Chromium's serialised DOM (HTML: void elements unclosed) into a tree.
func parseDOM(t *testing.T, dom []byte) *elem {
	t.Helper()
	d := xml.NewDecoder(bufio.NewReader(bytes.NewReader(dom)))
	d.Strict, d.AutoClose, d.Entity = false, xml.HTMLAutoClose, xml.HTMLEntity
	root := &elem{name: "#document"}
	stack := []*elem{root}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("dumped DOM: %v\n%s", err, dom)
		}
		top := stack[len(stack)-1]
		switch tok := tok.(type) {
		case xml.StartElement:
			e := &elem{name: strings.ToLower(tok.Name.Local), attrs: map[string]string{}}
			for _, a := range tok.Attr {
				name := strings.ToLower(a.Name.Local)
				if a.Name.Space != "" && a.Name.Space != "xmlns" {
					name = strings.ToLower(a.Name.Space + ":" + a.Name.Local)
				}
				e.attrs[name] = a.Value
			}
			top.children = append(top.children, e)
			stack = append(stack, e)
		case xml.EndElement:
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
		case xml.CharData:
			if s := strings.TrimSpace(string(tok)); s != "" && top.name != "style" {
				top.texts = append(top.texts, s)
			}
		}
	}
	if len(root.find(func(e *elem) bool { return e.name == "body" })) != 1 {
		t.Fatalf("the dumped DOM has no body:\n%s", dom)
	}
	return root
}

// The proxy sees what a page loads: a page with a remote image is caught. (Without this, a
// Chromium that ignored the proxy flags would pass the test above vacuously.)
func TestRecordingProxyCatchesRemoteLoads(t *testing.T) {
	browser := findChromium(t)
	file := filepath.Join(t.TempDir(), "remote.html")
	if err := os.WriteFile(file, []byte(`<!DOCTYPE html><html><body><img src="http://tracker.example/pixel.png"></body></html>`), 0o600); err != nil {
		t.Fatal(err)
	}
	proxy := startRecordingProxy(t)
	runChromium(t, browser, proxy.addr, file)
	if reqs := proxy.pageRequests(); !strings.Contains(fmt.Sprint(reqs), "tracker.example") {
		t.Fatalf("the proxy saw %q, want the image request", reqs)
	}
}
