//! An error message reduced to its kind, so that one kind of error is one fuzz feature however
//! much of the (mutated) input the message carries.
//!
//! Messages echo their input in three ways, all blanked here:
//! - quoted: `"..."` (Rust's Debug of a line), `` `...` `` (serde's field and variant names),
//!   `'...'` (QEMU's wording: `Parameter 'x' is unexpected`). A quote closes only with the
//!   character that opened it, and a backslash inside escapes the next character, so a
//!   Debug-quoted line full of backticks and `\"` stays one quoted span. A `'` counts as a
//!   quote only at a word's edge (`guest's` is an apostrophe);
//! - as numbers: any word holding a digit (counts, offsets, line and column, `0x10`) is `#`;
//! - bare: a word that is not plain letters, `-` and `_` (a path, a JSON fragment, escaped
//!   bytes) becomes `_`: a message's own wording is plain words. QEMU's `The command foo has
//!   not been found` echoes a plain word unquoted, and so does a path with spaces in it; for
//!   those the target passes what its input can have echoed (the monitor: the input's decoded
//!   JSON strings), and a word standing whole among them
//!   becomes `_` too. Not the input's whole text: a message's own wording (a profile's known
//!   columns, a scenario's keys and descriptions) is often in it as well, and blanking that
//!   would make one kind of error many. Targets whose messages quote what they echo pass "".
//!   Echoed words in a row, numbers and punctuation among them, are one `_`.

/// Longest class kept (a message's kind is in its first words; the rest is detail).
const MAX_CLASS_CHARS: usize = 120;
/// Most words kept.
const MAX_CLASS_WORDS: usize = 16;

/// `message` reduced to its kind; `input` is what it may echo bare ("" if it quotes what it
/// echoes, or the input is binary).
pub fn error_class(message: &str, input: &str) -> String {
    let templated = blank_templates(message);
    let unquoted = blank_quoted(&templated);
    let mut words: Vec<Word> = Vec::new();
    let mut chars = 0;
    for token in unquoted.split_whitespace() {
        let w = word_class(token, input);
        chars += w.head.len() + w.class.len() + w.tail.len() + 1;
        match words.last_mut() {
            // An echo of several words (a name with spaces, digits among them) is one `_`,
            // the punctuation in and around it (the input's too) with it.
            // Numbers in a row are echoed too (one `#`).
            // A size's unit goes with its number: `# KiB` and `# GiB` are one kind.
            Some(last) if last.class == "#" && SIZE_UNITS.contains(&w.class) => {
                last.tail = w.tail;
            }
            Some(last) if (last.echo && w.class.is_empty()) || (last.blank() && w.blank()) => {
                *last = if last.echo || w.echo {
                    Word::ECHO
                } else {
                    Word::NUMBERS
                };
            }
            _ => words.push(w),
        }
        if chars >= MAX_CLASS_CHARS || words.len() >= MAX_CLASS_WORDS {
            break;
        }
    }
    let words: Vec<String> = words
        .iter()
        .map(|w| format!("{}{}{}", w.head, w.class, w.tail))
        .collect();
    words.join(" ")
}

impl Word<'_> {
    /// An echo, its punctuation dropped with it.
    const ECHO: Word<'static> = Word {
        head: "",
        class: "_",
        tail: "",
        echo: true,
    };

    /// Numbers in a row, their punctuation dropped with them.
    const NUMBERS: Word<'static> = Word {
        head: "",
        class: "#",
        tail: "",
        echo: false,
    };

    /// Blanked: a number or an echo.
    fn blank(&self) -> bool {
        self.class == "_" || self.class == "#"
    }
}

/// The units a size is printed in (`units::fmt_bytes`), each part of the number before it.
const SIZE_UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/// Messages that echo a name bare, however the input spells it, as the text before and after
/// the echo (its last occurrence): the echo is whatever lies between. The echo candidates
/// passed as `input` miss names a mutated input spells oddly (brackets, quotes, escapes in an
/// unknown command's name), and each spelling would be a kind of its own.
const ECHO_TEMPLATES: &[(&str, &str)] = &[
    // QEMU's CommandNotFound, as the monitor words it.
    ("The command ", " has not been found"),
    // A scenario's profile that cannot be read: the path, then the OS's reason.
    ("cannot read profile ", ": "),
];

/// `message` with the echo of every [`ECHO_TEMPLATES`] match replaced by `_`.
fn blank_templates(message: &str) -> std::borrow::Cow<'_, str> {
    let mut out = std::borrow::Cow::Borrowed(message);
    for (before, after) in ECHO_TEMPLATES {
        let Some(i) = out.find(before) else { continue };
        let start = i + before.len();
        let Some(len) = out[start..].rfind(after) else {
            continue;
        };
        if len == 0 {
            continue;
        }
        out = std::borrow::Cow::Owned(format!("{}_{}", &out[..start], &out[start + len..]));
    }
    out
}

/// A token of a message, classified.
struct Word<'a> {
    /// Punctuation before the word.
    head: &'a str,
    /// `#`, `_` or the word itself.
    class: &'a str,
    /// Punctuation after it.
    tail: &'a str,
    /// Whether it echoes the input.
    echo: bool,
}

/// The message with every quoted span emptied (its quote marks kept, so `''` shows where).
fn blank_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut open: Option<char> = None;
    let mut escaped = false;
    let mut prev: Option<char> = None;
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        match open {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q && (q != '\'' || !chars.peek().is_some_and(|n| word_char(*n))) {
                    open = None;
                    out.push(c);
                }
            }
            None => {
                let opens = match c {
                    '"' | '`' => true,
                    '\'' => !prev.is_some_and(word_char),
                    _ => false,
                };
                if opens {
                    open = Some(c);
                }
                out.push(c);
            }
        }
        prev = Some(c);
    }
    out
}

fn word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// One whitespace-separated token: its leading and trailing punctuation kept, its core
/// replaced by `#` (a number), `_` (an echo) or kept (the message's own word).
fn word_class<'a>(token: &'a str, input: &str) -> Word<'a> {
    const EDGE: &[char] = &[
        ',', '.', ':', ';', '(', ')', '[', ']', '{', '}', '!', '?', '"', '`', '\'',
    ];
    let core = token.trim_matches(EDGE);
    let start = token.find(core).unwrap_or(0);
    let (head, tail) = (&token[..start], &token[start + core.len()..]);
    let plain = core
        .chars()
        .all(|c| c.is_ascii_alphabetic() || c == '-' || c == '_');
    let (class, echo) = if core.is_empty() {
        if !message_punctuation(token) {
            return Word::ECHO;
        }
        ("", false)
    } else if is_token_of(core, input) {
        return Word::ECHO;
    } else if core.chars().any(|c| c.is_ascii_digit()) {
        ("#", false)
    } else if !plain {
        return Word::ECHO;
    } else {
        (core, false)
    };
    Word {
        head,
        class,
        tail,
        echo,
    }
}

/// Whether a token without letters is the message's own: one mark (`-`, `(`), or a blanked
/// quote with at most two marks around it (`''`, `''?)`). Anything longer (`[[{'' ][:.`)
/// is what an echo left, once its quotes were blanked.
fn message_punctuation(token: &str) -> bool {
    let rest = token
        .replace("''", "")
        .replace("\"\"", "")
        .replace("``", "");
    let quoted = rest.len() < token.len();
    rest.chars().count() <= if quoted { 2 } else { 1 }
}

/// Whether `word` stands in `input` as a whole token (not inside a longer name).
fn is_token_of(word: &str, input: &str) -> bool {
    let name_char = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    input.match_indices(word).any(|(at, _)| {
        !input[..at].chars().next_back().is_some_and(name_char)
            && !input[at + word.len()..]
                .chars()
                .next()
                .is_some_and(name_char)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_templated_echo_is_one_blank_however_it_is_spelled() {
        for name in ["foo", "[[1", "a'b\"c", "x y 12]"] {
            assert_eq!(
                error_class(&format!("The command {name} has not been found"), ""),
                "The command _ has not been found",
                "{name}"
            );
        }
        assert_eq!(
            error_class(
                "scenario x.toml: cannot read profile /tmp/a b:c.csv: No such file or directory (os error 2)",
                ""
            ),
            error_class(
                "scenario x.toml: cannot read profile zz: No such file or directory (os error 2)",
                ""
            )
        );
    }

    use super::error_class;

    #[test]
    fn quoted_text_of_every_kind_is_blanked() {
        assert_eq!(
            error_class(
                "Parameter 'auto-came' is unexpected (did you mean 'x y'?)",
                ""
            ),
            "Parameter '' is unexpected (did you mean ''?)"
        );
        assert_eq!(
            error_class("missing field `status` at line 3 column 17", ""),
            "missing field `` at line # column #"
        );
        // A Debug-quoted line carries backticks and escaped quotes of its own: one span.
        assert_eq!(
            error_class(
                r#"fuzz.jsonl:2: not JSON (expected `:` at line 1 column 9): "`-desc\"`\\u\"`s""#,
                ""
            ),
            r#"#: not JSON (expected `` at line # column #): """#
        );
        // An apostrophe inside a word opens nothing.
        assert_eq!(
            error_class("missing: the guest's RAM size", ""),
            "missing: the _ RAM size"
        );
    }

    #[test]
    fn bare_echoes_and_numbers_are_blanked_but_the_wording_stays() {
        let input = r#"{"execute":"no-such-thing"}"#;
        assert_eq!(
            error_class("The command no-such-thing has not been found", input),
            "The command _ has not been found"
        );
        // The same kind whatever the name: one feature.
        assert_eq!(
            error_class(
                "The command qmp_capabilitiXs has not been found",
                "qmp_capabilitiXs"
            ),
            error_class("The command foo has not been found", "foo")
        );
        // An echo with spaces in it, or a list of them, is one `_` (its punctuation, the
        // input's too, goes with it), and so is the punctuation an echo with quotes in it
        // leaves once they are blanked.
        assert_eq!(
            error_class("The command [[{'x' ][:.[[}['y' z has not been found", "z"),
            "The command _ has not been found"
        );
        assert_eq!(
            error_class("The command a b{ c has not been found", "x a b{ c"),
            "The command _ has not been found"
        );
        assert_eq!(
            error_class(
                "no `x` column (columns: rate_pct, interval_ms)",
                "rate_pct,interval_ms"
            ),
            "no `` column (columns: _"
        );
        assert_eq!(
            error_class("/tmp/x.toml:12:3: size 0x1000 exceeds 4GiB", ""),
            "#: size # exceeds #"
        );
    }

    #[test]
    fn a_size_is_one_number_whatever_its_unit() {
        let class = |offset: &str, size: &str| {
            error_class(
                &format!("region `a` (offset {offset}, size {size}) does not fit in the guest"),
                "",
            )
        };
        assert_eq!(class("0 B", "1 GiB"), class("512 MiB", "3 TiB"));
        assert_eq!(
            class("0 B", "1 GiB"),
            "region `` (offset #, size #) does not fit in the guest"
        );
        // A unit word elsewhere is the message's own.
        assert_eq!(error_class("sizes in GiB only", ""), "sizes in GiB only");
    }

    #[test]
    fn an_unterminated_quote_blanks_to_the_end() {
        assert_eq!(error_class(r#"bad line: "abc\"def"#, ""), r#"bad line: ""#);
    }
}
