//! The console's static files, embedded in the binary (see `assets/README.md` for where the
//! vendored ones come from).

/// The file named `name` under `/console/assets/`, with its content type.
pub(super) fn get(name: &str) -> Option<(&'static [u8], &'static str)> {
    const JS: &str = "text/javascript; charset=utf-8";
    const CSS: &str = "text/css; charset=utf-8";
    const TEXT: &str = "text/plain; charset=utf-8";
    Some(match name {
        "htmx.min.js" => (include_bytes!("assets/htmx.min.js"), JS),
        "htmx-ext-sse.min.js" => (include_bytes!("assets/htmx-ext-sse.min.js"), JS),
        "uPlot.iife.min.js" => (include_bytes!("assets/uPlot.iife.min.js"), JS),
        "uPlot.min.css" => (include_bytes!("assets/uPlot.min.css"), CSS),
        "mermaid.min.js" => (include_bytes!("assets/mermaid.min.js"), JS),
        "console.css" => (include_bytes!("assets/console.css"), CSS),
        "console.js" => (include_bytes!("assets/console.js"), JS),
        "htmx.LICENSE" => (include_bytes!("assets/htmx.LICENSE"), TEXT),
        "htmx-ext-sse.LICENSE" => (include_bytes!("assets/htmx-ext-sse.LICENSE"), TEXT),
        "uPlot.LICENSE" => (include_bytes!("assets/uPlot.LICENSE"), TEXT),
        "mermaid.LICENSE" => (include_bytes!("assets/mermaid.LICENSE"), TEXT),
        _ => return None,
    })
}
