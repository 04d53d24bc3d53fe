// Package docs_test checks the repository's Markdown: every relative link resolves to a file or
// folder of the repository, every #anchor to a heading of its target (GitHub's slugs), and the
// README stays short enough to be a front door.
package docs_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// maxReadmeLines keeps README.md the front door: what it is, two commands, a tour, a map, links.
const maxReadmeLines = 200

func TestMarkdownLinksResolve(t *testing.T) {
	root := ingesttest.RepoRoot(t)
	files, err := repoFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, f := range files {
		if strings.HasSuffix(f, ".md") {
			docs = append(docs, f)
		}
	}
	if !slices.Contains(docs, "README.md") {
		t.Fatalf("README.md not among the %d Markdown files found under %s", len(docs), root)
	}
	problems, err := checkLinks(root, files, docs)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	t.Logf("checked the links of %d Markdown files", len(docs))
}

func TestReadmeIsShort(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(ingesttest.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte("\n")); n > maxReadmeLines {
		t.Errorf("README.md has %d lines, at most %d: move reference material next to what it describes and link to it", n, maxReadmeLines)
	}
}

// TestCheckerFindsBrokenLinks keeps the checker honest: a tree with a missing file, a missing
// anchor and links that must pass (code, external URLs, folders, duplicate headings).
func TestCheckerFindsBrokenLinks(t *testing.T) {
	root := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("README.md", "# Top\n\n"+
		"[ok](docs/a.md#the-app_user_id-route) [dup](docs/a.md#notes-1) [dir](docs/) [self](#top)\n"+
		"[web](https://example.com/x) [mail](mailto:a@example.com) `[code](missing.md)`\n"+
		"```\n[fenced](missing.md)\n```\n"+
		"[gone](docs/missing.md) [noanchor](docs/a.md#nowhere) [selfmiss](#bottom)\n"+
		"[ref]: docs/also-missing.md\n")
	write("docs/a.md", "# A\n\n## The `app_user_id` route\n\n## Notes\n\n## Notes\n")
	files := []string{"README.md", "docs/a.md"}
	problems, err := checkLinks(root, files, []string{"README.md", "docs/a.md"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`README.md:8: link "docs/missing.md": no such file or folder in the repository`,
		`README.md:8: link "docs/a.md#nowhere": no heading with anchor "nowhere" in docs/a.md`,
		`README.md:8: link "#bottom": no heading with anchor "bottom" in README.md`,
		`README.md:9: link "docs/also-missing.md": no such file or folder in the repository`,
	}
	if !slices.Equal(problems, want) {
		t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(problems, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestSlug(t *testing.T) {
	for heading, want := range map[string]string{
		"Ingest API v1":                    "ingest-api-v1",
		"`DELETE /v1/users/{app_user_id}`": "delete-v1usersapp_user_id",
		"Segment state (`segments=true`)":  "segment-state-segmentstrue",
		"The `retarget` CLI":               "the-retarget-cli",
		"segment-updater, segment-sweeper": "segment-updater-segment-sweeper",
		"**Bold** and [a link](x.md)":      "bold-and-a-link",
		"Données à caractère personnel":    "données-à-caractère-personnel",
		"Cost and performance — measured!": "cost-and-performance--measured",
		"  Trailing hashes ##":             "trailing-hashes",
	} {
		if got := slug(heading); got != want {
			t.Errorf("slug(%q) = %q, want %q", heading, got, want)
		}
	}
}

// repoFiles lists the repository's files (slash-separated, relative to root): what git tracks
// plus new files it does not ignore, so a doc is checked before it is committed and a link to an
// ignored file (build output, local state) counts as broken. Without git, the tree is walked,
// leaving out tool and build folders.
func repoFiles(root string) ([]string, error) {
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err == nil {
		var files []string
		for _, f := range strings.Split(string(out), "\x00") {
			if f == "" {
				continue
			}
			// Deleted but not yet staged files are still listed as tracked.
			if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(f))); err == nil {
				files = append(files, f)
			}
		}
		return files, nil
	}
	skip := map[string]bool{".git": true, ".devtools/node_modules": true, "cdk.out": true, "build": true, ".dev": true}
	var files []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if skip[rel] {
				return filepath.SkipDir
			}
			return nil
		}
		files = append(files, rel)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", root, err)
	}
	return files, nil
}

var (
	// inlineLink matches [text](target "title") and images; the target may be in <...>.
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)`)
	// refDefinition matches a reference-style link definition: [id]: target.
	refDefinition = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)`)
	// htmlAnchor matches explicit anchors: <a name="x"> or any tag with id="x".
	htmlAnchor = regexp.MustCompile(`<[a-zA-Z][^>]*\s(?:name|id)="([^"]+)"`)
	// scheme marks a link that is not a path in the repository (https:, mailto:...).
	scheme = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
	// lineAnchor is GitHub's line anchor on a non-Markdown file (#L10, #L10-L20).
	lineAnchor = regexp.MustCompile(`^L\d+(-L\d+)?$`)
)

// checkLinks checks every link of the docs and returns one line per problem, in file order.
func checkLinks(root string, files, docs []string) ([]string, error) {
	exists := map[string]bool{} // files and every folder above them
	for _, f := range files {
		exists[f] = true
		for d := path.Dir(f); d != "."; d = path.Dir(d) {
			exists[d] = true
		}
	}
	anchors := map[string]map[string]bool{} // by Markdown file, read once
	anchorsOf := func(doc string) (map[string]bool, error) {
		if a, ok := anchors[doc]; ok {
			return a, nil
		}
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(doc)))
		if err != nil {
			return nil, err
		}
		a := headingAnchors(data)
		anchors[doc] = a
		return a, nil
	}

	var problems []string
	for _, doc := range docs {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(doc)))
		if err != nil {
			return nil, err
		}
		for _, l := range links(data) {
			target := strings.Trim(l.target, "<>")
			if target == "" || scheme.MatchString(target) || strings.HasPrefix(target, "//") {
				continue
			}
			p, anchor, _ := strings.Cut(target, "#")
			if q := strings.IndexByte(p, '?'); q >= 0 {
				p = p[:q]
			}
			report := func(format string, args ...any) {
				problems = append(problems, fmt.Sprintf("%s:%d: link %q: ", doc, l.line, l.target)+fmt.Sprintf(format, args...))
			}
			resolved := doc
			if p != "" {
				unescaped, err := url.PathUnescape(p)
				if err != nil {
					report("bad escape: %v", err)
					continue
				}
				if strings.HasPrefix(unescaped, "/") {
					resolved = path.Clean(strings.TrimPrefix(unescaped, "/"))
				} else {
					resolved = path.Join(path.Dir(doc), unescaped)
				}
				if resolved == "." {
					continue // the repository root
				}
				if strings.HasPrefix(resolved, "../") || !exists[resolved] {
					report("no such file or folder in the repository")
					continue
				}
			}
			if anchor == "" {
				continue
			}
			if !strings.HasSuffix(resolved, ".md") {
				if !lineAnchor.MatchString(anchor) {
					report("anchor %q on a file that is not Markdown", anchor)
				}
				continue
			}
			a, err := anchorsOf(resolved)
			if err != nil {
				return nil, err
			}
			if want, err := url.PathUnescape(anchor); err != nil || !a[strings.ToLower(want)] {
				report("no heading with anchor %q in %s", anchor, resolved)
			}
		}
	}
	return problems, nil
}

// link is one link target and the line it is on.
type link struct {
	target string
	line   int
}

// links returns the link targets of a Markdown document, outside code blocks and code spans.
func links(data []byte) []link {
	var out []link
	forEachProseLine(data, func(n int, line string) {
		line = stripCodeSpans(line)
		for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
			out = append(out, link{target: m[1], line: n})
		}
		if m := refDefinition.FindStringSubmatch(line); m != nil {
			out = append(out, link{target: m[1], line: n})
		}
	})
	return out
}

// headingAnchors returns the anchors GitHub gives a document: a slug per heading, with -1, -2...
// for repeats, and explicit HTML anchors.
func headingAnchors(data []byte) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	add := func(text string) {
		s := slug(text)
		if n := seen[s]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			anchors[s] = true
		}
		seen[s]++
	}
	atx := regexp.MustCompile(`^ {0,3}#{1,6}(?:\s+(.*))?$`)
	setext := regexp.MustCompile(`^ {0,3}(=+|-+)\s*$`)
	prev := ""
	forEachProseLine(data, func(_ int, line string) {
		for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
			anchors[strings.ToLower(m[1])] = true
		}
		switch {
		case atx.MatchString(line):
			add(atx.FindStringSubmatch(line)[1])
			line = "" // a heading is never the text of a setext heading
		case setext.MatchString(line) && strings.TrimSpace(prev) != "" && !strings.HasPrefix(strings.TrimSpace(prev), "|"):
			add(prev)
			line = ""
		}
		prev = line
	})
	return anchors
}

var (
	markdownLink = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	closingHash  = regexp.MustCompile(`\s+#+\s*$`)
)

// slug is GitHub's anchor for a heading: the rendered text, lowercased, without punctuation
// except '-' and '_', spaces turned into '-'.
func slug(heading string) string {
	text := strings.TrimSpace(heading)
	text = closingHash.ReplaceAllString(text, "")
	text = markdownLink.ReplaceAllString(text, "$1")
	text = strings.NewReplacer("`", "", "*", "").Replace(text)
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Mn, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// forEachProseLine calls fn with every line (numbered from 1) outside fenced code blocks.
func forEachProseLine(data []byte, fn func(n int, line string)) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
	fence := ""
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) && strings.TrimSpace(strings.TrimLeft(trimmed, fence[:1])) == "" {
				fence = ""
			}
			continue
		}
		if f := fenceOpening(trimmed); f != "" {
			fence = f
			continue
		}
		fn(n, line)
	}
	if err := sc.Err(); err != nil && !errors.Is(err, bufio.ErrTooLong) {
		panic(err) // a bytes.Reader does not fail
	}
}

// fenceOpening returns the fence (``` or ~~~, at least three) a line opens, or "".
func fenceOpening(line string) string {
	for _, c := range []string{"`", "~"} {
		if strings.HasPrefix(line, c+c+c) {
			n := len(line) - len(strings.TrimLeft(line, c))
			return strings.Repeat(c, n)
		}
	}
	return ""
}

// stripCodeSpans removes `code spans` from a line, so links shown as code are not checked.
func stripCodeSpans(line string) string {
	var b strings.Builder
	for i := 0; i < len(line); {
		if line[i] != '`' {
			b.WriteByte(line[i])
			i++
			continue
		}
		n := 0
		for i+n < len(line) && line[i+n] == '`' {
			n++
		}
		delim := line[i : i+n]
		end := -1
		for j := i + n; j < len(line); {
			k := strings.Index(line[j:], delim)
			if k < 0 {
				break
			}
			k += j
			if (k+n == len(line) || line[k+n] != '`') && (k == 0 || line[k-1] != '`') {
				end = k
				break
			}
			j = k + 1
		}
		if end < 0 { // no closing run: the backticks are literal
			b.WriteString(delim)
			i += n
			continue
		}
		i = end + n
	}
	return b.String()
}
