package safesvg

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

func TestClean(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     string   // the whole output, when set
		has      []string // in the output
		hasNot   []string // never in the output
		err      bool
	}{
		{name: "a picture as perf draws it",
			in: `<svg xmlns="http://www.w3.org/2000/svg" width="900" height="400" viewBox="0 0 900 400" font-family="Helvetica, Arial, sans-serif" font-size="12">
<title>latency</title><defs><clipPath id="a"><rect x="1" y="2" width="3" height="4"/></clipPath>
<marker id="m0" markerUnits="userSpaceOnUse" markerWidth="10" refX="0" overflow="visible"><path d="M-2.6-2.6h5.2z" fill="none"/></marker></defs>
<g clip-path="url(#a)"><path marker-start="url(#m0)" d="M1 2m3 4"/><text x="1" text-anchor="middle">0.2 &lt; 1 &amp; "q"</text></g></svg>`,
			has: []string{`<svg width="900" height="400" viewBox="0 0 900 400" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
				`<clipPath id="p-a">`, `<g clip-path="url(#p-a)">`, `marker-start="url(#p-m0)"`, `markerWidth="10"`, `overflow="visible"`,
				`<title>latency</title>`, `0.2 &lt; 1 &amp; &#34;q&#34;</text>`, `<rect x="1" y="2" width="3" height="4"></rect>`}},
		{name: "the smallest", in: `<svg/>`, want: `<svg></svg>`},
		{name: "script, style, events, links, images, foreignObject, animation are dropped",
			in: `<svg onload="alert(1)" style="position:fixed" transform="scale(9)"><script>alert(2)</script><style>body{display:none}</style>
<rect onclick="alert(3)" style="fill:red" width="1"/><a href="javascript:alert(4)"><text>link</text></a>
<image href="http://evil.example/x.png"/><foreignObject><div xmlns="http://www.w3.org/1999/xhtml">html</div></foreignObject>
<set attributeName="href" to="javascript:alert(5)"/><animate attributeName="x"/><use href="#x"/></svg>`,
			want: "<svg>\n<rect width=\"1\"></rect>\n\n</svg>"},
		{name: "URLs other than the picture's own fragments",
			in:     `<svg><rect fill="url(http://evil.example/#a)" stroke="URL(#a)" clip-path="url( #a)" marker-end="url(#a) url(#b)" width="1" height="url(#a)"/></svg>`,
			want:   `<svg><rect width="1"></rect></svg>`,
			hasNot: []string{"evil"}},
		{name: "namespaced attributes and CSS escapes",
			in:   `<svg xmlns:xlink="http://www.w3.org/1999/xlink"><rect xlink:href="#x" xml:space="preserve" fill="\75rl(x)" class="a&lt;b" id="a b"/></svg>`,
			want: `<svg><rect></rect></svg>`},
		{name: "title keeps its text only (HTML is read there)",
			in:   `<svg><title>a<rect/>b<g><text>c</text></g></title></svg>`,
			want: `<svg><title>ab</title></svg>`},
		{name: "tags in text stay text",
			in:   `<svg><text>&lt;/svg&gt;&lt;h1&gt;valid&lt;/h1&gt;<![CDATA[</text></svg><script>]]></text></svg>`,
			want: `<svg><text>&lt;/svg&gt;&lt;h1&gt;valid&lt;/h1&gt;&lt;/text&gt;&lt;/svg&gt;&lt;script&gt;</text></svg>`},
		{name: "an element of another namespace is dropped with what it holds",
			in:   `<svg xmlns:h="http://www.w3.org/1999/xhtml"><h:div><rect/></h:div><circle r="1"/></svg>`,
			want: `<svg><circle r="1"></circle></svg>`},
		{name: "comments, doctypes and processing instructions", in: "<?xml version=\"1.0\"?>\n<!DOCTYPE svg><!-- c --><svg><?pi x?><!-- <script> --></svg>\n", want: `<svg></svg>`},
		{name: "text after the root", in: `<svg></svg><h1>valid</h1>`, err: true},
		{name: "a second root", in: `<svg></svg><svg></svg>`, err: true},
		{name: "not svg", in: `<html><script>alert(1)</script></html>`, err: true},
		{name: "an svg root in another namespace", in: `<svg xmlns="http://www.w3.org/1999/xhtml"></svg>`, err: true},
		{name: "unclosed", in: `<svg><g>`, err: true},
		{name: "not XML", in: `<svg><g></svg>`, err: true},
		{name: "empty", in: ``, err: true},
		{name: "an unknown entity", in: `<!DOCTYPE svg [<!ENTITY a "aaaa">]><svg><text>&a;</text></svg>`, err: true},
		{name: "too deep", in: `<svg>` + strings.Repeat("<g>", MaxDepth) + strings.Repeat("</g>", MaxDepth) + `</svg>`, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Clean([]byte(tc.in), "p-")
			if tc.err {
				if err == nil || !errors.Is(err, ErrNotSVG) {
					t.Fatalf("Clean = %q, %v; want an ErrNotSVG", out, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != "" && string(out) != tc.want {
				t.Errorf("Clean =\n%s\nwant\n%s", out, tc.want)
			}
			for _, s := range tc.has {
				if !strings.Contains(string(out), s) {
					t.Errorf("the output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.hasNot {
				if strings.Contains(string(out), s) {
					t.Errorf("the output has %q:\n%s", s, out)
				}
			}
			checkHTML(t, out, "p-")
		})
	}
	if _, err := Clean([]byte("<svg/>"), "1x"); err == nil || errors.Is(err, ErrNotSVG) {
		t.Errorf("a bad prefix: %v", err)
	}
}

// The pictures go-jepsen draws come out whole: every element, attribute
// and text of elle's, perf's and the timeline's SVGs is kept.
func TestCleanKeepsOurPictures(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.svg")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out, err := Clean(b, "")
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if n, m := strings.Count(string(b), "<"), strings.Count(string(out), "<"); m < n {
			t.Errorf("%s: %d tags in, %d out", f, n, m)
		}
		if n, m := strings.Count(string(b), `="`)-strings.Count(string(b), "xmlns="), strings.Count(string(out), `="`); n != m {
			t.Errorf("%s: %d attributes in (but xmlns), %d out", f, n, m)
		}
		checkHTML(t, out, "")
	}
}

// checkHTML parses out as an HTML parser does, inside a div of a body,
// and checks it built what Clean means: one svg in the div, nothing
// but allowed SVG elements and attributes in it, every id prefixed, no
// reference but to the picture's own (prefixed) ids.
func checkHTML(t testing.TB, out []byte, prefix string) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader("<!DOCTYPE html><html><head></head><body><div>" + string(out) + "</div><p id=after></p></body></html>"))
	if err != nil {
		t.Fatal(err)
	}
	var body *html.Node
	for n := range doc.Descendants() {
		if n.Type == html.ElementNode && n.Data == "body" {
			body = n
			break
		}
	}
	div := body.FirstChild
	if div == nil || div.Data != "div" || div.NextSibling == nil || div.NextSibling.Data != "p" || div.NextSibling.NextSibling != nil {
		t.Fatalf("the picture broke out of its div:\n%s", out)
	}
	kids := 0
	for c := range div.ChildNodes() {
		kids++
		if c.Type != html.ElementNode || c.Data != "svg" || c.Namespace != "svg" {
			t.Fatalf("the div holds %v %q, not one svg:\n%s", c.Type, c.Data, out)
		}
	}
	if kids != 1 {
		t.Fatalf("the div holds %d nodes, not one svg:\n%s", kids, out)
	}
	for n := range div.Descendants() {
		switch n.Type {
		case html.TextNode:
			continue
		case html.ElementNode:
		default:
			t.Fatalf("a node of type %v in the picture:\n%s", n.Type, out)
		}
		if n.Namespace != "svg" || !elements[n.Data] {
			t.Fatalf("element %s:%s in the picture:\n%s", n.Namespace, n.Data, out)
		}
		if p := n.Parent; p != div && textOnly[p.Data] {
			t.Fatalf("element %s inside %s:\n%s", n.Data, p.Data, out)
		}
		for _, a := range n.Attr {
			ok := attributes[a.Key]
			if n.Parent == div {
				ok = rootAttributes[a.Key]
			}
			if a.Namespace != "" || !ok {
				t.Fatalf("attribute %s:%s on %s:\n%s", a.Namespace, a.Key, n.Data, out)
			}
			if a.Key == "id" && !strings.HasPrefix(a.Val, prefix) {
				t.Fatalf("id %q without the prefix", a.Val)
			}
			low := strings.ToLower(a.Val)
			if strings.Contains(low, "url(") && (!strings.HasPrefix(a.Val, "url(#"+prefix) || strings.Count(low, "url(") > 1) {
				t.Fatalf("attribute %s=%q refers outside the picture", a.Key, a.Val)
			}
			if strings.Contains(low, "javascript:") || strings.Contains(a.Val, "\\") {
				t.Fatalf("attribute %s=%q", a.Key, a.Val)
			}
		}
	}
}

// FuzzClean: whatever Clean returns, an HTML parser reads it as one SVG
// picture of allowed elements and attributes, inside its div.
func FuzzClean(f *testing.F) {
	for _, s := range []string{
		`<svg><rect fill="url(#a)" id="a"/></svg>`,
		`<svg><title>x</title><text>&lt;b&gt;</text></svg>`,
		`<svg><foreignObject><div/></foreignObject><script>x</script></svg>`,
		`<svg xmlns="http://www.w3.org/2000/svg"><g transform="rotate(9)"><a href="x"/></g></svg>`,
		`<svg><![CDATA[</svg><img src=x onerror=alert(1)>]]></svg>`,
		`<svg><desc><p>x</p></desc><style>*{}</style></svg>`,
	} {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob("testdata/*.svg")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := Clean(b, "f-")
		if err != nil {
			if !errors.Is(err, ErrNotSVG) {
				t.Fatalf("an error that is not ErrNotSVG: %v", err)
			}
			return
		}
		checkHTML(t, out, "f-")
	})
}
