"""A package's README (Markdown written by whoever pushed it) rendered to inert HTML.

markdown-it-py renders CommonMark (with tables and strikethrough; raw HTML is parsed so that
the sanitiser, not the parser, decides); nh3 (the Ammonia sanitiser) then keeps only a safe
subset of tags and attributes, only http(s)/mailto URLs, and puts rel="noopener noreferrer
nofollow" on every link. Images become links to the image: nothing in a README loads by itself
(no tracking pixels), which the pages' Content-Security-Policy enforces again. Headings move one
level down, under the page's own title.
"""

from __future__ import annotations

from typing import Any

__all__ = ["render_readme", "ALLOWED_TAGS"]

ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt",
    "em", "h2", "h3", "h4", "h5", "h6", "hr", "i", "ins", "kbd", "li", "ol", "p", "pre", "q",
    "s", "samp", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td",
    "tfoot", "th", "thead", "tr", "ul",
})
_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "ol": {"start"},
    "td": {"align", "colspan", "rowspan"},
    "th": {"align", "colspan", "rowspan", "scope"},
}
_SCHEMES = {"http", "https", "mailto"}


def _parser() -> Any:
    from markdown_it import MarkdownIt
    from markdown_it.common.utils import escapeHtml

    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])

    def image(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        token = tokens[idx]
        alt = self.renderInlineAsText(token.children or [], options, env) or "image"
        src = str(token.attrGet("src") or "")
        return f'<a href="{escapeHtml(src)}">[image: {escapeHtml(alt)}]</a>'

    md.add_render_rule("image", image)

    def demote(state: Any) -> None:
        for token in state.tokens:
            if token.type in ("heading_open", "heading_close"):
                token.tag = f"h{min(6, int(token.tag[1]) + 1)}"

    md.core.ruler.push("ebpm_demote_headings", demote)
    return md


_md: Any = None


def render_readme(text: str) -> str:
    """Markdown to sanitised HTML: no script, no event handler, no style, no frame, no form,
    no image or other resource that loads by itself, no URL but http(s) and mailto."""
    import nh3

    global _md
    if _md is None:
        _md = _parser()
    html = _md.render(text)
    return str(nh3.clean(
        html, tags=set(ALLOWED_TAGS), attributes={k: set(v) for k, v in _ATTRIBUTES.items()},
        url_schemes=_SCHEMES, link_rel="noopener noreferrer nofollow", strip_comments=True,
    ))
