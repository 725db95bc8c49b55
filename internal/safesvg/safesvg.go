// Package safesvg makes an SVG picture safe to inline in an HTML page
// that must not be changed by it: a run directory's timeline, perf and
// Elle pictures are go-jepsen's own, but a run directory may come from
// anywhere, and what an inlined SVG holds becomes part of the page.
//
// Clean parses the picture as XML and writes it again from what it
// understood, keeping only drawing: an allow-list of SVG elements
// (shapes, text, groups, markers, clip paths, gradients) and of their
// geometry and presentation attributes. Everything else is dropped:
// scripts, styles, links, images, foreignObject, animation, event
// handlers, style attributes, namespaced attributes (xlink:href),
// comments, processing instructions, doctypes. A reference to another
// element is kept only as url(#id), and every id is given the caller's
// prefix, so a picture can neither reach outside itself (no URL other
// than its own fragments) nor take the ids of the page or of another
// picture. Text is escaped again, and title and desc (where an HTML
// parser reads HTML) keep only text, so that an HTML parser builds the
// tree Clean wrote.
package safesvg

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// SVGNamespace is SVG's XML namespace.
const SVGNamespace = "http://www.w3.org/2000/svg"

// MaxDepth bounds how deep elements nest; a deeper picture is refused.
const MaxDepth = 64

// ErrNotSVG is matched (errors.Is) by every error of Clean: the input is
// not an SVG picture Clean can keep (not XML, not one svg root, nested
// too deep).
var ErrNotSVG = errors.New("not an SVG picture")

type notSVG struct{ msg string }

func (e *notSVG) Error() string        { return "not an SVG picture: " + e.msg }
func (e *notSVG) Is(target error) bool { return target == ErrNotSVG }

func fail(format string, a ...any) error { return &notSVG{fmt.Sprintf(format, a...)} }

// elements are the SVG elements kept: drawing, and nothing that loads,
// links, runs, animates or holds HTML.
var elements = set("svg", "g", "defs", "title", "desc", "rect", "circle", "ellipse", "line", "polyline",
	"polygon", "path", "text", "tspan", "marker", "clipPath", "linearGradient", "radialGradient", "stop")

// attributes are the attributes kept on elements other than the root:
// geometry and presentation. None is a URL, and none takes CSS beyond
// a value (no style).
var attributes = set("id", "class",
	"x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry", "fx", "fy", "width", "height", "d",
	"points", "dx", "dy", "rotate", "textLength", "lengthAdjust", "transform", "viewBox",
	"preserveAspectRatio", "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width",
	"stroke-opacity", "stroke-dasharray", "stroke-dashoffset", "stroke-linecap", "stroke-linejoin",
	"stroke-miterlimit", "opacity", "font-family", "font-size", "font-weight", "font-style",
	"text-anchor", "dominant-baseline", "alignment-baseline", "baseline-shift", "letter-spacing",
	"text-decoration", "paint-order", "clip-path", "clip-rule", "clipPathUnits", "marker-start",
	"marker-mid", "marker-end", "markerWidth", "markerHeight", "markerUnits", "refX", "refY", "orient",
	"overflow", "visibility", "display", "vector-effect", "shape-rendering", "offset", "stop-color",
	"stop-opacity", "gradientUnits", "gradientTransform", "spreadMethod")

// rootAttributes are the attributes kept on the root svg: its size and
// its text's defaults, nothing that moves it or lets it draw outside its
// box.
var rootAttributes = set("width", "height", "viewBox", "preserveAspectRatio", "font-family", "font-size",
	"font-weight", "font-style")

// references are the attributes whose value may be a url(#id).
var references = set("fill", "stroke", "clip-path", "marker-start", "marker-mid", "marker-end")

// textOnly are the elements where an HTML parser reads HTML (SVG's HTML
// integration points): they keep their text only.
var textOnly = set("title", "desc")

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

var (
	idRE        = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
	prefixRE    = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9_-]{0,63})?$`)
	refRE       = regexp.MustCompile(`^url\(#([A-Za-z0-9_.-]{1,128})\)$`)
	classRE     = regexp.MustCompile(`^[A-Za-z0-9_ -]*$`)
	transformRE = regexp.MustCompile(`^[A-Za-z0-9 ,.()+\-]*$`)
)

// Clean returns src, an SVG picture, with only what the package doc
// allows, ready to be placed in an HTML page as it is; prefix (letters,
// digits, '-' and '_', from a letter; or empty) is put before each id
// and each reference to one. The root must be one svg element, in SVG's
// namespace or none; elements it does not keep are dropped with all they
// hold. An error matches ErrNotSVG. Clean is safe for concurrent use; it
// holds about twice src while it works.
func Clean(src []byte, prefix string) ([]byte, error) {
	if !prefixRE.MatchString(prefix) {
		return nil, fmt.Errorf("safesvg: bad id prefix %q", prefix)
	}
	d := xml.NewDecoder(bytes.NewReader(src))
	d.Strict = true // only XML's five entities; no charset but UTF-8
	var out bytes.Buffer
	out.Grow(len(src) + len(src)/8)
	var (
		stack []string // the open elements written
		depth int      // the open elements read
		skip  int      // the depth of the dropped element being skipped; 0: none
		done  bool     // the root was closed
	)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fail("%v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > MaxDepth {
				return nil, fail("elements nested deeper than %d", MaxDepth)
			}
			if done {
				return nil, fail("an element after the root")
			}
			if skip > 0 {
				continue
			}
			name := t.Name.Local
			if len(stack) == 0 {
				if name != "svg" || (t.Name.Space != "" && t.Name.Space != SVGNamespace) {
					return nil, fail("the root is <%s>, not <svg>", name)
				}
			}
			inSVG := t.Name.Space == "" || t.Name.Space == SVGNamespace
			if !inSVG || !elements[name] || (len(stack) > 0 && textOnly[stack[len(stack)-1]]) {
				skip = depth
				continue
			}
			out.WriteByte('<')
			out.WriteString(name)
			allowed := attributes
			if len(stack) == 0 {
				allowed = rootAttributes
			}
			for _, a := range t.Attr {
				if v, ok := attribute(a, allowed, prefix); ok {
					out.WriteByte(' ')
					out.WriteString(a.Name.Local)
					out.WriteString(`="`)
					escape(&out, v)
					out.WriteByte('"')
				}
			}
			out.WriteByte('>')
			stack = append(stack, name)
		case xml.EndElement:
			depth--
			if skip > 0 {
				if depth < skip {
					skip = 0
				}
				continue
			}
			name := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			out.WriteString("</")
			out.WriteString(name)
			out.WriteByte('>')
			if len(stack) == 0 {
				done = true
			}
		case xml.CharData:
			if skip > 0 || len(stack) == 0 {
				if !done && len(stack) == 0 && len(bytes.TrimSpace(t)) > 0 {
					return nil, fail("text before the root")
				}
				if done && len(bytes.TrimSpace(t)) > 0 {
					return nil, fail("text after the root")
				}
				continue
			}
			escape(&out, string(t))
		}
		// Comments, processing instructions and directives are dropped.
	}
	if !done {
		return nil, fail("no complete <svg> element")
	}
	return out.Bytes(), nil
}

// attribute returns the value an attribute is written with, and whether
// it is kept.
func attribute(a xml.Attr, allowed map[string]bool, prefix string) (string, bool) {
	name, v := a.Name.Local, a.Value
	if a.Name.Space != "" || !allowed[name] || strings.ContainsAny(v, "\\\x00") {
		return "", false
	}
	switch {
	case name == "id":
		if !idRE.MatchString(v) {
			return "", false
		}
		return prefix + v, true
	case name == "class":
		return v, classRE.MatchString(v)
	case name == "transform" || name == "gradientTransform":
		return v, transformRE.MatchString(v)
	case strings.Contains(v, "("):
		// A value with a function is a reference to an element of the
		// picture, or dropped: nothing else may load or compute.
		m := refRE.FindStringSubmatch(strings.TrimSpace(v))
		if m == nil || !references[name] {
			return "", false
		}
		return "url(#" + prefix + m[1] + ")", true
	}
	return v, true
}

// escape writes s escaped for HTML text and double-quoted attributes.
func escape(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&#34;")
		case '\'':
			b.WriteString("&#39;")
		default:
			b.WriteByte(c)
		}
	}
}
