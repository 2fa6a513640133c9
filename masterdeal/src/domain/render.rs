//! A proposal's HTML: its Markdown rendered (CommonMark with tables) and sanitised, so what a
//! model or a person wrote can be shown in a browser without running anything in it.

use pulldown_cmark::{Options, Parser, html};

/// The sanitised HTML of `markdown`.
pub fn proposal_html(markdown: &str) -> String {
    let mut out = String::new();
    html::push_html(&mut out, Parser::new_ext(markdown, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH));
    sanitised(&out)
}

/// `html` with scripts, event handlers, styles and unsafe links removed (ammonia's
/// allow-list: formatting, tables, links with `rel="noopener noreferrer"`).
pub fn sanitised(html: &str) -> String {
    ammonia::clean(html)
}

#[cfg(test)]
mod tests {
    use super::{proposal_html, sanitised};

    #[test]
    fn markdown_becomes_html_without_anything_that_runs() {
        let html = proposal_html(
            "# КП\n\n| Канал | Бюджет |\n|---|---|\n| search | 100.00 |\n\n<script>alert(1)</script>\n[x](javascript:alert(2)) <img src=x onerror=alert(3)>",
        );
        assert!(html.contains("<h1>КП</h1>"), "{html}");
        assert!(html.contains("<td>search</td>"), "{html}");
        for bad in ["<script", "javascript:", "onerror"] {
            assert!(!html.contains(bad), "{bad} in {html}");
        }
        assert_eq!(sanitised("<p onclick=\"x()\">ok</p>"), "<p>ok</p>");
    }
}
