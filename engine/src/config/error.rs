//! Config errors as users read them: `file:line:col: message`, all of a run at once.

use std::fmt;
use std::path::{Path, PathBuf};

use super::node::{NodeError, Pos};

/// One thing wrong with the project, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub pos: Option<Pos>,
    pub message: String,
}

impl Diagnostic {
    pub fn new(file: &Path, pos: Option<Pos>, message: impl Into<String>) -> Self {
        let pos = pos.filter(|p| p.is_known());
        Self { file: file.to_path_buf(), pos, message: message.into() }
    }

    pub fn from_node(file: &Path, err: NodeError) -> Self {
        Self::new(file, err.pos, with_suggestion(&err.message))
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some(p) => write!(f, "{}:{}:{}: {}", self.file.display(), p.line, p.col, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Every error of one load, in file and position order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `Ok(value)` when nothing was reported, the sorted errors otherwise.
    pub fn into_result<T>(mut self, value: T) -> Result<T, Diagnostics> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            self.0.sort_by(|a, b| (&a.file, a.pos).cmp(&(&b.file, b.pos)));
            self.0.dedup();
            Err(self)
        }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Adds "did you mean" to serde's "unknown field/variant `x`, expected one of `a`, `b`".
pub fn with_suggestion(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `").or_else(|| message.strip_prefix("unknown variant `"))
    else {
        return message.to_owned();
    };
    let Some((word, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    match suggest(word, candidates) {
        Some(c) => format!("{message} (did you mean `{c}`?)"),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_name() {
        let m = with_suggestion("unknown field `tpoic`, expected one of `connector`, `topic`, `key`");
        assert!(m.ends_with("(did you mean `topic`?)"), "{m}");
        let far = with_suggestion("unknown field `zzz`, expected `connector` or `topic`");
        assert!(!far.contains("did you mean"), "{far}");
    }

    #[test]
    fn formats_file_line_col() {
        let d = Diagnostic::new(Path::new("routes/a.yaml"), Some(Pos { line: 3, col: 7 }), "bad");
        assert_eq!(d.to_string(), "routes/a.yaml:3:7: bad");
    }
}
