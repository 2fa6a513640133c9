//! A line diff of two JSON values, pretty-printed: what the test wanted (`-`) against what
//! the route did (`+`).

use serde_json::Value;

pub(super) fn json(want: &Value, got: &Value) -> String {
    let a = serde_json::to_string_pretty(want).unwrap_or_default();
    let b = serde_json::to_string_pretty(got).unwrap_or_default();
    lines(&a.lines().collect::<Vec<_>>(), &b.lines().collect::<Vec<_>>())
}

/// A longest-common-subsequence diff; test values are small, so quadratic is fine.
fn lines(a: &[&str], b: &[&str]) -> String {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push_str(&format!("    {}\n", a[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("  + {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("  - {}\n", a[i]));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_changed_lines() {
        let d = json(&serde_json::json!({"a": 1, "b": 2}), &serde_json::json!({"a": 1, "b": 3}));
        assert!(d.contains("  - ") && d.contains("\"b\": 2"), "{d}");
        assert!(d.contains("  + ") && d.contains("\"b\": 3"), "{d}");
        assert!(d.contains("    ") && d.contains("\"a\": 1"), "{d}");
    }
}
