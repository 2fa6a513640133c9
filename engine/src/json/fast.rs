//! The common case of reading JSON, done directly on the bytes: documents that serde_json
//! reads without complaint, whose numbers are plain integers, whose strings use only simple
//! escapes. Anything else (errors, floats, surrogate escapes, nesting past the limit) makes
//! it give up, and the caller reads the document again the careful way, which decides.
//!
//! Giving up is always safe, so this path only has to be right about what it accepts: the
//! same `Value` serde_json would build, member order and repeated keys included.

use serde_json::{Number, Value};

/// `bytes` as one JSON value nesting at most `max_depth` levels, or `None` to say "read it
/// the careful way".
pub(super) fn read(bytes: &[u8], max_depth: usize) -> Option<Value> {
    // One check for the whole text: every string in it is then valid UTF-8 as it stands.
    let text = std::str::from_utf8(bytes).ok()?;
    let mut reader = Reader { text, pos: 0, members: Vec::with_capacity(16), items: Vec::with_capacity(16) };
    let value = reader.value(max_depth)?;
    reader.skip_whitespace();
    (reader.pos == bytes.len()).then_some(value)
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
    /// Members and items of the objects and arrays being read, shared by the whole document
    /// so each map or vector is built once, at its final size.
    members: Vec<(String, Value)>,
    items: Vec<Value>,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Consumes `byte` (after whitespace) if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_whitespace();
        let next = self.peek() == Some(byte);
        self.pos += usize::from(next);
        next
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        self.skip_whitespace();
        match self.peek()? {
            b'{' => self.object(depth.checked_sub(1)?),
            b'[' => self.array(depth.checked_sub(1)?),
            b'"' => self.string().map(Value::String),
            b't' => self.literal("true", Value::Bool(true)),
            b'f' => self.literal("false", Value::Bool(false)),
            b'n' => self.literal("null", Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Option<Value> {
        let end = self.pos + word.len();
        (self.text.as_bytes().get(self.pos..end)? == word.as_bytes()).then(|| {
            self.pos = end;
            value
        })
    }

    fn object(&mut self, depth: usize) -> Option<Value> {
        self.pos += 1;
        let start = self.members.len();
        if !self.eat(b'}') {
            loop {
                self.skip_whitespace();
                if self.peek()? != b'"' {
                    return None;
                }
                let key = self.string()?;
                if !self.eat(b':') {
                    return None;
                }
                let value = self.value(depth)?;
                self.members.push((key, value));
                if self.eat(b'}') {
                    break;
                }
                if !self.eat(b',') {
                    return None;
                }
            }
        }
        Some(super::object_of(self.members.drain(start..)))
    }

    fn array(&mut self, depth: usize) -> Option<Value> {
        self.pos += 1;
        let start = self.items.len();
        if !self.eat(b']') {
            loop {
                let item = self.value(depth)?;
                self.items.push(item);
                if self.eat(b']') {
                    break;
                }
                if !self.eat(b',') {
                    return None;
                }
            }
        }
        Some(Value::Array(self.items.drain(start..).collect()))
    }

    /// A string at `pos` (its opening quote).
    fn string(&mut self) -> Option<String> {
        self.pos += 1;
        let start = self.pos;
        loop {
            match *self.text.as_bytes().get(self.pos)? {
                b'"' => {
                    let s = self.text.get(start..self.pos)?.to_owned();
                    self.pos += 1;
                    return Some(s);
                }
                b'\\' => return self.escaped_string(start),
                // Control characters must be escaped; serde_json says where one was not.
                0..=0x1f => return None,
                _ => self.pos += 1,
            }
        }
    }

    /// The rest of a string from its first backslash (at `pos`), `start` being its first byte.
    fn escaped_string(&mut self, start: usize) -> Option<String> {
        let mut out = String::with_capacity(self.pos - start + 16);
        out.push_str(self.text.get(start..self.pos)?);
        loop {
            let run = self.pos;
            while self.peek().is_some_and(|b| !matches!(b, b'"' | b'\\' | 0..=0x1f)) {
                self.pos += 1;
            }
            out.push_str(self.text.get(run..self.pos)?);
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(out);
                }
                b'\\' => {
                    out.push(self.escape()?);
                }
                _ => return None,
            }
        }
    }

    /// One escape at `pos` (its backslash). Surrogate pairs and anything unusual are left to
    /// serde_json, which also knows how to word the errors.
    fn escape(&mut self) -> Option<char> {
        let c = match *self.text.as_bytes().get(self.pos + 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                // `from_str_radix` would also take a sign; JSON wants four hex digits.
                let hex =
                    self.text.get(self.pos + 2..self.pos + 6).filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))?;
                let c = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
                self.pos += 4;
                c
            }
            _ => return None,
        };
        self.pos += 2;
        Some(c)
    }

    /// A number: plain integers here; fractions, exponents and integers too large for 64
    /// bits are read by serde_json, whose rounding the result must share.
    fn number(&mut self) -> Option<Value> {
        let start = self.pos;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.peek() {
            self.pos += 1;
        }
        let token = &self.text[start..self.pos];
        let (negative, digits) = match token.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, token),
        };
        let plain = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits.len() == 1 || !digits.starts_with('0'));
        let magnitude = plain.then(|| digits.parse::<u64>().ok()).flatten();
        match (negative, magnitude) {
            (false, Some(m)) => Some(Value::Number(m.into())),
            // serde_json reads -0 as the float -0.0, and below i64::MIN as a float too.
            (true, Some(m @ 1..=0x8000_0000_0000_0000)) => {
                Some(Value::Number(Number::from(0_i64.wrapping_sub_unsigned(m))))
            }
            _ => match serde_json::from_str::<Value>(token).ok()? {
                number @ Value::Number(_) => Some(number),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the fast path reads, it must read as serde_json does; checked on texts it is
    /// meant to take itself (so the gateway's usual bodies do not fall back).
    #[test]
    fn takes_the_usual_bodies_itself() {
        for text in [
            include_str!("../../../examples/crm-deal.json"),
            r#"{"a":[1,-2,0,-9223372036854775808,18446744073709551615],"b":{"c":[],"d":{}},"e":null}"#,
            r#"{"amount":1250000.5,"rate":-0.25,"big":1e300,"exp":2E-3,"neg_zero":-0,"huge":123456789012345678901}"#,
            "{\"s\":\"tab\\t quote\\\" slash\\/ back\\\\ \\u00e9\\u0000 кириллица ✓\",\"t\":true,\"f\":false}",
            " \t\r\n [ \"x\" , { } , [ ] ] \n",
            r#"{"a":1,"b":2,"a":3}"#,
        ] {
            let ours = read(text.as_bytes(), 128).unwrap_or_else(|| panic!("fell back on {text}"));
            let theirs: Value = serde_json::from_str(text).expect("serde_json reads it");
            assert_eq!(ours, theirs, "{text}");
            assert_eq!(ours.to_string(), theirs.to_string(), "{text}");
        }
    }

    #[test]
    fn leaves_the_unusual_to_serde_json() {
        for text in [
            "",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "{} {}",
            "01",
            "1.",
            "-",
            "1e400",
            "\"\\ud83d\\ude00\"",
            "\"\\ud800\"",
            "\"\\x\"",
            "\"\\u12G4\"",
            "\"\\u+123\"",
            "\"raw\u{1}control\"",
            "tru",
            "nul",
            "[[[1]]]",
        ] {
            assert_eq!(read(text.as_bytes(), 2), None, "{text:?}");
        }
        assert_eq!(read(b"\"\xff\"", 2), None, "invalid UTF-8");
    }
}
