//! Where one QMP input ends. QEMU reads a stream of JSON values, not lines (the `qemu.qmp`
//! library sends each command with no newline after it), so an input ends where its
//! outermost object or array closes, or, for a stray scalar, at the next whitespace.
//! Bounded: an input longer than [`MAX_INPUT_BYTES`] is refused and skipped.

/// Longest input a client may send (no command here needs more than a few hundred bytes).
pub const MAX_INPUT_BYTES: usize = 64 * 1024;

/// One complete input.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// A JSON text to parse (it may still be invalid JSON: the parser says why).
    Text(String),
    /// Longer than [`MAX_INPUT_BYTES`]; its bytes were dropped up to its end.
    TooLong,
}

/// Splits a byte stream into inputs.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// A non-whitespace byte of this input was seen.
    started: bool,
    too_long: bool,
}

impl Framer {
    /// Feed bytes; returns every input they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Input> {
        let mut done = Vec::new();
        for &b in bytes {
            if let Some(input) = self.byte(b) {
                done.push(input);
            }
        }
        done
    }

    /// What is left when the stream ends (a last scalar without whitespace after it).
    pub fn finish(&mut self) -> Option<Input> {
        (self.started || self.too_long).then(|| self.take())
    }

    fn take(&mut self) -> Input {
        let input = if self.too_long {
            Input::TooLong
        } else {
            Input::Text(String::from_utf8_lossy(&self.buf).into_owned())
        };
        *self = Framer::default();
        input
    }

    fn byte(&mut self, b: u8) -> Option<Input> {
        if self.buf.len() >= MAX_INPUT_BYTES {
            self.too_long = true;
            self.buf.clear();
        }
        let started = self.started;
        if !b.is_ascii_whitespace() {
            self.started = true;
        }
        if !self.too_long {
            self.buf.push(b);
        }
        if self.in_string {
            match (self.escaped, b) {
                (true, _) => self.escaped = false,
                (false, b'\\') => self.escaped = true,
                (false, b'"') => self.in_string = false,
                _ => {}
            }
            return None;
        }
        match b {
            b'"' => self.in_string = true,
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => {
                if self.depth <= 1 {
                    // The outermost value closed (or a stray closer: the parser refuses it).
                    return Some(self.take());
                }
                self.depth -= 1;
            }
            // A stray scalar (`garbage`, `1`) ends at whitespace.
            _ if b.is_ascii_whitespace() && self.depth == 0 && started => {
                return Some(self.take());
            }
            _ if b.is_ascii_whitespace() && self.depth == 0 => self.buf.clear(),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(inputs: Vec<Input>) -> Vec<String> {
        inputs
            .into_iter()
            .map(|i| match i {
                Input::Text(t) => t,
                Input::TooLong => "<too long>".into(),
            })
            .collect()
    }

    #[test]
    fn objects_end_where_they_close_with_or_without_newlines() {
        let mut f = Framer::default();
        let got = texts(f.push(br#"{"execute":"a"}{"execute":"b","arguments":{"x":[1,{"y":2}]}}"#));
        assert_eq!(
            got,
            [
                r#"{"execute":"a"}"#,
                r#"{"execute":"b","arguments":{"x":[1,{"y":2}]}}"#
            ]
        );
        let got = texts(f.push(b"\r\n  {\"execute\":\n \"c\"}\n"));
        assert_eq!(got, ["{\"execute\":\n \"c\"}"]);
    }

    #[test]
    fn braces_and_quotes_inside_strings_do_not_count() {
        let mut f = Framer::default();
        let got = texts(f.push(br#"{"id":"}{\"]","execute":"x"}"#));
        assert_eq!(got, [r#"{"id":"}{\"]","execute":"x"}"#]);
    }

    #[test]
    fn split_across_reads() {
        let mut f = Framer::default();
        assert!(f.push(br#"{"exec"#).is_empty());
        assert!(f.push(br#"ute":"quit""#).is_empty());
        assert_eq!(texts(f.push(b"}")), [r#"{"execute":"quit"}"#]);
    }

    #[test]
    fn stray_scalars_and_closers_are_inputs_of_their_own() {
        let mut f = Framer::default();
        assert_eq!(texts(f.push(b"garbage\n]\n1")), ["garbage\n", "]"]);
        assert_eq!(f.finish(), Some(Input::Text("1".into())));
        assert_eq!(f.finish(), None);
    }

    #[test]
    fn an_oversize_input_is_refused_once_and_the_next_one_is_read() {
        let mut f = Framer::default();
        let mut big = b"{\"execute\":\"".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_INPUT_BYTES * 2));
        big.extend_from_slice(b"\"}{\"execute\":\"quit\"}");
        assert_eq!(texts(f.push(&big)), ["<too long>", r#"{"execute":"quit"}"#]);
    }
}
